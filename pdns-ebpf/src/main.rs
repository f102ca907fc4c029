//! The kernel-side DNS filter: an eBPF socket filter attached to every
//! AF_PACKET capture socket of `pdns-sensor run`.
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
//! Socket filters may not use direct packet access, so every read goes
//! through `bpf_skb_load_bytes` (`ctx.load`), which bounds-checks at run time:
//! a short packet simply fails the load and is counted as malformed. Offset 0
//! is the Ethernet header (on `lo` too, whose header is zeroed but carries the
//! right EtherType).
//!
//! Two programs share this object and the classification code.
//! `pdns_filter` is the production filter. `pdns_filter_explain` answers
//! "why is my traffic rejected?" (`pdns-sensor run --explain-filter N`): it
//! runs the same generic classification, instantiated with a [`Trace`]
//! that records the facts behind the verdict (the production program's
//! `Trace` is a zero-sized no-op, so its instructions are the ones it had
//! before explaining existed: compare `llvm-objdump -d` of the object), and
//! for the first N packets logs one
//! line per packet through aya-log. After the budget is spent it behaves
//! exactly like `pdns_filter`: same counters, same return value.
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
use pdns_common::{
    EXPLAIN_REMAINING, EXPLAIN_SLOTS, EXPLAIN_TOTAL, FilterStats, MAX_IPV6_EXT_HEADERS, MAX_PORTS,
    MAX_VLAN_TAGS,
};

/// The watched ports, host byte order; filled by userspace from `--port`.
#[map(name = "PDNS_PORTS")]
static PDNS_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_PORTS as u32, 0);

/// One [`FilterStats`] per CPU.
#[map(name = "PDNS_STATS")]
static PDNS_STATS: PerCpuArray<FilterStats> = PerCpuArray::with_max_entries(1, 0);

/// The explain budget (`pdns_common::EXPLAIN_MAP`): remaining, total.
#[map(name = "PDNS_EXPLAIN")]
static PDNS_EXPLAIN: Array<i64> = Array::with_max_entries(EXPLAIN_SLOTS, 0);

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// What the filter decided about one packet.
#[derive(Clone, Copy)]
enum Verdict {
    Accept,
    Fragment,
    Port,
    Protocol,
    NotIp,
    Malformed,
}

#[socket_filter]
fn pdns_filter(ctx: SkBuffContext) -> i64 {
    let verdict = classify(&ctx, &mut NoTrace);
    finish(&ctx, verdict)
}

#[socket_filter]
fn pdns_filter_explain(ctx: SkBuffContext) -> i64 {
    let mut facts = Facts::default();
    let verdict = classify(&ctx, &mut facts);
    if let Some((n, total)) = take_budget() {
        explain(&ctx, verdict, &facts, n, total);
    }
    finish(&ctx, verdict)
}

/// Counts the verdict and returns what a socket filter returns: how many
/// bytes of the packet to keep (all of them, or none).
#[inline(always)]
fn finish(ctx: &SkBuffContext, verdict: Verdict) -> i64 {
    if let Some(stats) = PDNS_STATS.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot; socket filters run with preemption
        // disabled, so nothing else writes this CPU's copy concurrently.
        let stats = unsafe { &mut *stats };
        match verdict {
            Verdict::Accept => stats.accepted += 1,
            Verdict::Fragment => stats.accepted_fragments += 1,
            Verdict::Port => stats.rejected_port += 1,
            Verdict::Protocol => stats.rejected_protocol += 1,
            Verdict::NotIp => stats.rejected_not_ip += 1,
            Verdict::Malformed => stats.rejected_malformed += 1,
        }
    }
    match verdict {
        Verdict::Accept | Verdict::Fragment => ctx.len() as i64,
        _ => 0,
    }
}

