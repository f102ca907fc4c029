//! Decode: from a captured frame to the DNS messages it carries.
//!
//! This is the stage every packet source shares. A [`Frame`] (bytes plus
//! capture time and link type, borrowed from a pcap buffer or a TPACKET_V3
//! block) goes in; zero or more [`DnsMessage`]s come out through a
//! callback, each borrowing either the frame itself (the common case: one UDP
//! datagram, or one TCP segment holding whole messages) or a reassembly
//! buffer (IP fragments, DNS messages spanning TCP segments).
//!
//! The layers are one module each: [`link`] (Ethernet, VLAN/QinQ, SLL, SLL2,
//! NULL, raw IP), `ip` (IPv4/IPv6 headers via `etherparse`, fragments
//! handed to `defrag`), and the transport, where UDP is trivial and TCP
//! goes through `tcp`. All state a decoder keeps — fragments, TCP flows —
//! is bounded in entries, bytes and time, and everything that is not used is
//! counted in [`DecodeStats`] under a [`DropReason`].
//!
//! A [`Decoder`] is single-threaded by design: the pipeline runs one per
//! thread and routes packets by [`flow_hash`] so that both directions of a
//! flow and all fragments of a datagram meet in the same decoder.

mod defrag;
mod ip;
pub mod link;
mod stats;
mod tcp;
mod tunnel;

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;

pub use stats::{Bound, DecodeStats, DropReason, Encap, StateTable};

use crate::vocab::packet::{DnsMessage, Frame, LinkType, Timestamp, Transport};

/// One direction of a UDP or TCP flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// The tunnels the packet came through (0: none), see
    /// [`tunnel::TunnelId`]: the same addresses in two tunnels are two
    /// flows.
    pub tunnel: u64,
}

impl FlowKey {
    /// The same flow seen from the other side.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            tunnel: self.tunnel,
        }
    }
}

/// Limits that bound the memory a decoder may hold.
#[derive(Clone, Debug)]
pub struct DecodeConfig {
    /// UDP/TCP ports that carry DNS (either side of the flow).
    pub ports: Vec<u16>,
    /// Incomplete IP datagrams kept at once.
    pub max_fragment_datagrams: usize,
    /// Bytes of memory the incomplete IP datagrams may hold together.
    pub max_fragment_bytes: usize,
    /// Seconds (capture time) an incomplete datagram may wait.
    pub fragment_timeout_secs: u64,
    /// TCP flows tracked at once.
    pub max_tcp_flows: usize,
    /// Bytes buffered per TCP flow direction (a DNS message is at most
    /// 65 535 bytes plus the 2-byte length).
    pub max_tcp_buffer: usize,
    /// Bytes of memory all TCP flow directions may hold together.
    pub max_tcp_bytes: usize,
    /// Seconds (capture time) an idle TCP flow is kept.
    pub tcp_idle_secs: u64,
    /// Whether tunnels (VXLAN, Geneve, GRE, ERSPAN) are looked into.
    pub tunnels: bool,
    /// UDP destination ports of VXLAN and Geneve tunnels.
    pub vxlan_ports: Vec<u16>,
    pub geneve_ports: Vec<u16>,
}

/// IANA's VXLAN port (RFC 7348).
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// IANA's Geneve port (RFC 8926).
pub const DEFAULT_GENEVE_PORT: u16 = 6081;

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            ports: vec![pdns_common::DEFAULT_DNS_PORT],
            max_fragment_datagrams: 1024,
            max_fragment_bytes: 16 << 20,
            fragment_timeout_secs: 30,
            max_tcp_flows: 16_384,
            max_tcp_buffer: 2 * 65_538,
            max_tcp_bytes: 64 << 20,
            tcp_idle_secs: 120,
            tunnels: true,
            vxlan_ports: vec![DEFAULT_VXLAN_PORT],
            geneve_ports: vec![DEFAULT_GENEVE_PORT],
        }
    }
}

/// Turns frames into DNS messages, keeping fragment and TCP state.
pub struct Decoder {
    ports: PortSet,
    tunnels: tunnel::TunnelConfig,
    defrag: defrag::Defragmenter,
    tcp: tcp::TcpReassembler,
    /// Capture second of the newest frame, drives expiry.
    now: u64,
    /// Capture time of the newest frame.
    newest: Timestamp,
    last_expiry: u64,
    /// What [`take_stats`](Decoder::take_stats) last reported as held, per
    /// [`StateTable`].
    published_bytes: [i64; StateTable::ALL.len()],
    pub stats: DecodeStats,
}

