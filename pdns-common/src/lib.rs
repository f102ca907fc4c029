//! Types shared between the `pdns-ebpf` socket filter and the `pdns-sensor`
//! userspace.
//!
//! Everything here is `no_std`, `#[repr(C)]` and `Copy`, because the same
//! definitions are compiled for the `bpfel-unknown-none` target and for the
//! host, and the layout must agree byte for byte across that boundary. The
//! map names are the contract between the two sides: userspace finds the
//! maps in the loaded object by these names. The fanout program's hashes
//! ([`fanout`]) are here too, so that the host can run exactly what the
//! program runs.
#![no_std]

pub mod fanout;

/// The DNS port watched when the user names none.
pub const DEFAULT_DNS_PORT: u16 = 53;

/// Most ports the kernel filter can be told to accept.
///
/// The eBPF port map is a fixed-size hash map; userspace refuses more ports
/// than this instead of silently ignoring the rest.
pub const MAX_PORTS: usize = 16;

/// Name of the socket filter program in the eBPF object.
pub const PROGRAM_NAME: &str = "pdns_filter";

/// Name of the explaining twin of [`PROGRAM_NAME`], loaded instead of it by
/// `pdns-sensor run --explain-filter N`.
///
/// It runs the very same classification (the same generic code, so the
/// verdicts are identical by construction), counts into the same
/// [`STATS_MAP`] and returns the same value; in addition, for the first N
/// packets it sees, it writes one line per packet through aya-log saying
/// which verdict it reached and why. The production program carries no
/// logging code at all. The log lines travel through aya-log's own ring
/// buffer map (`AYA_LOGS`), which needs kernel 5.8; taking from the budget
/// in [`EXPLAIN_MAP`] needs an atomic fetch-and-add (kernel 5.12).
pub const EXPLAIN_PROGRAM_NAME: &str = "pdns_filter_explain";

/// Name of the explain budget map: `Array<i64>` with [`EXPLAIN_SLOTS`]
/// entries, used only by [`EXPLAIN_PROGRAM_NAME`].
///
/// - [`EXPLAIN_REMAINING`]: how many more packets to explain. Userspace
///   writes N before the program is attached. The program takes one unit
///   per packet with an atomic fetch-and-add of -1 shared by all CPUs (a
///   global budget, not one per CPU) and explains the packet only if the
///   value it took was still positive, so exactly N packets are explained
///   however the CPUs race. (A line can still be lost if aya-log's ring
///   buffer is full; userspace sizes it for N lines, up to 64 MiB.) The
///   value may end a little below 0, by at most the number of CPUs that
///   raced for the last unit; it is read before the atomic, so once the
///   budget is spent a packet costs one more load than in the production
///   program.
/// - [`EXPLAIN_TOTAL`]: N itself, read-only for the program, to number the
///   lines `1/N` to `N/N` in the order the budget was taken.
pub const EXPLAIN_MAP: &str = "PDNS_EXPLAIN";

/// Index of the remaining budget in [`EXPLAIN_MAP`].
pub const EXPLAIN_REMAINING: u32 = 0;

/// Index of the initial budget N in [`EXPLAIN_MAP`].
pub const EXPLAIN_TOTAL: u32 = 1;

/// Entries of [`EXPLAIN_MAP`].
pub const EXPLAIN_SLOTS: u32 = 2;

/// Name of the port set map: `HashMap<u16 (host order), u8 (1)>`, at most
/// [`MAX_PORTS`] entries. A packet is kept when its source or destination
/// port is a key.
pub const PORTS_MAP: &str = "PDNS_PORTS";

/// Name of the counters map: `PerCpuArray<FilterStats>` with one entry.
pub const STATS_MAP: &str = "PDNS_STATS";

