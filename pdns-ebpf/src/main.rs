//! The kernel-side DNS filter: an eBPF socket filter attached to every
//! AF_PACKET capture socket of `pdns-sensor run`, and the fanout program
//! that picks each packet's ring.
//!
//! Why in the kernel: on a resolver host most traffic is not DNS, and every
//! packet a filter rejects is one the kernel never copies into the ring, one
//! the decoder threads never look at and one that cannot cause a ring drop.
//!
//! What it keeps: Ethernet frames, with up to [`MAX_VLAN_TAGS`] in-band
//! 802.1Q/802.1ad tags (the kernel has already stripped the outer tag on
//! receive and reports it out of band), carrying IPv4 (any IHL) or IPv6
//! (walking up to [`MAX_IPV6_EXT_HEADERS`] extension headers) and then UDP or
//! TCP with a source or destination port in the [`PORTS_MAP`] set. Non-first
//! IP fragments carry no ports and are kept, so userspace can reassemble
//! them with their first fragment. Every verdict is counted per CPU in
//! [`STATS_MAP`].
//!
//! Tunnels: UDP to a destination port of [`TUNNEL_PORTS_MAP`] (VXLAN,
//! Geneve) and, when [`FLAG_GRE`] is set, IP protocol 47 (GRE carrying IP
//! or Ethernet, ERSPAN I, II and III) are opened: the tunnel header is
//! checked and skipped, and the packet inside goes through the same
//! classification (VLAN tags, IPv4/IPv6, fragments, ports), up to
//! [`MAX_TUNNEL_DEPTH`] tunnels deep — the userspace decoder's limit, so a
//! packet nested deeper (a loop, or hostile) is rejected as malformed and
//! nothing the decoder would record is lost. Tunnelled packets have verdict
//! counters of their own. A first fragment (IPv4 MF set, or an IPv6
//! fragment header with M set) is never rejected as malformed: when the
//! tunnel or the packet inside is cut short in it, the rest is in the
//! fragments the filter keeps, so it is kept too (`accepted_*fragments`).
//! An outer IPv4 datagram usually arrives reassembled: the fanout group has
//! `PACKET_FANOUT_FLAG_DEFRAG`.
//!
//! The layers are walked by one bounded loop (one iteration per tunnel
//! level), so the classification code exists once in the object and the
//! verifier follows each level as an iteration.
//!
//! Socket filters may not use direct packet access, so every read goes
//! through `bpf_skb_load_bytes` (`ctx.load`), which bounds-checks at run time:
//! a short packet simply fails the load and is counted as malformed. Offset 0
//! is the Ethernet header (on `lo` too, whose header is zeroed but carries the
//! right EtherType) for the filters; for the fanout program it is the network
//! header of a received packet (see [`fanout_start`]).
//!
//! Three programs share this object and the classification code.
//! `pdns_filter` is the production filter. `pdns_filter_explain` answers
//! "why is my traffic rejected?" (`pdns-sensor run --explain-filter N`): it
//! runs the same generic classification, instantiated with a [`Trace`]
//! that records the facts behind the verdict (the production program's
//! `Trace` is a zero-sized no-op), and for the first N packets logs one
//! line per packet through aya-log. After the budget is spent it behaves
//! exactly like `pdns_filter`: same counters, same return value.
//! `pdns_fanout` is run by `PACKET_FANOUT_EBPF` to pick a ring: the same
//! classification with a [`Trace`] that notes the innermost IP header and
//! the UDP header after it. A whole datagram goes by its DNS question name
//! ([`question_hash`]), anything else by the header's addresses, hashed
//! symmetrically (see `pdns_common::FANOUT_PROGRAM_NAME`).
//!
//! Build it only for `bpfel-unknown-none` (pdns-sensor's build.rs does, with
//! the nightly toolchain); it is never built for the host.
#![no_std]
#![no_main]
// For one instruction of inline assembly, see `fetch_add`.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::macros::{map, socket_filter};
use aya_ebpf::maps::{Array, HashMap, PerCpuArray};
use aya_ebpf::programs::SkBuffContext;
use aya_log_ebpf::info;
use pdns_common::fanout::{address_pair_hash, question_name_hash};
use pdns_common::{
    CONFIG_FLAGS, CONFIG_RINGS, CONFIG_SLOTS, EXPLAIN_REMAINING, EXPLAIN_SLOTS, EXPLAIN_TOTAL,
    FLAG_GRE, FilterStats, IFINDEX_ANY, MAX_IPV6_EXT_HEADERS, MAX_PORTS, MAX_TUNNEL_DEPTH,
    MAX_TUNNEL_PORTS, MAX_VLAN_TAGS, TUNNEL_GENEVE, TUNNEL_VXLAN,
};

/// The watched ports, host byte order; filled by userspace from `--port`.
#[map(name = "PDNS_PORTS")]
static PDNS_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_PORTS as u32, 0);

/// UDP destination ports of tunnels (`pdns_common::TUNNEL_PORTS_MAP`).
#[map(name = "PDNS_TUNNEL_PORTS")]
static PDNS_TUNNEL_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_TUNNEL_PORTS as u32, 0);

/// Settings (`pdns_common::CONFIG_MAP`): the flags word.
#[map(name = "PDNS_CONFIG")]
static PDNS_CONFIG: Array<u32> = Array::with_max_entries(CONFIG_SLOTS, 0);

/// The index of the captured interface (`pdns_common::IFINDEX_MAP`):
/// written by userspace, 0 while the interface is absent.
#[map(name = "PDNS_IFINDEX")]
static PDNS_IFINDEX: Array<u32> = Array::with_max_entries(1, 0);

/// One [`FilterStats`] per CPU.
#[map(name = "PDNS_STATS")]
static PDNS_STATS: PerCpuArray<FilterStats> = PerCpuArray::with_max_entries(1, 0);

/// The explain program's [`Facts`], one per CPU. In a map value rather
/// than on the stack on purpose: the verifier tracks every value written
/// to the stack, so facts that differ from path to path (tags counted,
/// protocols seen, tunnels opened) kept it from pruning equivalent states,
/// and over the tunnel layers it ran out of its million instructions; it
/// does not track what a map value holds.
#[map(name = "PDNS_FACTS")]
static PDNS_FACTS: PerCpuArray<Facts> = PerCpuArray::with_max_entries(1, 0);