impl Decoder {
    pub fn new(config: &DecodeConfig) -> Self {
        Decoder {
            ports: PortSet::new(&config.ports),
            tunnels: tunnel::TunnelConfig::new(config),
            defrag: defrag::Defragmenter::new(
                config.max_fragment_datagrams,
                config.max_fragment_bytes,
                config.fragment_timeout_secs,
            ),
            tcp: tcp::TcpReassembler::new(
                config.max_tcp_flows,
                config.max_tcp_buffer,
                config.max_tcp_bytes,
                config.tcp_idle_secs,
            ),
            now: 0,
            newest: Timestamp::default(),
            last_expiry: 0,
            published_bytes: [0; StateTable::ALL.len()],
            stats: DecodeStats::default(),
        }
    }

    /// Takes the counters (resetting them), with the change in the bytes
    /// each state table holds since the last call.
    pub fn take_stats(&mut self) -> DecodeStats {
        let mut stats = self.stats.take();
        for table in StateTable::ALL {
            let now = self.held_bytes(table) as i64;
            let published = &mut self.published_bytes[table as usize];
            stats.held_bytes_change[table as usize] = now - *published;
            *published = now;
        }
        stats
    }

    /// Bytes of memory one state table holds now.
    pub fn held_bytes(&self, table: StateTable) -> usize {
        match table {
            StateTable::Tcp => self.tcp.bytes(),
            StateTable::Fragments => self.defrag.bytes(),
        }
    }

    /// Decodes one frame and calls `emit` for every DNS message in it.
    ///
    /// Also emits, first, the messages that TCP flows gone idle still held
    /// behind a hole (stamped with the second of their flow's last
    /// segment); [`finish`](Decoder::finish) emits the rest at the end.
    pub fn decode(&mut self, frame: &Frame<'_>, emit: &mut dyn FnMut(DnsMessage<'_>)) {
        self.stats.frames += 1;
        self.stats.bytes += frame.data.len() as u64;
        self.newest = self.newest.max(frame.ts);
        if frame.ts.secs > self.now {
            self.now = frame.ts.secs;
            if self.now > self.last_expiry {
                self.last_expiry = self.now;
                self.defrag.expire(self.now, &mut self.stats);
                // Messages held in an idle direction are released with the
                // time of that direction's last segment.
                self.tcp
                    .expire(self.now, &mut self.stats, &mut |last_seen, message| {
                        emit(DnsMessage {
                            ts: Timestamp::from_secs(last_seen),
                            transport: Transport::Tcp,
                            data: message,
                        })
                    });
            }
        }
        let l3 = match link::strip(frame.link, frame.data) {
            Ok(l3) => l3,
            Err(reason) => return self.stats.drop(reason),
        };
        let mut ctx = ip::Context {
            ts: frame.ts,
            ports: &self.ports,
            defrag: &mut self.defrag,
            tcp: &mut self.tcp,
            stats: &mut self.stats,
            tunnels: &self.tunnels,
            tunnel: 0,
            depth: 0,
        };
        ip::decode(&mut ctx, l3, emit);
        if self.tcp.over_limits() {
            // Evicted directions release their held messages with the time
            // of their last segment, as idle ones do.
            self.tcp.shed(&mut self.stats, &mut |last_seen, message| {
                emit(DnsMessage {
                    ts: Timestamp::from_secs(last_seen),
                    transport: Transport::Tcp,
                    data: message,
                })
            });
        }
    }

    /// The input has ended: calls `emit` for every complete DNS message
    /// still held behind a hole in a TCP stream (with the capture time of
    /// the newest frame seen), forgets every TCP flow, and counts every
    /// incomplete IP datagram as timed out.
    pub fn finish(&mut self, emit: &mut dyn FnMut(DnsMessage<'_>)) {
        self.defrag.abandon_all(&mut self.stats);
        let ts = self.newest;
        self.tcp.flush_all(&mut self.stats, &mut |message| {
            emit(DnsMessage {
                ts,
                transport: Transport::Tcp,
                data: message,
            })
        });
    }

    /// Incomplete IP datagrams currently held.
    pub fn pending_fragments(&self) -> usize {
        self.defrag.len()
    }

    /// TCP flows currently tracked.
    pub fn tcp_flows(&self) -> usize {
        self.tcp.len()
    }
}