/// Name of the fanout program in the eBPF object: a socket filter program
/// that `PACKET_FANOUT_EBPF` runs to pick a ring. It walks the packet with
/// the filter's own classification code (tunnels included). A whole UDP
/// datagram (its innermost IP header not a fragment's) that holds a DNS
/// question goes by a hash of the question name, case folded, so every
/// message about a name reaches one ring and one aggregator. Anything else
/// gets a symmetric hash of the innermost IP addresses it reached: of the
/// packet inside the tunnels the filter opens, or of the first IP header
/// that is a fragment (its fragments, which carry no inner headers past the
/// first, must meet), or of the outer packet when it is not tunnelled. Both
/// directions of a flow hash alike (the two addresses are ordered before
/// mixing), even when a mirror sends them from different outer addresses.
/// Packets without IP hash to 0.
pub const FANOUT_PROGRAM_NAME: &str = "pdns_fanout";

/// Name of the tunnel port map: `HashMap<u16 (UDP destination port, host
/// order), u8 (a `TUNNEL_*` kind)>`, at most [`MAX_TUNNEL_PORTS`] entries,
/// filled by userspace from `--vxlan-port` and `--geneve-port` (empty with
/// `--no-tunnels`).
pub const TUNNEL_PORTS_MAP: &str = "PDNS_TUNNEL_PORTS";

/// [`TUNNEL_PORTS_MAP`] value: VXLAN (RFC 7348) on this port.
pub const TUNNEL_VXLAN: u8 = 1;

/// [`TUNNEL_PORTS_MAP`] value: Geneve (RFC 8926) on this port.
pub const TUNNEL_GENEVE: u8 = 2;

/// Most UDP tunnel ports (VXLAN and Geneve together).
pub const MAX_TUNNEL_PORTS: usize = 16;

/// Name of the settings map: `Array<u32>` with [`CONFIG_SLOTS`] entries.
pub const CONFIG_MAP: &str = "PDNS_CONFIG";

/// Index of the flags word in [`CONFIG_MAP`].
pub const CONFIG_FLAGS: u32 = 0;

/// Index in [`CONFIG_MAP`] of the number of rings in each fanout group. With
/// one, the fanout program returns at once: the ring it would pick is the
/// only one (the group is there for the kernel's IPv4 reassembly). 0, as
/// the map starts, counts as several.
pub const CONFIG_RINGS: u32 = 1;

/// Entries of [`CONFIG_MAP`].
pub const CONFIG_SLOTS: u32 = 2;

/// Name of the interface map: `Array<u32>` with one entry, the index of
/// the interface whose packets the filter takes.
///
/// Why: the capture sockets are bound to every device of the network
/// namespace (ifindex 0), so that an interface that is deleted and created
/// again under its name can be followed without a new socket (the sensor
/// has dropped the capability to open one, and a socket in a fanout group
/// cannot be bound again). The filter's first check is therefore
/// `skb->ifindex == wanted`; anything else is counted in
/// [`FilterStats::rejected_interface`] and dropped. [`IFINDEX_ABSENT`]
/// (the interface does not exist now) matches no packet;
/// [`IFINDEX_ANY`] turns the check off (a socket bound to one device,
/// as the benchmark's ring reader opens them).
pub const IFINDEX_MAP: &str = "PDNS_IFINDEX";

/// [`IFINDEX_MAP`] value: the interface is absent; every packet is dropped.
pub const IFINDEX_ABSENT: u32 = 0;

/// [`IFINDEX_MAP`] value: packets of any device are classified.
pub const IFINDEX_ANY: u32 = u32::MAX;

/// Flag in [`CONFIG_FLAGS`]: look into GRE (IP protocol 47): IP, Ethernet
/// (0x6558) and ERSPAN I, II and III. Unset (`--no-tunnels`), GRE is just
/// another protocol that is not UDP or TCP.
pub const FLAG_GRE: u32 = 1;

/// Most tunnels inside one another that the filter opens: the userspace
/// decoder's limit too, so a packet nested deeper, which the decoder would
/// drop (`tunnel_too_deep`), is rejected in the kernel as malformed.
pub const MAX_TUNNEL_DEPTH: usize = 4;

