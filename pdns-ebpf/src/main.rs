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
//! Build it only for `bpfel-unknown-none` (pdns-sensor's build.rs does, with
//! the nightly toolchain); it is never built for the host.
#![no_std]
#![no_main]

use aya_ebpf::macros::{map, socket_filter};
use aya_ebpf::maps::{HashMap, PerCpuArray};
use aya_ebpf::programs::SkBuffContext;
use pdns_common::{FilterStats, MAX_IPV6_EXT_HEADERS, MAX_PORTS, MAX_VLAN_TAGS};

/// The watched ports, host byte order; filled by userspace from `--port`.
#[map(name = "PDNS_PORTS")]
static PDNS_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_PORTS as u32, 0);

/// One [`FilterStats`] per CPU.
#[map(name = "PDNS_STATS")]
static PDNS_STATS: PerCpuArray<FilterStats> = PerCpuArray::with_max_entries(1, 0);

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
pub fn pdns_filter(ctx: SkBuffContext) -> i64 {
    let verdict = classify(&ctx);
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
        // A socket filter returns how many bytes to keep: all of them.
        Verdict::Accept | Verdict::Fragment => ctx.len() as i64,
        _ => 0,
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

fn classify(ctx: &SkBuffContext) -> Verdict {
    // EtherType after the two MAC addresses, then after each in-band tag.
    let mut offset = 12;
    let Some(mut ethertype) = be16(ctx, offset) else {
        return Verdict::Malformed;
    };
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan(ethertype) {
            break;
        }
        offset += 4;
        ethertype = match be16(ctx, offset) {
            Some(t) => t,
            None => return Verdict::Malformed,
        };
    }
    if is_vlan(ethertype) {
        return Verdict::Malformed;
    }
    let l3 = offset + 2;
    match ethertype {
        ETH_P_IP => ipv4(ctx, l3),
        ETH_P_IPV6 => ipv6(ctx, l3),
        _ => Verdict::NotIp,
    }
}

#[inline(always)]
fn ipv4(ctx: &SkBuffContext, l3: usize) -> Verdict {
    let Ok(h) = ctx.load::<[u8; 20]>(l3) else {
        return Verdict::Malformed;
    };
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if h[0] >> 4 != 4 || ihl < 20 {
        return Verdict::Malformed;
    }
    if u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0 {
        return Verdict::Fragment;
    }
    match h[9] {
        IPPROTO_TCP | IPPROTO_UDP => ports(ctx, l3 + ihl),
        _ => Verdict::Protocol,
    }
}

#[inline(always)]
fn ipv6(ctx: &SkBuffContext, l3: usize) -> Verdict {
    let Ok(h) = ctx.load::<[u8; 8]>(l3) else {
        return Verdict::Malformed;
    };
    if h[0] >> 4 != 6 {
        return Verdict::Malformed;
    }
    let mut next = h[6];
    let mut offset = l3 + 40;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_TCP | IPPROTO_UDP => return ports(ctx, offset),
            // Fragment: fixed 8 bytes; a non-zero offset means no ports.
            44 => {
                let Ok(f) = ctx.load::<[u8; 4]>(offset) else {
                    return Verdict::Malformed;
                };
                if u16::from_be_bytes([f[2], f[3]]) >> 3 != 0 {
                    return Verdict::Fragment;
                }
                next = f[0];
                offset += 8;
            }
            // Hop-by-hop, routing, destination options, mobility, HIP,
            // shim6: length in 8-octet units, not counting the first 8.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let Ok(e) = ctx.load::<[u8; 2]>(offset) else {
                    return Verdict::Malformed;
                };
                next = e[0];
                offset += (e[1] as usize + 1) * 8;
            }
            // Authentication header: length in 4-octet units, minus 2.
            51 => {
                let Ok(e) = ctx.load::<[u8; 2]>(offset) else {
                    return Verdict::Malformed;
                };
                next = e[0];
                offset += (e[1] as usize + 2) * 4;
            }
            _ => return Verdict::Protocol,
        }
    }
    match next {
        IPPROTO_TCP | IPPROTO_UDP => ports(ctx, offset),
        _ => Verdict::Malformed,
    }
}

#[inline(always)]
fn ports(ctx: &SkBuffContext, l4: usize) -> Verdict {
    let Ok(p) = ctx.load::<[u8; 4]>(l4) else {
        return Verdict::Malformed;
    };
    let sport = u16::from_be_bytes([p[0], p[1]]);
    let dport = u16::from_be_bytes([p[2], p[3]]);
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
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