/// The explain budget (`pdns_common::EXPLAIN_MAP`): remaining, total.
#[map(name = "PDNS_EXPLAIN")]
static PDNS_EXPLAIN: Array<i64> = Array::with_max_entries(EXPLAIN_SLOTS, 0);

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// Transparent Ethernet bridging: an Ethernet frame inside GRE or Geneve.
const ETH_P_TEB: u16 = 0x6558;
/// ERSPAN type I (no sequence number) and II (sequence number) over GRE.
const ETH_P_ERSPAN: u16 = 0x88be;
/// ERSPAN type III over GRE.
const ETH_P_ERSPAN3: u16 = 0x22eb;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_GRE: u8 = 47;

const GRE_CHECKSUM: u16 = 0x8000;
const GRE_ROUTING: u16 = 0x4000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQUENCE: u16 = 0x1000;
const GRE_VERSION: u16 = 0x0007;

/// `skb->pkt_type` of a packet this host sends.
const PACKET_OUTGOING: u32 = 4;

/// What the filter decided about one packet.
#[derive(Clone, Copy, Default)]
enum Verdict {
    #[default]
    Accept,
    Fragment,
    Port,
    Protocol,
    NotIp,
    Malformed,
    /// A tunnel whose payload is not looked into.
    Unsupported,
}

/// A verdict, and whether the packet is tunnel traffic (a tunnel header
/// was recognised, whether or not it could be opened).
#[derive(Clone, Copy)]
struct Outcome {
    verdict: Verdict,
    tunnelled: bool,
}

/// The tunnels the filter opens (numbered from 1 in the explain lines).
#[derive(Clone, Copy, Default)]
#[repr(u8)]
enum Tunnel {
    #[default]
    Vxlan,
    Geneve,
    /// GRE carrying IP or Ethernet.
    Gre,
    Erspan1,
    Erspan2,
    Erspan3,
}

/// Where the next layer starts: an Ethernet header at `offset`, or what
/// `ethertype` announces (VLAN tags included) at `offset`.
///
/// A struct rather than an enum on purpose: every field is always defined.
/// With an enum, the EtherType slot of an Ethernet layer was undefined, and
/// LLVM carried it around the layer loop in a register it never wrote;
/// the verifier refuses such a read ("R7 !read_ok").
#[derive(Clone, Copy)]
struct Next {
    ethernet: bool,
    ethertype: u16,
    offset: usize,
}

impl Next {
    #[inline(always)]
    fn ethernet(offset: usize) -> Next {
        Next {
            ethernet: true,
            ethertype: 0,
            offset,
        }
    }

    #[inline(always)]
    fn ethertype(ethertype: u16, offset: usize) -> Next {
        Next {
            ethernet: false,
            ethertype,
            offset,
        }
    }
}

/// What one layer ended in: a verdict, or a tunnel to open.
enum Step {
    Done(Verdict),
    Open(Next),
}

/// State carried from one layer to the next.
#[derive(Default)]
struct Walk {
    /// A tunnel header was recognised.
    tunnelled: bool,
    /// Inside a first fragment: what follows may be cut short.
    partial: bool,
}

#[socket_filter]
fn pdns_filter(ctx: SkBuffContext) -> i64 {
    if !wanted_interface(&ctx) {
        return other_interface();
    }
    let outcome = classify(&ctx, Next::ethernet(0), &mut NoTrace);
    finish(&ctx, outcome)
}

#[socket_filter]
fn pdns_filter_explain(ctx: SkBuffContext) -> i64 {
    // Before the budget: other devices' packets are not explained.
    if !wanted_interface(&ctx) {
        return other_interface();
    }
    // Index 0 of a one-entry array always exists.
    let Some(facts) = PDNS_FACTS.get_ptr_mut(0) else {
        return 0;
    };
    let mut trace = FactsPtr(facts);
    trace.reset();
    let outcome = classify(&ctx, Next::ethernet(0), &mut trace);
    // Through the map value too, so that every path of the classification
    // meets here in one state (the verifier does not know what the value
    // holds) and the logging below is verified once, not once per verdict.
    let outcome = trace.outcome(outcome);
    if let Some((n, total)) = take_budget() {
        // SAFETY: a per-CPU slot; socket filters run with preemption
        // disabled, so nothing else uses this CPU's copy while this packet
        // is handled, and nothing writes it from here on.
        explain(&ctx, outcome, unsafe { &*facts }, n, total);
    }
    finish(&ctx, outcome)
}

/// The fanout program: returns the hash of a whole UDP datagram's DNS
/// question name, or else a symmetric hash of the innermost IP addresses
/// (the kernel takes it modulo the number of rings).
#[socket_filter]
fn pdns_fanout(ctx: SkBuffContext) -> i64 {
    // One ring: it gets every packet whatever this returns.
    if PDNS_CONFIG
        .get(CONFIG_RINGS)
        .is_some_and(|&rings| rings == 1)
    {
        return 0;
    }
    // Another device's packet: the filter drops it in whichever ring it
    // goes to, so spare it the walk.
    if !wanted_interface(&ctx) {
        return 0;
    }
    let mut innermost = Innermost::default();
    let _ = classify(&ctx, fanout_start(&ctx), &mut innermost);
    innermost.hash(&ctx) as i64
}

/// Where the fanout program's packet starts. Fanout runs before the
/// packet socket pushes the link header back: a received packet starts at
/// its network header (after any tag the kernel stripped; an in-band inner
/// tag of QinQ is still there, announced by `skb->protocol`), a packet this
/// host sends at its Ethernet header — unless the fanout group's
/// defragmentation has just reassembled it, which leaves it at its network
/// header too.
#[inline(always)]
fn fanout_start(ctx: &SkBuffContext) -> Next {
    // SAFETY: plain reads of the context the kernel passed; socket
    // filters may read both fields.
    let (pkt_type, protocol) = unsafe { ((*ctx.skb.skb).pkt_type, (*ctx.skb.skb).protocol) };
    let protocol = u16::from_be(protocol as u16);
    if pkt_type == PACKET_OUTGOING {
        let ip_version = match protocol {
            ETH_P_IP => 4,
            ETH_P_IPV6 => 6,
            _ => 0,
        };
        let reassembled = ip_version != 0
            && be16(ctx, 12) != Some(protocol)
            && ctx.load::<u8>(0).is_ok_and(|b| b >> 4 == ip_version);
        if !reassembled {
            return Next::ethernet(0);
        }
    }
    Next::ethertype(protocol, 0)
}

/// Whether the packet came through the captured interface. The capture
/// sockets are bound to every device of the network namespace, so that
/// the interface can be followed when it is deleted and created again;
/// this check makes each fanout group take its own interface's packets
/// only (see `pdns_common::IFINDEX_MAP`).
#[inline(always)]
fn wanted_interface(ctx: &SkBuffContext) -> bool {
    let Some(&wanted) = PDNS_IFINDEX.get(0) else {
        return false;
    };
    // SAFETY: a plain read of the context the kernel passed; socket
    // filters may read `ifindex`.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    wanted == IFINDEX_ANY || ifindex == wanted
}

