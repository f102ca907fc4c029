//! Packets and messages as sources hand them to the pipeline.
//!
//! A capture source yields [`Frame`]s (link-layer bytes with their capture
//! time); the decoder turns them into [`DnsMessage`]s; a source that already
//! has DNS messages (a resolver's dnstap stream) hands those over directly.
//! Both borrow their bytes from whoever owns them — a pcap buffer, a mapped
//! ring block, a reassembly buffer — for the duration of one call.

/// Capture time: seconds and nanoseconds since the Unix epoch.
///
/// Always the time the packet was captured (pcap header, ring block), never
/// the wall clock at decode time: a backfilled capture keeps its dates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub secs: u64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn from_secs(secs: u64) -> Self {
        Timestamp { secs, nanos: 0 }
    }
}

/// The link types we decode, from the pcap `LINKTYPE_*` registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_NULL (0): 4-byte address family in the capturing host's
    /// byte order.
    Null,
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_RAW (101, and the historical 12 and 14): IPv4 or IPv6.
    Raw,
    /// LINKTYPE_LOOP (108): like NULL, family in network byte order.
    Loop,
    /// LINKTYPE_LINUX_SLL (113).
    LinuxSll,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_LINUX_SLL2 (276).
    LinuxSll2,
    /// LINKTYPE_IEEE802_11 (105): 802.11 frames, as in monitor mode.
    Ieee80211,
    /// LINKTYPE_IEEE802_11_RADIOTAP (127): radiotap header, then 802.11.
    Radiotap,
    /// Anything else; frames of this type are counted and skipped.
    Other(u32),
}

impl LinkType {
    /// Maps a pcap/pcapng link type number.
    pub fn from_pcap(linktype: u32) -> LinkType {
        match linktype {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            105 => LinkType::Ieee80211,
            127 => LinkType::Radiotap,
            other => LinkType::Other(other),
        }
    }
}

/// One captured frame, borrowed from wherever the source keeps it.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub ts: Timestamp,
    pub link: LinkType,
    pub data: &'a [u8],
}

/// Transport that carried a DNS message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One DNS message (without the TCP length prefix), with the time it was
/// seen and how it travelled.
#[derive(Clone, Copy, Debug)]
pub struct DnsMessage<'a> {
    pub ts: Timestamp,
    pub transport: Transport,
    pub data: &'a [u8],
}