/// The set of DNS ports, as a bitmap: one lookup per packet, no hashing.
pub struct PortSet {
    bits: Box<[u64; 1024]>,
}

impl PortSet {
    pub fn new(ports: &[u16]) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        for &p in ports {
            bits[p as usize / 64] |= 1 << (p % 64);
        }
        PortSet { bits }
    }

    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.bits[port as usize / 64] & (1 << (port % 64)) != 0
    }
}

/// Dispatches frames to decoder threads: a whole UDP datagram by the DNS
/// question name it carries, anything else by a symmetric hash of its IP
/// addresses — of the innermost packet when it is tunnelled.
///
/// A datagram that is not a fragment holds a whole message, so the decoder
/// that gets it needs no other packet, and its question name decides (see
/// [`question_hash`]): every query and response for a name then meets in
/// one decoder, whose aggregator counts them once, instead of each decoder
/// writing the name's records again. A name that makes up most of the
/// traffic loads its decoder alone, as one busy client did before.
///
/// What needs packets together goes by its addresses alone (not the
/// ports): TCP streams in both directions, and IP fragments, whose later
/// pieces carry no ports or question. A tunnelled packet is hashed by what
/// is inside, so both directions of an inner flow meet even when a mirror
/// sends them from different outer addresses. An outer packet that is
/// fragmented is opened only in its first fragment: the hasher remembers
/// where the first fragment went and sends the later ones of the same
/// datagram there (a later fragment that arrives before its first goes by
/// the outer addresses, and that datagram is then lost: counted as a
/// fragment timeout). Frames without IP hash to 0.
pub struct FlowHasher {
    tunnels: tunnel::TunnelConfig,
    /// Hashes given to the first fragments of tunnelled datagrams, by
    /// (outer source, destination, identification); bounded.
    first_fragments: HashMap<(u128, u128, u32), u64>,
    order: VecDeque<(u128, u128, u32)>,
}

/// Outer datagrams whose dispatch the hasher remembers.
const REMEMBERED_FRAGMENTS: usize = 4096;