/// Counts a packet of another device (or any packet while the interface is
/// absent) and drops it.
#[inline(always)]
fn other_interface() -> i64 {
    if let Some(stats) = PDNS_STATS.get_ptr_mut(0) {
        // SAFETY: as in `finish`.
        unsafe { (*stats).rejected_interface += 1 };
    }
    0
}

/// Counts the verdict and returns what a socket filter returns: how many
/// bytes of the packet to keep (all of them, or none).
#[inline(always)]
fn finish(ctx: &SkBuffContext, outcome: Outcome) -> i64 {
    if let Some(stats) = PDNS_STATS.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot; socket filters run with preemption
        // disabled, so nothing else writes this CPU's copy concurrently.
        let s = unsafe { &mut *stats };
        let counter = match (outcome.verdict, outcome.tunnelled) {
            (Verdict::Accept, false) => &mut s.accepted,
            (Verdict::Fragment, false) => &mut s.accepted_fragments,
            (Verdict::Port, false) => &mut s.rejected_port,
            (Verdict::Protocol, false) => &mut s.rejected_protocol,
            (Verdict::NotIp, false) => &mut s.rejected_not_ip,
            (Verdict::Malformed, false) => &mut s.rejected_malformed,
            (Verdict::Accept, true) => &mut s.accepted_tunnel,
            (Verdict::Fragment, true) => &mut s.accepted_tunnel_fragments,
            (Verdict::Port, true) => &mut s.rejected_tunnel_port,
            (Verdict::Protocol | Verdict::NotIp | Verdict::Unsupported, _) => {
                &mut s.rejected_tunnel_protocol
            }
            (Verdict::Malformed, true) => &mut s.rejected_tunnel_malformed,
        };
        *counter += 1;
    }
    match outcome.verdict {
        Verdict::Accept | Verdict::Fragment => ctx.len() as i64,
        _ => 0,
    }
}

/// What classification saw on its way to a verdict. The classification
/// code reports to it; the production program passes [`NoTrace`], whose
/// methods are empty and vanish when inlined, the explain program
/// [`Facts`], the fanout program [`Innermost`].
///
/// Pass these methods only values the classification computes anyway, and
/// derive anything else inside the implementation: even an unused
/// expression computed just for the call (say `offset << 3`) changed how
/// LLVM compiled the production program's own checks.
trait Trace {
    /// One more in-band VLAN tag was stepped over.
    #[inline(always)]
    fn vlan_tag(&mut self) {}
    /// The EtherType after the tags.
    #[inline(always)]
    fn ethertype(&mut self, _ethertype: u16) {}
    /// A well-formed IP header, version 4 or 6, at this offset.
    #[inline(always)]
    fn ip(&mut self, _version: u8, _offset: usize) {}
    /// The IP protocol, or the IPv6 next header, being looked at.
    #[inline(always)]
    fn protocol(&mut self, _protocol: u8) {}
    /// A non-first fragment at this offset, in 8-byte units.
    #[inline(always)]
    fn fragment(&mut self, _units: u16) {}
    /// A first fragment: more follow.
    #[inline(always)]
    fn first_fragment(&mut self) {}
    /// The UDP or TCP ports.
    #[inline(always)]
    fn ports(&mut self, _sport: u16, _dport: u16) {}
    /// A UDP header at this offset, its ports read.
    #[inline(always)]
    fn datagram(&mut self, _offset: usize) {}
    /// A tunnel header of this kind is being looked at.
    #[inline(always)]
    fn tunnel(&mut self, _kind: Tunnel) {}
    /// The tunnel was opened: what follows is one level deeper.
    #[inline(always)]
    fn opened(&mut self) {}
    /// The tunnel carries something not looked into.
    #[inline(always)]
    fn unsupported(&mut self, _what: Unsupported, _value: u16) {}
    /// Why the packet is malformed: what was short (where), or which header
    /// byte was wrong.
    #[inline(always)]
    fn malformed(&mut self, _why: Malformed, _offset: usize, _value: u8) {}
    /// The malformed packet is a first fragment cut short: kept.
    #[inline(always)]
    fn cut(&mut self) {}
}

/// The production program's trace: records nothing.
struct NoTrace;

impl Trace for NoTrace {}

/// Why a packet is [`Verdict::Malformed`].
#[derive(Clone, Copy, Default)]
enum Malformed {
    #[default]
    EthernetShort,
    VlanTagShort,
    TooManyVlanTags,
    Ipv4Short,
    Ipv4Header,
    Ipv6Short,
    Ipv6Header,
    Ipv6ExtensionShort,
    Ipv6ChainTooLong,
    PortsShort,
    /// The tunnel header is cut short.
    TunnelShort,
    /// A tunnel header field is wrong (VXLAN I flag, version).
    TunnelHeader,
    /// More than [`MAX_TUNNEL_DEPTH`] tunnels inside one another.
    TunnelTooDeep,
}

/// Why a tunnel is [`Verdict::Unsupported`].
#[derive(Clone, Copy, Default)]
enum Unsupported {
    /// A GRE or Geneve protocol other than IP, Ethernet or ERSPAN.
    #[default]
    Protocol,
    /// GRE version 1 (PPTP) or with routing.
    GreFlags,
    /// An ERSPAN III frame other than Ethernet.
    ErspanFrame,
}

/// The explain program's trace: the facts behind the verdict. Each layer
/// overwrites what the layer around it reported, so they are the
/// innermost's. Kept in [`PDNS_FACTS`].
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Facts {
    /// In-band VLAN tags stepped over (all layers).
    tags: u8,
    ethertype: u16,
    /// 4, 6, or 0 before the IP header.
    ip: u8,
    protocol: u8,
    sport: u16,
    dport: u16,
    /// Fragment offset in bytes, or where a read failed.
    offset: u16,
    /// The offending header byte.
    value: u8,
    why: Malformed,
    /// The tunnel header last looked at.
    tunnel: Tunnel,
    /// The tunnel last opened (the innermost).
    inner: Tunnel,
    /// Tunnels opened.
    depth: u8,
    unsupported: Unsupported,
    /// What the unsupported tunnel carries.
    carried: u16,
    /// A malformed first fragment, kept.
    cut: bool,
    /// The outcome, see [`FactsPtr::outcome`].
    verdict: Verdict,
    tunnelled: bool,
}

/// Writes [`Facts`] into their map value ([`PDNS_FACTS`]) as they come.
///
/// Through a raw pointer and with volatile stores on purpose: through a
/// `&mut Facts`, LLVM may assume nothing else reads the facts and keep them
/// in registers and on the stack until the end of the classification,
/// where the verifier tracks them again (and the all-zero reset became a
/// byte loop).
struct FactsPtr(*mut Facts);