/// What classification saw on its way to a verdict. The classification
/// code reports to it; the production program passes [`NoTrace`], whose
/// methods are empty and vanish when inlined, the explain program
/// [`Facts`].
///
/// Pass these methods only values the classification computes anyway, and
/// derive anything else inside [`Facts`]: even an unused expression
/// computed just for the call (say `offset << 3`) changed how LLVM compiled
/// the production program's own checks.
trait Trace {
    /// One more in-band VLAN tag was stepped over.
    #[inline(always)]
    fn vlan_tag(&mut self) {}
    /// The EtherType after the tags.
    #[inline(always)]
    fn ethertype(&mut self, _ethertype: u16) {}
    /// IP version 4 or 6.
    #[inline(always)]
    fn ip(&mut self, _version: u8) {}
    /// The IP protocol, or the IPv6 next header, being looked at.
    #[inline(always)]
    fn protocol(&mut self, _protocol: u8) {}
    /// A non-first fragment at this offset, in 8-byte units.
    #[inline(always)]
    fn fragment(&mut self, _units: u16) {}
    /// The UDP or TCP ports.
    #[inline(always)]
    fn ports(&mut self, _sport: u16, _dport: u16) {}
    /// Why the packet is malformed: what was short (where), or which header
    /// byte was wrong.
    #[inline(always)]
    fn malformed(&mut self, _why: Malformed, _offset: usize, _value: u8) {}
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
}

/// The explain program's trace: the facts behind the verdict.
#[derive(Default)]
struct Facts {
    /// In-band VLAN tags stepped over.
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
}