/// Most in-band VLAN tags (802.1Q, 802.1ad, 0x9100) the filter walks. The
/// kernel strips the outermost tag on receive, so two in band means a
/// triple-tagged frame on the wire.
pub const MAX_VLAN_TAGS: usize = 3;

/// Most IPv6 extension headers the filter walks before giving up.
pub const MAX_IPV6_EXT_HEADERS: usize = 6;

/// What the kernel filter did, per CPU. Userspace sums the CPUs.
///
/// Every packet the filter sees is counted in exactly one field, so the
/// fields add up to the packets the filter ran on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// UDP or TCP with a watched source or destination port: kept.
    pub accepted: u64,
    /// Non-first IP fragments (no ports to look at): kept so userspace can
    /// reassemble them with their first fragment.
    pub accepted_fragments: u64,
    /// UDP or TCP to and from other ports: dropped.
    pub rejected_port: u64,
    /// IP but neither UDP nor TCP (ICMP, ESP, ...): dropped.
    pub rejected_protocol: u64,
    /// Not IP at all (ARP, LLDP, ...): dropped.
    pub rejected_not_ip: u64,
    /// Too short, too many tags or extension headers: dropped.
    pub rejected_malformed: u64,
    /// Tunnelled (VXLAN or Geneve on their ports, GRE, ERSPAN), with UDP
    /// or TCP on a watched port inside: kept.
    pub accepted_tunnel: u64,
    /// Tunnelled, and a fragment inside (a non-first one, or a first
    /// fragment cut before the filter could see the ports): kept for
    /// userspace to reassemble.
    pub accepted_tunnel_fragments: u64,
    /// Tunnelled, with UDP or TCP to and from other ports inside: dropped.
    pub rejected_tunnel_port: u64,
    /// Tunnelled, with no UDP or TCP over IP inside (ICMP, ARP, ...), or
    /// a tunnel payload that is not looked into (an unknown GRE protocol,
    /// GRE version 1 or with routing, a Geneve protocol other than
    /// Ethernet or IP, an ERSPAN III frame other than Ethernet): dropped.
    pub rejected_tunnel_protocol: u64,
    /// Tunnelled, with a truncated or lying tunnel header or inner packet,
    /// or nested deeper than [`MAX_TUNNEL_DEPTH`]: dropped.
    pub rejected_tunnel_malformed: u64,
    /// Not from the captured interface (another device of the network
    /// namespace, or any packet while the interface is absent; see
    /// [`IFINDEX_MAP`]): dropped before anything else is looked at.
    pub rejected_interface: u64,
}

impl FilterStats {
    /// Adds another CPU's (or another interval's) counters.
    pub fn add(&mut self, other: &FilterStats) {
        self.accepted += other.accepted;
        self.accepted_fragments += other.accepted_fragments;
        self.rejected_port += other.rejected_port;
        self.rejected_protocol += other.rejected_protocol;
        self.rejected_not_ip += other.rejected_not_ip;
        self.rejected_malformed += other.rejected_malformed;
        self.accepted_tunnel += other.accepted_tunnel;
        self.accepted_tunnel_fragments += other.accepted_tunnel_fragments;
        self.rejected_tunnel_port += other.rejected_tunnel_port;
        self.rejected_tunnel_protocol += other.rejected_tunnel_protocol;
        self.rejected_tunnel_malformed += other.rejected_tunnel_malformed;
        self.rejected_interface += other.rejected_interface;
    }

    /// Packets kept.
    pub fn kept(&self) -> u64 {
        self.accepted
            + self.accepted_fragments
            + self.accepted_tunnel
            + self.accepted_tunnel_fragments
    }

    /// Packets dropped in the kernel.
    pub fn rejected(&self) -> u64 {
        self.rejected_port
            + self.rejected_protocol
            + self.rejected_not_ip
            + self.rejected_malformed
            + self.rejected_tunnel_port
            + self.rejected_tunnel_protocol
            + self.rejected_tunnel_malformed
            + self.rejected_interface
    }
}