macro_rules! set {
    ($p:expr, $field:ident, $value:expr) => {
        // SAFETY: the pointer is to this CPU's live map value (see
        // `pdns_filter_explain`), valid and aligned for the whole run.
        unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!((*$p.0).$field), $value) }
    };
}

impl FactsPtr {
    /// Every field back to its default, one store each.
    #[inline(always)]
    fn reset(&mut self) {
        set!(self, tags, 0);
        set!(self, ethertype, 0);
        set!(self, ip, 0);
        set!(self, protocol, 0);
        set!(self, sport, 0);
        set!(self, dport, 0);
        set!(self, offset, 0);
        set!(self, value, 0);
        set!(self, why, Malformed::EthernetShort);
        set!(self, tunnel, Tunnel::Vxlan);
        set!(self, inner, Tunnel::Vxlan);
        set!(self, depth, 0);
        set!(self, unsupported, Unsupported::Protocol);
        set!(self, carried, 0);
        set!(self, cut, false);
    }

    /// Stores the outcome and reads it back.
    #[inline(always)]
    fn outcome(&mut self, outcome: Outcome) -> Outcome {
        set!(self, verdict, outcome.verdict);
        set!(self, tunnelled, outcome.tunnelled);
        // SAFETY: as in `set!`.
        unsafe {
            Outcome {
                verdict: core::ptr::read_volatile(core::ptr::addr_of!((*self.0).verdict)),
                tunnelled: core::ptr::read_volatile(core::ptr::addr_of!((*self.0).tunnelled)),
            }
        }
    }
}

impl Trace for FactsPtr {
    #[inline(always)]
    fn vlan_tag(&mut self) {
        // SAFETY: as in `set!`.
        let tags = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*self.0).tags)) };
        set!(self, tags, tags.wrapping_add(1));
    }
    #[inline(always)]
    fn ethertype(&mut self, ethertype: u16) {
        set!(self, ethertype, ethertype);
    }
    #[inline(always)]
    fn ip(&mut self, version: u8, _offset: usize) {
        set!(self, ip, version);
    }
    #[inline(always)]
    fn protocol(&mut self, protocol: u8) {
        set!(self, protocol, protocol);
    }
    #[inline(always)]
    fn fragment(&mut self, units: u16) {
        set!(self, offset, units << 3);
    }
    #[inline(always)]
    fn ports(&mut self, sport: u16, dport: u16) {
        set!(self, sport, sport);
        set!(self, dport, dport);
    }
    #[inline(always)]
    fn tunnel(&mut self, kind: Tunnel) {
        set!(self, tunnel, kind);
    }
    #[inline(always)]
    fn opened(&mut self) {
        // SAFETY: as in `set!`.
        let (kind, depth) = unsafe {
            (
                core::ptr::read_volatile(core::ptr::addr_of!((*self.0).tunnel)),
                core::ptr::read_volatile(core::ptr::addr_of!((*self.0).depth)),
            )
        };
        set!(self, inner, kind);
        set!(self, depth, depth.wrapping_add(1));
        // The outer ports are not the inner packet's.
        set!(self, sport, 0);
        set!(self, dport, 0);
    }
    #[inline(always)]
    fn unsupported(&mut self, what: Unsupported, value: u16) {
        set!(self, unsupported, what);
        set!(self, carried, value);
    }
    #[inline(always)]
    fn malformed(&mut self, why: Malformed, offset: usize, value: u8) {
        set!(self, why, why);
        set!(self, offset, offset as u16);
        set!(self, value, value);
    }
    #[inline(always)]
    fn cut(&mut self) {
        set!(self, cut, true);
    }
}

/// The fanout program's trace: the innermost IP header, or the first one
/// that is a fragment (deeper headers are then only in the first fragment,
/// and all fragments of a datagram must reach the same ring), and the UDP
/// header after it when there is one.
#[derive(Default)]
struct Innermost {
    /// 4, 6, or 0 for none.
    version: u8,
    offset: usize,
    /// The UDP header right after the innermost IP header, if it is one
    /// and that header is not a fragment's.
    datagram: Option<usize>,
    frozen: bool,
}

impl Trace for Innermost {
    #[inline(always)]
    fn ip(&mut self, version: u8, offset: usize) {
        if !self.frozen {
            self.version = version;
            self.offset = offset;
            self.datagram = None;
        }
    }
    #[inline(always)]
    fn fragment(&mut self, _units: u16) {
        self.frozen = true;
    }
    #[inline(always)]
    fn first_fragment(&mut self) {
        self.frozen = true;
    }
    #[inline(always)]
    fn datagram(&mut self, offset: usize) {
        if !self.frozen {
            self.datagram = Some(offset);
        }
    }
}

impl Innermost {
    /// The ring's hash: a whole UDP datagram's DNS question name when it
    /// has one ([`question_hash`]), else the addresses' ([`Innermost::addresses`]).
    #[inline(always)]
    fn hash(&self, ctx: &SkBuffContext) -> u32 {
        match self.datagram.and_then(|udp| question_hash(ctx, udp + 8)) {
            Some(hash) => hash,
            None => self.addresses(ctx),
        }
    }

    /// A symmetric hash of the header's two addresses
    /// ([`address_pair_hash`]): both directions hash alike. 0 without an IP
    /// header.
    #[inline(always)]
    fn addresses(&self, ctx: &SkBuffContext) -> u32 {
        let (a, b) = match self.version {
            4 => match ctx.load::<[u8; 8]>(self.offset + 12) {
                Ok(x) => (
                    u32::from_be_bytes([x[0], x[1], x[2], x[3]]),
                    u32::from_be_bytes([x[4], x[5], x[6], x[7]]),
                ),
                Err(_) => return 0,
            },
            6 => match ctx.load::<[u32; 8]>(self.offset + 8) {
                // Byte order does not matter here, only consistency.
                Ok(x) => (x[0] ^ x[1] ^ x[2] ^ x[3], x[4] ^ x[5] ^ x[6] ^ x[7]),
                Err(_) => return 0,
            },
            _ => return 0,
        };
        address_pair_hash(a, b)
    }
}

