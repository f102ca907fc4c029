//! Per-thread decode counters.
//!
//! Decoder threads count in plain integers (no atomics on the hot path) and
//! hand their totals to the Prometheus registry when they flush; see
//! [`crate::metrics`]. Every packet that does not become DNS data is counted
//! under exactly one [`DropReason`], so a user can always tell *why* traffic
//! was not recorded.

/// Why a frame, datagram, segment or DNS message was not used.
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
    /// The DNS message does not parse (bad header, bad name, compression loop,
    /// record running past the end, ...).
    DnsMalformed,
    /// A DNS message whose opcode is not QUERY (UPDATE, NOTIFY, IQUERY...):
    /// its sections do not hold answers.
    DnsOpcodeIgnored,
    /// One resource record whose RDATA does not parse for its type (the
    /// rest of the message is still used).
    RecordMalformed,
    /// A record of a class other than IN, or a meta type (ANY, AXFR...) in
    /// a section that should hold data.
    RecordIgnored,
}

impl DropReason {
    /// Every reason, in a stable order (used for metrics and reports).
    pub const ALL: [DropReason; 17] = [
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
        DropReason::DnsMalformed,
        DropReason::DnsOpcodeIgnored,
        DropReason::RecordMalformed,
        DropReason::RecordIgnored,
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
            DropReason::DnsMalformed => "dns_malformed",
            DropReason::DnsOpcodeIgnored => "dns_opcode_ignored",
            DropReason::RecordMalformed => "dns_record_malformed",
            DropReason::RecordIgnored => "dns_record_ignored",
        }
    }

    /// Whether this reason means broken or lost data (as opposed to traffic
    /// that is simply not ours, like ARP or HTTPS).
    pub fn is_error(self) -> bool {
        !matches!(
            self,
            DropReason::NotIp
                | DropReason::NotUdpTcp
                | DropReason::NotDnsPort
                | DropReason::DnsOpcodeIgnored
                | DropReason::RecordIgnored
        )
    }
}

/// RCODEs counted individually (0..=23 are assigned); the last slot is
/// "other".
pub const RCODE_SLOTS: usize = 25;

/// Counters one decoder thread keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames handed to the decoder.
    pub frames: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// IP datagrams rebuilt from fragments.
    pub reassembled_datagrams: u64,
    /// DNS messages found, split by QR bit.
    pub dns_queries: u64,
    pub dns_responses: u64,
    /// Of those, carried over TCP.
    pub tcp_queries: u64,
    pub tcp_responses: u64,
    /// Responses by RCODE (extended RCODEs included); the last slot
    /// collects everything above.
    pub rcodes: [u64; RCODE_SLOTS],
    /// Record observations and negative-answer observations produced.
    pub observations: u64,
    pub negatives: u64,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::ALL.len()],
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

    /// Adds another thread's counters to these.
    pub fn add(&mut self, other: &DecodeStats) {
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.reassembled_datagrams += other.reassembled_datagrams;
        self.dns_queries += other.dns_queries;
        self.dns_responses += other.dns_responses;
        self.tcp_queries += other.tcp_queries;
        self.tcp_responses += other.tcp_responses;
        self.observations += other.observations;
        self.negatives += other.negatives;
        for (a, b) in self.rcodes.iter_mut().zip(other.rcodes.iter()) {
            *a += b;
        }
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
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
