//! Per-thread decode counters.
//!
//! Decoder threads count in plain integers (no atomics on the hot path);
//! the pipeline takes them at every flush and publishes them. Every frame,
//! fragment or segment that does not become a DNS message is counted under
//! exactly one [`DropReason`], so a user can always tell *why* traffic was
//! not recorded. (What happens to a DNS message after that is counted by
//! extraction, under its own reasons.)

/// Why a frame, datagram or segment was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// The link-layer header is cut short.
    LinkTruncated,
    /// A link type we do not decode (802.11, PPP, ...).
    LinkUnsupported,
    /// The frame carries neither IPv4 nor IPv6 (ARP, LLDP, ...).
    NotIp,
    /// The IP header is malformed.
    IpMalformed,
    /// The packet was cut short by the capture's snap length.
    SnapTruncated,
    /// Neither UDP nor TCP (ICMP, GRE, ESP, ...).
    NotUdpTcp,
    /// UDP or TCP, but no port of ours on either side.
    NotDnsPort,
    /// The UDP or TCP header is malformed or cut short.
    TransportMalformed,
    /// A fragment that could not be placed: bad offset, overlap that
    /// changes data, datagram larger than 64 KiB.
    FragmentInvalid,
    /// An incomplete datagram evicted because it outlived the timeout.
    FragmentTimeout,
    /// An incomplete datagram evicted because the table was full.
    FragmentOverflow,
    /// TCP bytes lost: a hole in the stream that was never filled.
    TcpGap,
    /// A TCP flow or its buffer evicted because a bound was reached.
    TcpOverflow,
    /// A tunnel header (VXLAN, Geneve, GRE, ERSPAN) cut short, with bad
    /// flags or a length running past the packet.
    TunnelMalformed,
    /// Tunnels nested deeper than the decoder follows (a loop, or hostile).
    TunnelTooDeep,
    /// A tunnel we do not open: an unknown GRE protocol, GRE version 1
    /// (PPTP), GRE source routing, an ERSPAN frame that is not Ethernet.
    TunnelUnsupported,
}

impl DropReason {
    /// Every reason, in a stable order (used for metrics and reports).
    pub const ALL: [DropReason; 16] = [
        DropReason::LinkTruncated,
        DropReason::LinkUnsupported,
        DropReason::NotIp,
        DropReason::IpMalformed,
        DropReason::SnapTruncated,
        DropReason::NotUdpTcp,
        DropReason::NotDnsPort,
        DropReason::TransportMalformed,
        DropReason::FragmentInvalid,
        DropReason::FragmentTimeout,
        DropReason::FragmentOverflow,
        DropReason::TcpGap,
        DropReason::TcpOverflow,
        DropReason::TunnelMalformed,
        DropReason::TunnelTooDeep,
        DropReason::TunnelUnsupported,
    ];

    /// The label used in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::LinkTruncated => "link_truncated",
            DropReason::LinkUnsupported => "link_unsupported",
            DropReason::NotIp => "not_ip",
            DropReason::IpMalformed => "ip_malformed",
            DropReason::SnapTruncated => "snap_truncated",
            DropReason::NotUdpTcp => "not_udp_tcp",
            DropReason::NotDnsPort => "not_dns_port",
            DropReason::TransportMalformed => "transport_malformed",
            DropReason::FragmentInvalid => "fragment_invalid",
            DropReason::FragmentTimeout => "fragment_timeout",
            DropReason::FragmentOverflow => "fragment_overflow",
            DropReason::TcpGap => "tcp_gap",
            DropReason::TcpOverflow => "tcp_overflow",
            DropReason::TunnelMalformed => "tunnel_malformed",
            DropReason::TunnelTooDeep => "tunnel_too_deep",
            DropReason::TunnelUnsupported => "tunnel_unsupported",
        }
    }
}

/// Counters one decoder thread keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames handed to the decoder.
    pub frames: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// IP datagrams rebuilt from fragments.
    pub reassembled_datagrams: u64,
    /// Tunnelled packets opened, by [`Encap`] (`Encap as usize`).
    pub decapsulated: [u64; Encap::ALL.len()],
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::ALL.len()],
    /// Entries evicted from the decoder's state tables to keep them within
    /// their bounds, by [`StateTable`] and [`Bound`] (`[table][bound]`).
    pub evictions: [[u64; Bound::ALL.len()]; StateTable::ALL.len()],
    /// How much the bytes each [`StateTable`] holds changed since these
    /// counters were last taken (`Decoder::take_stats` fills it in): the
    /// metrics keep the sum over decoder threads as a gauge.
    pub held_bytes_change: [i64; StateTable::ALL.len()],
}