/// A hash of the question name of the DNS message at `dns`, the same
/// whatever the case of its letters; `None` when it has no question or the
/// name cannot be read (it then goes by its addresses).
///
/// Why: a datagram holds a whole message, so any ring may take it, and
/// sending every message about a name to one ring makes that ring's
/// aggregator count it once, instead of every ring writing the name's
/// records again in each flush (`ingest --threads` dispatches the same
/// way; see `FlowHasher` there, whose hash differs: only consistency within
/// one program matters).
///
/// The message's counts and question are copied to the stack in one load:
/// the longest of 72, 56, 40 or 24 bytes the packet holds from the question
/// count on. A load per label and per word of the name cost 73 ns a packet,
/// more than the rest of the program. A name that does not fit (over 64
/// bytes, or past the end of a short message) goes by the addresses. The
/// hash of the copy is [`question_name_hash`], shared with the host (the
/// live tests predict rings with it).
#[inline(always)]
fn question_hash(ctx: &SkBuffContext, dns: usize) -> Option<u32> {
    let counts = dns + 4;
    // The size is chosen from the packet's length, so that one load is
    // tried, not one per size.
    let held = (ctx.len() as usize).checked_sub(counts)?;
    if held >= 72 {
        question_name_hash(&ctx.load::<[u8; 72]>(counts).ok()?)
    } else if held >= 56 {
        question_name_hash(&ctx.load::<[u8; 56]>(counts).ok()?)
    } else if held >= 40 {
        question_name_hash(&ctx.load::<[u8; 40]>(counts).ok()?)
    } else if held >= 24 {
        question_name_hash(&ctx.load::<[u8; 24]>(counts).ok()?)
    } else {
        None
    }
}

/// Takes one packet from the explain budget, shared by all CPUs. Returns
/// the packet's number (1 to N) and N, or None once the budget is spent.
#[inline(always)]
fn take_budget() -> Option<(i64, i64)> {
    let remaining = PDNS_EXPLAIN.get_ptr_mut(EXPLAIN_REMAINING)?;
    // A plain load first: once the budget is spent no CPU writes the
    // shared cache line again. It is the kernel's READ_ONCE: an aligned
    // 8-byte BPF load is never torn (LLVM's BPF backend cannot select an
    // atomic load for the generic CPU, so this is the way to spell it).
    // SAFETY: the pointer is to a live, 8-byte aligned i64 array value that
    // stays valid for this run of the program.
    if unsafe { core::ptr::read_volatile(remaining) } <= 0 {
        return None;
    }
    // SAFETY: as above; BPF_ATOMIC | BPF_FETCH | BPF_ADD on a map value,
    // which the verifier allows for array maps.
    let taken = unsafe { fetch_add(remaining, -1) };
    if taken <= 0 {
        // Another CPU took the last one between the load and here.
        return None;
    }
    let total = *PDNS_EXPLAIN.get(EXPLAIN_TOTAL)?;
    Some((total - taken + 1, total))
}

/// Atomically adds `value` to `*dst` and returns the previous value
/// (BPF_ATOMIC | BPF_FETCH | BPF_ADD, 64 bits; kernel 5.12).
///
/// Spelled in assembly because nothing else produces it here: the BPF
/// target has no compare-and-swap, so core offers no `AtomicI64::fetch_add`
/// on it, and LLVM selects a fetching atomic add only for `-mcpu=v3`,
/// which would change the code of the production program too (it is
/// built for the generic CPU). The kernel verifier accepts the instruction
/// on an array map value whatever CPU the compiler targeted.
///
/// # Safety
/// `dst` must be valid for reads and writes and 8-byte aligned, and every
/// concurrent write to it must be atomic.
#[inline(always)]
unsafe fn fetch_add(dst: *mut i64, value: i64) -> i64 {
    #[cfg(target_arch = "bpf")]
    {
        let mut v = value;
        // SAFETY: guaranteed by the caller; the instruction touches only
        // `*dst` and the register holding `v`.
        unsafe {
            core::arch::asm!(
                "{v} = atomic_fetch_add((u64 *)({dst} + 0), {v})",
                v = inout(reg) v,
                dst = in(reg) dst,
                options(nostack),
            );
        }
        v
    }
    // Host builds (clippy) only; never run.
    #[cfg(not(target_arch = "bpf"))]
    {
        // SAFETY: guaranteed by the caller.
        unsafe { core::sync::atomic::AtomicI64::from_ptr(dst) }
            .fetch_add(value, core::sync::atomic::Ordering::Relaxed)
    }
}

/// Logs one line: the packet number, the verdict, its reason, the facts
/// behind it, the tunnels it was found in, the in-band VLAN tags walked
/// and the packet length.
#[inline(always)]
fn explain(ctx: &SkBuffContext, outcome: Outcome, f: &Facts, n: i64, total: i64) {
    if f.depth > 0 || outcome.tunnelled || f.cut {
        return explain_tunnelled(ctx, outcome, f, n, total);
    }
    let (tags, len) = (f.tags, ctx.len());
    let l4 = if f.protocol == IPPROTO_TCP {
        "TCP"
    } else {
        "UDP"
    };
    match outcome.verdict {
        Verdict::Accept => {
            // SAFETY: as in `watched`.
            let (src, dst) = unsafe {
                (
                    PDNS_PORTS.get(f.sport).is_some(),
                    PDNS_PORTS.get(f.dport).is_some(),
                )
            };
            let (port, side) = match (src, dst) {
                (true, true) => (f.dport, "source and destination"),
                (true, false) => (f.sport, "source"),
                _ => (f.dport, "destination"),
            };
            info!(
                ctx,
                "explain {}/{}: accepted: DNS port {} ({}); IPv{} {} {} -> {}; VLAN tags walked: {}; {} bytes",
                n,
                total,
                port,
                side,
                f.ip,
                l4,
                f.sport,
                f.dport,
                tags,
                len
            );
        }
        Verdict::Fragment => info!(
            ctx,
            "explain {}/{}: fragment kept: IPv{} non-first fragment, offset {}; VLAN tags walked: {}; {} bytes",
            n,
            total,
            f.ip,
            f.offset,
            tags,
            len
        ),
        Verdict::Port => info!(
            ctx,
            "explain {}/{}: rejected: port: no watched port in IPv{} {} {} -> {}; VLAN tags walked: {}; {} bytes",
            n,
            total,
            f.ip,
            l4,
            f.sport,
            f.dport,
            tags,
            len
        ),
        Verdict::Protocol => info!(
            ctx,
            "explain {}/{}: rejected: protocol: IPv{} protocol {} is not UDP or TCP; VLAN tags walked: {}; {} bytes",
            n,
            total,
            f.ip,
            f.protocol,
            tags,
            len
        ),
        Verdict::NotIp => info!(
            ctx,
            "explain {}/{}: rejected: not IP: ethertype 0x{:x}; VLAN tags walked: {}; {} bytes",
            n,
            total,
            f.ethertype,
            tags,
            len
        ),
        // Tunnelled: see `explain_tunnelled`.
        Verdict::Unsupported => {}
        Verdict::Malformed => explain_malformed(ctx, f, n, total, len, l4),
    }
}