impl Trace for Facts {
    #[inline(always)]
    fn vlan_tag(&mut self) {
        self.tags += 1;
    }
    #[inline(always)]
    fn ethertype(&mut self, ethertype: u16) {
        self.ethertype = ethertype;
    }
    #[inline(always)]
    fn ip(&mut self, version: u8) {
        self.ip = version;
    }
    #[inline(always)]
    fn protocol(&mut self, protocol: u8) {
        self.protocol = protocol;
    }
    #[inline(always)]
    fn fragment(&mut self, units: u16) {
        self.offset = units << 3;
    }
    #[inline(always)]
    fn ports(&mut self, sport: u16, dport: u16) {
        self.sport = sport;
        self.dport = dport;
    }
    #[inline(always)]
    fn malformed(&mut self, why: Malformed, offset: usize, value: u8) {
        self.why = why;
        self.offset = offset as u16;
        self.value = value;
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
/// behind it, the in-band VLAN tags walked and the packet length.
#[inline(always)]
fn explain(ctx: &SkBuffContext, verdict: Verdict, f: &Facts, n: i64, total: i64) {
    let (tags, len) = (f.tags, ctx.len());
    let l4 = if f.protocol == IPPROTO_TCP {
        "TCP"
    } else {
        "UDP"
    };
    match verdict {
        Verdict::Accept => {
            // SAFETY: as in `ports`.
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
        Verdict::Malformed => explain_malformed(ctx, f, n, total, len, l4),
    }
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

fn classify<T: Trace>(ctx: &SkBuffContext, t: &mut T) -> Verdict {
    // EtherType after the two MAC addresses, then after each in-band tag.
    let mut offset = 12;
    let Some(mut ethertype) = be16(ctx, offset) else {
        t.malformed(Malformed::EthernetShort, offset, 0);
        return Verdict::Malformed;
    };
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan(ethertype) {
            break;
        }
        offset += 4;
        t.vlan_tag();
        ethertype = match be16(ctx, offset) {
            Some(e) => e,
            None => {
                t.malformed(Malformed::VlanTagShort, offset, 0);
                return Verdict::Malformed;
            }
        };
    }
    if is_vlan(ethertype) {
        t.malformed(Malformed::TooManyVlanTags, offset, 0);
        return Verdict::Malformed;
    }
    t.ethertype(ethertype);
    let l3 = offset + 2;
    match ethertype {
        ETH_P_IP => ipv4(ctx, l3, t),
        ETH_P_IPV6 => ipv6(ctx, l3, t),
        _ => Verdict::NotIp,
    }
}

#[inline(always)]
fn ipv4<T: Trace>(ctx: &SkBuffContext, l3: usize, t: &mut T) -> Verdict {
    t.ip(4);
    let Ok(h) = ctx.load::<[u8; 20]>(l3) else {
        t.malformed(Malformed::Ipv4Short, l3, 0);
        return Verdict::Malformed;
    };
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if h[0] >> 4 != 4 || ihl < 20 {
        t.malformed(Malformed::Ipv4Header, l3, h[0]);
        return Verdict::Malformed;
    }
    t.protocol(h[9]);
    let units = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    if units != 0 {
        t.fragment(units);
        return Verdict::Fragment;
    }
    match h[9] {
        IPPROTO_TCP | IPPROTO_UDP => ports(ctx, l3 + ihl, t),
        _ => Verdict::Protocol,
    }
}

#[inline(always)]
fn ipv6<T: Trace>(ctx: &SkBuffContext, l3: usize, t: &mut T) -> Verdict {
    t.ip(6);
    let Ok(h) = ctx.load::<[u8; 8]>(l3) else {
        t.malformed(Malformed::Ipv6Short, l3, 0);
        return Verdict::Malformed;
    };
    if h[0] >> 4 != 6 {
        t.malformed(Malformed::Ipv6Header, l3, h[0]);
        return Verdict::Malformed;
    }
    let mut next = h[6];
    let mut offset = l3 + 40;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        t.protocol(next);
        match next {
            IPPROTO_TCP | IPPROTO_UDP => return ports(ctx, offset, t),
            // Fragment: fixed 8 bytes; a non-zero offset means no ports.
            44 => {
                let Ok(f) = ctx.load::<[u8; 4]>(offset) else {
                    t.malformed(Malformed::Ipv6ExtensionShort, offset, next);
                    return Verdict::Malformed;
                };
                let units = u16::from_be_bytes([f[2], f[3]]) >> 3;
                if units != 0 {
                    t.fragment(units);
                    return Verdict::Fragment;
                }
                next = f[0];
                offset += 8;
            }
            // Hop-by-hop, routing, destination options, mobility, HIP,
            // shim6: length in 8-octet units, not counting the first 8.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let Ok(e) = ctx.load::<[u8; 2]>(offset) else {
                    t.malformed(Malformed::Ipv6ExtensionShort, offset, next);
                    return Verdict::Malformed;
                };
                next = e[0];
                offset += (e[1] as usize + 1) * 8;
            }
            // Authentication header: length in 4-octet units, minus 2.
            51 => {
                let Ok(e) = ctx.load::<[u8; 2]>(offset) else {
                    t.malformed(Malformed::Ipv6ExtensionShort, offset, next);
                    return Verdict::Malformed;
                };
                next = e[0];
                offset += (e[1] as usize + 2) * 4;
            }
            _ => return Verdict::Protocol,
        }
    }
    t.protocol(next);
    match next {
        IPPROTO_TCP | IPPROTO_UDP => ports(ctx, offset, t),
        _ => {
            t.malformed(Malformed::Ipv6ChainTooLong, offset, next);
            Verdict::Malformed
        }
    }
}

#[inline(always)]
fn ports<T: Trace>(ctx: &SkBuffContext, l4: usize, t: &mut T) -> Verdict {
    let Ok(p) = ctx.load::<[u8; 4]>(l4) else {
        t.malformed(Malformed::PortsShort, l4, 0);
        return Verdict::Malformed;
    };
    let sport = u16::from_be_bytes([p[0], p[1]]);
    let dport = u16::from_be_bytes([p[2], p[3]]);
    t.ports(sport, dport);
    // SAFETY: the values are plain u8 that are never written through, and
    // userspace only inserts or deletes whole entries.
    let watched = unsafe { PDNS_PORTS.get(sport).is_some() || PDNS_PORTS.get(dport).is_some() };
    if watched {
        Verdict::Accept
    } else {
        Verdict::Port
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