impl FlowHasher {
    pub fn new(config: &DecodeConfig) -> FlowHasher {
        FlowHasher {
            tunnels: tunnel::TunnelConfig::new(config),
            first_fragments: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn hash(&mut self, link: LinkType, data: &[u8]) -> u64 {
        let Ok(l3) = link::strip(link, data) else {
            return 0;
        };
        self.hash_ip(l3)
    }

    /// The lane (of `lanes`) a frame with this hash goes to: the hash
    /// scaled to the count, by its high bits (a multiplication where `%`
    /// would divide, per frame).
    #[inline]
    pub fn lane(hash: u64, lanes: usize) -> usize {
        ((u128::from(hash) * lanes as u128) >> 64) as usize
    }

    /// The hash of an IP packet (or of anything that follows a link
    /// header).
    ///
    /// Nearly every frame is UDP in IPv4 or IPv6 that is neither a fragment
    /// nor a tunnel: it is hashed at once, without etherparse's walk of its
    /// headers (which, with the tunnel check, was a tenth of the reader
    /// thread's time when it dispatched to two decoders). What this
    /// shortcut takes, [`FlowHasher::general_hash`] hashes alike: it finds
    /// no fragment, and no tunnel port on the datagram.
    #[inline]
    fn hash_ip(&mut self, l3: &[u8]) -> u64 {
        if let Some(udp) = ip::plain_udp(l3)
            && (!self.tunnels.enabled
                || udp.len() < 8
                || self
                    .tunnels
                    .udp(u16::from_be_bytes([udp[2], udp[3]]))
                    .is_none())
        {
            return datagram_hash(l3, Some(udp));
        }
        if !self.tunnels.enabled {
            return ip::address_hash(l3);
        }
        self.general_hash(l3)
    }

    /// [`FlowHasher::hash_ip`] for any packet, tunnels and fragments
    /// included.
    fn general_hash(&mut self, l3: &[u8]) -> u64 {
        let Ok(outer) = etherparse::IpSlice::from_slice(l3) else {
            return ip::address_hash(l3);
        };
        let Some((src, dst, id, first)) = tunnel::fragment_id(&outer) else {
            let inner = tunnel::innermost(&self.tunnels, l3, &outer);
            return datagram_hash(inner, ip::plain_udp(inner));
        };
        let key = (src, dst, id);
        if !first {
            return match self.first_fragments.get(&key) {
                Some(hash) => *hash,
                None => ip::address_hash(l3),
            };
        }
        let inner = tunnel::innermost(&self.tunnels, l3, &outer);
        let hash = datagram_hash(inner, ip::plain_udp(inner));
        if inner.as_ptr() != l3.as_ptr() && self.first_fragments.insert(key, hash).is_none() {
            self.order.push_back(key);
            if self.order.len() > REMEMBERED_FRAGMENTS
                && let Some(old) = self.order.pop_front()
            {
                self.first_fragments.remove(&old);
            }
        }
        hash
    }
}

/// The hash of an IP packet, `udp` its datagram when it is a whole UDP
/// datagram ([`ip::plain_udp`]): the DNS question name's when it carries
/// one, else the addresses'.
#[inline]
fn datagram_hash(l3: &[u8], udp: Option<&[u8]>) -> u64 {
    udp.and_then(|udp| udp.get(8..))
        .and_then(question_hash)
        .unwrap_or_else(|| ip::address_hash(l3))
}

/// A hash of the question name of a DNS message, the same whatever the
/// case of its letters; `None` if `message` has no question or its name
/// does not parse.
///
/// A datagram holds a whole message, so its decoder needs nothing of any
/// other datagram, and the name decides which decoder gets it: then the
/// queries and responses for a name all reach one decoder, and so do its
/// records (those of the names its answers lead to aside). Dispatched by
/// addresses, a name asked by many clients reached every decoder, and each
/// decoder's aggregator and store writer held and wrote it again: with two
/// decoders the store took each record about twice.
///
/// Letters are folded by setting bit 5 of every byte: `A` and `a` meet
/// (DNS 0x20 randomises the case per query), and the other bytes map the
/// same way for every message, which is all a dispatch hash needs.
#[inline]
fn question_hash(message: &[u8]) -> Option<u64> {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
    if message.len() < 13 || message[4..6] == [0, 0] {
        return None;
    }
    let mut end = 12;
    loop {
        let len = usize::from(*message.get(end)?);
        end += 1;
        if len == 0 {
            break;
        }
        if len > 63 || end - 12 + len > 254 {
            return None;
        }
        end += len;
    }
    let name = &message[12..end];
    let mut hash = name.len() as u64;
    let mut words = name.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("8 bytes")) | FOLD;
        hash = (hash ^ word).wrapping_mul(MULTIPLIER).rotate_left(23);
    }
    let mut last = [0; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    hash ^= u64::from_le_bytes(last) | FOLD;
    Some(foldhash::fast::FixedState::with_seed(0x5eed_d115).hash_one(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatch shortcut hashes what it takes as the general path
    /// does: every packet of the real captures (tunnels among them), and
    /// the same packets sent to the VXLAN and Geneve ports, where the
    /// shortcut must stand aside.
    #[test]
    fn the_flow_hash_shortcut_agrees_with_the_general_hash() {
        let config = DecodeConfig::default();
        let (mut fast, mut general) = (FlowHasher::new(&config), FlowHasher::new(&config));
        let mut packets = ip::tests::captured_packets();
        let mut to_tunnel_ports = Vec::new();
        for p in &packets {
            if ip::plain_udp(p).is_some() {
                let header = if p[0] == 0x45 { 20 } else { 40 };
                for port in [DEFAULT_VXLAN_PORT, DEFAULT_GENEVE_PORT] {
                    let mut m = p.clone();
                    m[header + 2..header + 4].copy_from_slice(&port.to_be_bytes());
                    to_tunnel_ports.push(m);
                }
            }
        }
        packets.extend(to_tunnel_ports);
        let (mut taken, mut opened) = (0, 0);
        for p in &packets {
            let expected = general.general_hash(p);
            assert_eq!(fast.hash_ip(p), expected, "differs on {p:02x?}");
            let plain = ip::plain_udp(p);
            let unopened = datagram_hash(p, plain);
            taken += usize::from(plain.is_some() && expected == unopened);
            // A tunnel the general path opened: hashed by what is inside,
            // which the shortcut would have missed.
            opened += usize::from(expected != unopened);
        }
        // The shortcut is taken for most packets, and the captures hold
        // tunnels that only the general path opens: a check of the tunnel
        // port that let them through would fail above.
        assert!(
            taken > packets.len() / 4,
            "taken {taken} of {}",
            packets.len()
        );
        assert!(opened > 10, "{opened} tunnelled packets");
    }

    /// Every query and response for one name goes to one decoder, whatever
    /// the case of its letters (DNS 0x20) and whoever asked, and different
    /// names spread over the decoders: over every DNS datagram of the real
    /// captures, grouped by their question name as the extractor reads it.
    #[test]
    fn datagrams_of_one_question_name_go_to_one_decoder() {
        let mut hasher = FlowHasher::new(&DecodeConfig::default());
        let mut by_name: HashMap<Vec<u8>, (u64, usize)> = HashMap::new();
        let mut lanes = [0usize; 4];
        let mut folded = 0;
        for p in ip::tests::captured_packets() {
            let Some(udp) = ip::plain_udp(&p) else {
                continue;
            };
            let Ok(message) = domain::base::Message::from_octets(&udp[8.min(udp.len())..]) else {
                continue;
            };
            let Some(Ok(question)) = message.question().next() else {
                continue;
            };
            let name = question
                .qname()
                .to_string()
                .to_ascii_lowercase()
                .into_bytes();
            let hash = hasher.hash_ip(&p);
            let (first, seen) = by_name.entry(name).or_insert((hash, 0));
            assert_eq!(hash, *first, "{p:02x?}");
            *seen += 1;
            lanes[FlowHasher::lane(hash, 4)] += 1;
            // The same datagram with the case of its question's letters
            // flipped.
            let mut flipped = p.clone();
            let start = p.len() - udp.len() + 8 + 12;
            let mut at = start;
            while let Some(&len) = flipped.get(at).filter(|&&len| len > 0 && len < 64) {
                for b in flipped.iter_mut().skip(at + 1).take(usize::from(len)) {
                    if b.is_ascii_alphabetic() {
                        *b ^= 0x20;
                    }
                }
                at += 1 + usize::from(len);
            }
            folded += usize::from(flipped != p);
            assert_eq!(hasher.hash_ip(&flipped), hash, "{flipped:02x?}");
        }
        let names_seen_twice = by_name.values().filter(|(_, n)| *n > 1).count();
        assert!(names_seen_twice > 50, "{names_seen_twice} names seen twice");
        assert!(folded > 300, "{folded} datagrams with letters");
        assert!(lanes.iter().all(|&n| n > folded / 20), "lanes {lanes:?}");
    }

    /// What does not hold a question name is hashed by its addresses, and
    /// nothing in a datagram's bytes makes the question hash fail.
    #[test]
    fn question_hash_takes_any_bytes() {
        let mut message = vec![0u8; 12];
        assert_eq!(question_hash(&message), None, "no question");
        message[5] = 1;
        assert_eq!(question_hash(&message), None, "a count but no name");
        message.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        let name = question_hash(&message).expect("a name");
        message[13] = b'E';
        assert_eq!(question_hash(&message), Some(name), "case folded");
        message[12] = 0xc0;
        assert_eq!(question_hash(&message), None, "a pointer in the question");
        message[12] = 63;
        assert_eq!(question_hash(&message), None, "a label past the end");
        // 128 labels of one letter: past 255 bytes.
        let mut long = message[..12].to_vec();
        for _ in 0..128 {
            long.extend_from_slice(b"\x01a");
        }
        long.push(0);
        assert_eq!(question_hash(&long), None, "a name longer than 255 bytes");
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in 0..600 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = question_hash(&bytes);
        }
    }

    /// Both directions of a flow go to one decoder, and different flows
    /// spread over the decoders: each captured packet with its addresses
    /// swapped hashes as itself.
    #[test]
    fn the_flow_hash_is_symmetric_and_spreads() {
        let mut hasher = FlowHasher::new(&DecodeConfig::default());
        let mut lanes = [0usize; 2];
        let mut swapped = 0;
        for p in ip::tests::captured_packets() {
            let (a, len) = match p[0] >> 4 {
                4 if p.len() >= 20 => (12, 4),
                6 if p.len() >= 40 => (8, 16),
                _ => continue,
            };
            let mut reply = p.clone();
            reply[a..a + len].copy_from_slice(&p[a + len..a + 2 * len]);
            reply[a + len..a + 2 * len].copy_from_slice(&p[a..a + len]);
            let hash = hasher.hash_ip(&p);
            assert_eq!(hasher.hash_ip(&reply), hash, "{p:02x?}");
            swapped += usize::from(reply != p);
            lanes[FlowHasher::lane(hash, 2)] += 1;
        }
        assert!(swapped > 1000, "{swapped} packets swapped");
        assert!(lanes.iter().all(|&n| n > swapped / 10), "lanes {lanes:?}");
    }
}