/// The one line for every verdict that has to do with tunnels: reached
/// inside one, about a tunnel header, or a first fragment cut short. One
/// line with all the facts rather than one per reason, because each aya-log
/// call costs kilobytes of instructions, and a socket filter must fit in
/// `net.core.optmem_max` (128 KiB by default) to be attached.
#[inline(always)]
fn explain_tunnelled(ctx: &SkBuffContext, outcome: Outcome, f: &Facts, n: i64, total: i64) {
    let what = match outcome.verdict {
        Verdict::Accept => "accepted: DNS port",
        Verdict::Fragment if f.cut => "fragment kept: first fragment cut short",
        Verdict::Fragment => "fragment kept: non-first fragment",
        Verdict::Port => "rejected: port: no watched port",
        Verdict::Protocol => "rejected: protocol: not UDP or TCP",
        Verdict::NotIp => "rejected: not IP",
        Verdict::Unsupported => "rejected: tunnel protocol: not looked into",
        Verdict::Malformed => "rejected: tunnel malformed",
    };
    // The tunnel as a number: a second string chosen at run time would
    // multiply the paths the verifier walks through this call (each
    // string's length moves every later argument) past its limit.
    let tunnel = if f.depth > 0 {
        f.inner as u8 + 1
    } else if outcome.tunnelled {
        f.tunnel as u8 + 1
    } else {
        0
    };
    let detail = if matches!(outcome.verdict, Verdict::Unsupported) {
        f.carried
    } else {
        f.value as u16
    };
    info!(
        ctx,
        "explain {}/{}: {}; IPv{} protocol {} ports {} -> {}, ethertype 0x{:x}, offset {}, value 0x{:x}; tunnel {} (1 VXLAN, 2 Geneve, 3 GRE, 4-6 ERSPAN I-III), {} opened; VLAN tags walked: {}; {} bytes",
        n,
        total,
        what,
        f.ip,
        f.protocol,
        f.sport,
        f.dport,
        f.ethertype,
        f.offset,
        detail,
        tunnel,
        f.depth,
        f.tags,
        ctx.len()
    );
}

#[inline(always)]
fn explain_malformed(ctx: &SkBuffContext, f: &Facts, n: i64, total: i64, len: u32, l4: &str) {
    let (tags, offset, value) = (f.tags, f.offset, f.value);
    match f.why {
        Malformed::EthernetShort => info!(
            ctx,
            "explain {}/{}: rejected: malformed: Ethernet header short; VLAN tags walked: {}; {} bytes",
            n,
            total,
            tags,
            len
        ),
        Malformed::VlanTagShort => info!(
            ctx,
            "explain {}/{}: rejected: malformed: VLAN tag {} short at offset {}; VLAN tags walked: {}; {} bytes",
            n,
            total,
            tags,
            offset,
            tags,
            len
        ),
        Malformed::TooManyVlanTags => info!(
            ctx,
            "explain {}/{}: rejected: malformed: more than {} in-band VLAN tags; VLAN tags walked: {}; {} bytes",
            n,
            total,
            MAX_VLAN_TAGS as u8,
            tags,
            len
        ),
        Malformed::Ipv4Short => info!(
            ctx,
            "explain {}/{}: rejected: malformed: IPv4 header short at offset {}; VLAN tags walked: {}; {} bytes",
            n,
            total,
            offset,
            tags,
            len
        ),
        Malformed::Ipv4Header => info!(
            ctx,
            "explain {}/{}: rejected: malformed: bad IPv4 header: version {}, header length {} bytes; VLAN tags walked: {}; {} bytes",
            n,
            total,
            value >> 4,
            (value & 0x0f) * 4,
            tags,
            len
        ),
        Malformed::Ipv6Short => info!(
            ctx,
            "explain {}/{}: rejected: malformed: IPv6 header short at offset {}; VLAN tags walked: {}; {} bytes",
            n,
            total,
            offset,
            tags,
            len
        ),
        Malformed::Ipv6Header => info!(
            ctx,
            "explain {}/{}: rejected: malformed: bad IPv6 header: version {}; VLAN tags walked: {}; {} bytes",
            n,
            total,
            value >> 4,
            tags,
            len
        ),
        Malformed::Ipv6ExtensionShort => info!(
            ctx,
            "explain {}/{}: rejected: malformed: IPv6 extension header {} short at offset {}; VLAN tags walked: {}; {} bytes",
            n,
            total,
            value,
            offset,
            tags,
            len
        ),
        Malformed::Ipv6ChainTooLong => info!(
            ctx,
            "explain {}/{}: rejected: malformed: IPv6 extension header chain too long (more than {}, next header {}); VLAN tags walked: {}; {} bytes",
            n,
            total,
            MAX_IPV6_EXT_HEADERS as u8,
            value,
            tags,
            len
        ),
        Malformed::PortsShort => info!(
            ctx,
            "explain {}/{}: rejected: malformed: IPv{} {} header short at offset {}; VLAN tags walked: {}; {} bytes",
            n,
            total,
            f.ip,
            l4,
            offset,
            tags,
            len
        ),
        // Tunnelled: see `explain_tunnelled`.
        Malformed::TunnelShort | Malformed::TunnelHeader | Malformed::TunnelTooDeep => {}
    }
}

#[inline(always)]
fn be16(ctx: &SkBuffContext, offset: usize) -> Option<u16> {
    ctx.load::<[u8; 2]>(offset).ok().map(u16::from_be_bytes)
}

#[inline(always)]
fn is_vlan(ethertype: u16) -> bool {
    matches!(ethertype, 0x8100 | 0x88a8 | 0x9100)
}

/// Classifies the packet starting at `start`: one layer per iteration,
/// each tunnel opened leading to the next, at most [`MAX_TUNNEL_DEPTH`]
/// tunnels deep.
#[inline(always)]
fn classify<T: Trace>(ctx: &SkBuffContext, start: Next, t: &mut T) -> Outcome {
    let mut walk = Walk::default();
    let mut next = start;
    let mut verdict = Verdict::Malformed;
    for depth in 0..MAX_TUNNEL_DEPTH + 1 {
        match layer(ctx, next, &mut walk, t) {
            Step::Done(v) => {
                verdict = v;
                break;
            }
            Step::Open(inner) => {
                if depth == MAX_TUNNEL_DEPTH {
                    t.malformed(Malformed::TunnelTooDeep, 0, 0);
                    break;
                }
                t.opened();
                next = inner;
            }
        }
    }
    if walk.partial && matches!(verdict, Verdict::Malformed) {
        // The rest is in fragments that are kept anyway.
        t.cut();
        verdict = Verdict::Fragment;
    }
    Outcome {
        verdict,
        tunnelled: walk.tunnelled,
    }
}