/// The decoder's state tables, each bounded in entries and in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum StateTable {
    /// TCP flow directions and the bytes they buffer.
    Tcp,
    /// Incomplete IP datagrams.
    Fragments,
}

impl StateTable {
    pub const ALL: [StateTable; 2] = [StateTable::Tcp, StateTable::Fragments];

    /// The label used in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            StateTable::Tcp => "tcp",
            StateTable::Fragments => "fragments",
        }
    }
}

/// Which bound an eviction kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Bound {
    /// The table held its most entries (flow directions, datagrams).
    Entries,
    /// The table's entries together held the decoder's byte budget.
    Bytes,
}

impl Bound {
    pub const ALL: [Bound; 2] = [Bound::Entries, Bound::Bytes];

    /// The label used in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Entries => "entries",
            Bound::Bytes => "bytes",
        }
    }
}

/// The encapsulations the decoder opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Encap {
    /// VXLAN (RFC 7348): Ethernet over UDP.
    Vxlan,
    /// Geneve (RFC 8926): Ethernet or IP over UDP, with options.
    Geneve,
    /// IPv4 or IPv6 directly in GRE (RFC 2784/2890).
    GreIp,
    /// Ethernet in GRE (transparent Ethernet bridging, 0x6558: gretap).
    GreTeb,
    /// ERSPAN type I: Ethernet in GRE 0x88BE, no ERSPAN header.
    Erspan1,
    /// ERSPAN type II: GRE 0x88BE with a sequence number, 8-byte header.
    Erspan2,
    /// ERSPAN type III: GRE 0x22EB, 12-byte header (and an optional 8-byte
    /// platform-specific one).
    Erspan3,
}

impl Encap {
    pub const ALL: [Encap; 7] = [
        Encap::Vxlan,
        Encap::Geneve,
        Encap::GreIp,
        Encap::GreTeb,
        Encap::Erspan1,
        Encap::Erspan2,
        Encap::Erspan3,
    ];

    /// The label used in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Encap::Vxlan => "vxlan",
            Encap::Geneve => "geneve",
            Encap::GreIp => "gre_ip",
            Encap::GreTeb => "gre_teb",
            Encap::Erspan1 => "erspan1",
            Encap::Erspan2 => "erspan2",
            Encap::Erspan3 => "erspan3",
        }
    }
}

impl DecodeStats {
    /// Counts one drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// The count for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Counts one eviction.
    #[inline]
    pub fn evict(&mut self, table: StateTable, bound: Bound) {
        self.evictions[table as usize][bound as usize] += 1;
    }

    /// Evictions from one table to keep one bound.
    pub fn evicted(&self, table: StateTable, bound: Bound) -> u64 {
        self.evictions[table as usize][bound as usize]
    }

    /// Adds another thread's counters to these.
    pub fn add(&mut self, other: &DecodeStats) {
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.reassembled_datagrams += other.reassembled_datagrams;
        for (a, b) in self.decapsulated.iter_mut().zip(other.decapsulated.iter()) {
            *a += b;
        }
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
        for (a, b) in self.evictions.iter_mut().zip(other.evictions.iter()) {
            for (a, b) in a.iter_mut().zip(b) {
                *a += b;
            }
        }
        for (a, b) in self
            .held_bytes_change
            .iter_mut()
            .zip(other.held_bytes_change.iter())
        {
            *a += b;
        }
    }

    /// The non-zero drop counts as `reason=count` words, e.g.
    /// `dns_malformed=3 not_dns_port=120` (empty when nothing was dropped).
    pub fn drops_summary(&self) -> String {
        DropReason::ALL
            .iter()
            .filter(|r| self.dropped(**r) > 0)
            .map(|r| format!("{}={}", r.as_str(), self.dropped(*r)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Returns the counters and resets them to zero.
    pub fn take(&mut self) -> DecodeStats {
        std::mem::take(self)
    }
}