/// One layer: the link header (or just the EtherType), in-band VLAN tags,
/// IP, and what IP carries.
#[inline(always)]
fn layer<T: Trace>(ctx: &SkBuffContext, next: Next, walk: &mut Walk, t: &mut T) -> Step {
    // The EtherType, and where what it announces starts.
    let (mut ethertype, mut offset) = if next.ethernet {
        match be16(ctx, next.offset + 12) {
            Some(e) => (e, next.offset + 14),
            None => {
                t.malformed(Malformed::EthernetShort, next.offset + 12, 0);
                return Step::Done(Verdict::Malformed);
            }
        }
    } else {
        (next.ethertype, next.offset)
    };
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan(ethertype) {
            break;
        }
        t.vlan_tag();
        ethertype = match be16(ctx, offset + 2) {
            Some(e) => e,
            None => {
                t.malformed(Malformed::VlanTagShort, offset + 2, 0);
                return Step::Done(Verdict::Malformed);
            }
        };
        offset += 4;
    }
    if is_vlan(ethertype) {
        t.malformed(Malformed::TooManyVlanTags, offset, 0);
        return Step::Done(Verdict::Malformed);
    }
    t.ethertype(ethertype);
    match ethertype {
        ETH_P_IP => ipv4(ctx, offset, walk, t),
        ETH_P_IPV6 => ipv6(ctx, offset, walk, t),
        _ => Step::Done(Verdict::NotIp),
    }
}

#[inline(always)]
fn ipv4<T: Trace>(ctx: &SkBuffContext, l3: usize, walk: &mut Walk, t: &mut T) -> Step {
    let Ok(h) = ctx.load::<[u8; 20]>(l3) else {
        t.malformed(Malformed::Ipv4Short, l3, 0);
        return Step::Done(Verdict::Malformed);
    };
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if h[0] >> 4 != 4 || ihl < 20 {
        t.malformed(Malformed::Ipv4Header, l3, h[0]);
        return Step::Done(Verdict::Malformed);
    }
    t.ip(4, l3);
    t.protocol(h[9]);
    let units = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    if units != 0 {
        t.fragment(units);
        return Step::Done(Verdict::Fragment);
    }
    if h[6] & 0x20 != 0 {
        t.first_fragment();
        walk.partial = true;
    }
    l4(ctx, h[9], l3 + ihl, walk, t)
}

#[inline(always)]
fn ipv6<T: Trace>(ctx: &SkBuffContext, l3: usize, walk: &mut Walk, t: &mut T) -> Step {
    let Ok(h) = ctx.load::<[u8; 8]>(l3) else {
        t.malformed(Malformed::Ipv6Short, l3, 0);
        return Step::Done(Verdict::Malformed);
    };
    if h[0] >> 4 != 6 {
        t.malformed(Malformed::Ipv6Header, l3, h[0]);
        return Step::Done(Verdict::Malformed);
    }
    t.ip(6, l3);
    let mut next = h[6];
    let mut offset = l3 + 40;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        t.protocol(next);
        match next {
            IPPROTO_TCP | IPPROTO_UDP | IPPROTO_GRE => return l4(ctx, next, offset, walk, t),
            // Fragment: fixed 8 bytes; a non-zero offset means no ports.
            44 => {
                let Ok(f) = ctx.load::<[u8; 4]>(offset) else {
                    t.malformed(Malformed::Ipv6ExtensionShort, offset, next);
                    return Step::Done(Verdict::Malformed);
                };
                let units = u16::from_be_bytes([f[2], f[3]]) >> 3;
                if units != 0 {
                    t.fragment(units);
                    return Step::Done(Verdict::Fragment);
                }
                if f[3] & 0x01 != 0 {
                    t.first_fragment();
                    walk.partial = true;
                }
                next = f[0];
                offset += 8;
            }
            // Hop-by-hop, routing, destination options, mobility, HIP,
            // shim6: length in 8-octet units, not counting the first 8.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let Ok(e) = ctx.load::<[u8; 2]>(offset) else {
                    t.malformed(Malformed::Ipv6ExtensionShort, offset, next);
                    return Step::Done(Verdict::Malformed);
                };
                next = e[0];
                offset += (e[1] as usize + 1) * 8;
            }
            // Authentication header: length in 4-octet units, minus 2.
            51 => {
                let Ok(e) = ctx.load::<[u8; 2]>(offset) else {
                    t.malformed(Malformed::Ipv6ExtensionShort, offset, next);
                    return Step::Done(Verdict::Malformed);
                };
                next = e[0];
                offset += (e[1] as usize + 2) * 4;
            }
            _ => return l4(ctx, next, offset, walk, t),
        }
    }
    t.protocol(next);
    match next {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_GRE => l4(ctx, next, offset, walk, t),
        _ => {
            t.malformed(Malformed::Ipv6ChainTooLong, offset, next);
            Step::Done(Verdict::Malformed)
        }
    }
}

/// What IP carries: UDP (maybe a tunnel), TCP, GRE (if looked into).
#[inline(always)]
fn l4<T: Trace>(ctx: &SkBuffContext, protocol: u8, at: usize, walk: &mut Walk, t: &mut T) -> Step {
    match protocol {
        IPPROTO_UDP => udp(ctx, at, walk, t),
        IPPROTO_TCP => Step::Done(match ports(ctx, at, t) {
            Some((sport, dport)) => watched(sport, dport),
            None => Verdict::Malformed,
        }),
        IPPROTO_GRE if gre_enabled() => gre(ctx, at, walk, t),
        _ => Step::Done(Verdict::Protocol),
    }
}

/// Whether GRE is looked into (`--no-tunnels` clears it).
#[inline(always)]
fn gre_enabled() -> bool {
    PDNS_CONFIG
        .get(CONFIG_FLAGS)
        .is_some_and(|flags| flags & FLAG_GRE != 0)
}

/// The source and destination ports at `l4`.
#[inline(always)]
fn ports<T: Trace>(ctx: &SkBuffContext, l4: usize, t: &mut T) -> Option<(u16, u16)> {
    let Ok(p) = ctx.load::<[u8; 4]>(l4) else {
        t.malformed(Malformed::PortsShort, l4, 0);
        return None;
    };
    let sport = u16::from_be_bytes([p[0], p[1]]);
    let dport = u16::from_be_bytes([p[2], p[3]]);
    t.ports(sport, dport);
    Some((sport, dport))
}

/// DNS if either port is watched.
#[inline(always)]
fn watched(sport: u16, dport: u16) -> Verdict {
    // SAFETY: the values are plain u8 that are never written through, and
    // userspace only inserts or deletes whole entries.
    let watched = unsafe { PDNS_PORTS.get(sport).is_some() || PDNS_PORTS.get(dport).is_some() };
    if watched {
        Verdict::Accept
    } else {
        Verdict::Port
    }
}

/// UDP: from a DNS port it is DNS (a server's answer to a client whose
/// port happens to be a tunnel's); else a tunnel when the destination port
/// is a tunnel's; else DNS or not by port — in the decoder's order.
#[inline(always)]
fn udp<T: Trace>(ctx: &SkBuffContext, at: usize, walk: &mut Walk, t: &mut T) -> Step {
    let Some((sport, dport)) = ports(ctx, at, t) else {
        return Step::Done(Verdict::Malformed);
    };
    t.datagram(at);
    // SAFETY: as in `watched`.
    if unsafe { PDNS_PORTS.get(sport).is_some() } {
        return Step::Done(Verdict::Accept);
    }
    // SAFETY: as in `watched`.
    let kind = unsafe { PDNS_TUNNEL_PORTS.get(dport).copied() };
    match kind {
        Some(TUNNEL_VXLAN) => {
            walk.tunnelled = true;
            t.tunnel(Tunnel::Vxlan);
            vxlan(ctx, at + 8, t)
        }
        Some(TUNNEL_GENEVE) => {
            walk.tunnelled = true;
            t.tunnel(Tunnel::Geneve);
            geneve(ctx, at + 8, t)
        }
        _ => Step::Done(watched(sport, dport)),
    }
}

/// VXLAN: 8 bytes (flags with I set, VNI), then an Ethernet frame.
#[inline(always)]
fn vxlan<T: Trace>(ctx: &SkBuffContext, at: usize, t: &mut T) -> Step {
    let Ok(h) = ctx.load::<[u8; 8]>(at) else {
        t.malformed(Malformed::TunnelShort, at, 0);
        return Step::Done(Verdict::Malformed);
    };
    if h[0] & 0x08 == 0 {
        t.malformed(Malformed::TunnelHeader, at, h[0]);
        return Step::Done(Verdict::Malformed);
    }
    Step::Open(Next::ethernet(at + 8))
}

/// Geneve: 8 bytes (version 0, options length, protocol, VNI), options,
/// then an Ethernet frame or an IP packet.
#[inline(always)]
fn geneve<T: Trace>(ctx: &SkBuffContext, at: usize, t: &mut T) -> Step {
    let Ok(h) = ctx.load::<[u8; 8]>(at) else {
        t.malformed(Malformed::TunnelShort, at, 0);
        return Step::Done(Verdict::Malformed);
    };
    if h[0] >> 6 != 0 {
        t.malformed(Malformed::TunnelHeader, at, h[0]);
        return Step::Done(Verdict::Malformed);
    }
    let start = at + 8 + ((h[0] & 0x3f) as usize) * 4;
    match u16::from_be_bytes([h[2], h[3]]) {
        ETH_P_TEB => Step::Open(Next::ethernet(start)),
        p @ (ETH_P_IP | ETH_P_IPV6) => Step::Open(Next::ethertype(p, start)),
        p => {
            t.unsupported(Unsupported::Protocol, p);
            Step::Done(Verdict::Unsupported)
        }
    }
}

/// GRE (version 0; checksum, key and sequence number as flagged) carrying
/// IP, Ethernet, or ERSPAN I, II or III.
#[inline(always)]
fn gre<T: Trace>(ctx: &SkBuffContext, at: usize, walk: &mut Walk, t: &mut T) -> Step {
    walk.tunnelled = true;
    t.tunnel(Tunnel::Gre);
    let Ok(h) = ctx.load::<[u8; 4]>(at) else {
        t.malformed(Malformed::TunnelShort, at, 0);
        return Step::Done(Verdict::Malformed);
    };
    let flags = u16::from_be_bytes([h[0], h[1]]);
    if flags & (GRE_VERSION | GRE_ROUTING) != 0 {
        t.unsupported(Unsupported::GreFlags, flags);
        return Step::Done(Verdict::Unsupported);
    }
    let mut payload = at + 4;
    if flags & GRE_CHECKSUM != 0 {
        payload += 4;
    }
    if flags & GRE_KEY != 0 {
        payload += 4;
    }
    let sequenced = flags & GRE_SEQUENCE != 0;
    if sequenced {
        payload += 4;
    }
    match u16::from_be_bytes([h[2], h[3]]) {
        p @ (ETH_P_IP | ETH_P_IPV6) => Step::Open(Next::ethertype(p, payload)),
        ETH_P_TEB => Step::Open(Next::ethernet(payload)),
        // Type I has no header of its own (and no sequence number).
        ETH_P_ERSPAN if !sequenced => {
            t.tunnel(Tunnel::Erspan1);
            Step::Open(Next::ethernet(payload))
        }
        // Type II: 8 bytes, version 1.
        ETH_P_ERSPAN => {
            t.tunnel(Tunnel::Erspan2);
            let Ok(e) = ctx.load::<[u8; 8]>(payload) else {
                t.malformed(Malformed::TunnelShort, payload, 0);
                return Step::Done(Verdict::Malformed);
            };
            if e[0] >> 4 != 1 {
                t.malformed(Malformed::TunnelHeader, payload, e[0]);
                return Step::Done(Verdict::Malformed);
            }
            Step::Open(Next::ethernet(payload + 8))
        }
        // Type III: 12 bytes, version 2, then an 8-byte subheader if the
        // O bit is set; only Ethernet frames (frame type 0) are opened.
        ETH_P_ERSPAN3 => {
            t.tunnel(Tunnel::Erspan3);
            let Ok(e) = ctx.load::<[u8; 12]>(payload) else {
                t.malformed(Malformed::TunnelShort, payload, 0);
                return Step::Done(Verdict::Malformed);
            };
            if e[0] >> 4 != 2 {
                t.malformed(Malformed::TunnelHeader, payload, e[0]);
                return Step::Done(Verdict::Malformed);
            }
            let frame_type = (e[10] >> 2) & 0x1f;
            if frame_type != 0 {
                t.unsupported(Unsupported::ErspanFrame, frame_type as u16);
                return Step::Done(Verdict::Unsupported);
            }
            let start = if e[11] & 0x01 != 0 { 20 } else { 12 };
            Step::Open(Next::ethernet(payload + start))
        }
        p => {
            t.unsupported(Unsupported::Protocol, p);
            Step::Done(Verdict::Unsupported)
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
