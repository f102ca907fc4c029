//! Network and transport layers: IPv4/IPv6 (options, extension headers,
//! fragments) and UDP/TCP, down to the DNS payload.
//!
//! IP headers are sliced by `etherparse` (zero-copy, lengths validated, IP
//! total length honoured so Ethernet padding is cut off). Checksums are not
//! verified: a capture host with checksum offload records bad checksums on
//! every packet it sends, and we would rather keep those answers.

use std::hash::BuildHasher;
use std::net::IpAddr;

use etherparse::{IpNumber, IpSlice, Ipv6ExtensionSlice};

use super::defrag::{Defragmenter, FragKey};
use super::tcp::TcpReassembler;
use super::tunnel::{self, TunnelConfig, TunnelId};
use super::{DecodeStats, DropReason, FlowKey, PortSet};
use crate::vocab::packet::{DnsMessage, Timestamp, Transport};

/// What the IP layer needs from the decoder it runs in.
pub(super) struct Context<'a> {
    pub ts: Timestamp,
    pub ports: &'a PortSet,
    pub defrag: &'a mut Defragmenter,
    pub tcp: &'a mut TcpReassembler,
    pub stats: &'a mut DecodeStats,
    pub tunnels: &'a TunnelConfig,
    /// The tunnels the packet being decoded came through (0: none).
    pub tunnel: TunnelId,
    /// How many tunnels deep it is.
    pub depth: u8,
}

/// Decodes an IP packet (version told by its first nibble).
pub(super) fn decode(ctx: &mut Context<'_>, data: &[u8], emit: &mut dyn FnMut(DnsMessage<'_>)) {
    if snap_truncated(data) {
        return ctx.stats.drop(DropReason::SnapTruncated);
    }
    let ip = match IpSlice::from_slice(data) {
        Ok(ip) => ip,
        Err(_) => return ctx.stats.drop(DropReason::IpMalformed),
    };
    let src = ip.source_addr();
    let dst = ip.destination_addr();
    let payload = ip.payload();
    if !payload.fragmented {
        return transport(ctx, src, dst, payload.ip_number, payload.payload, emit);
    }

    let (key, offset, more) = match &ip {
        IpSlice::Ipv4(v4) => {
            let h = v4.header();
            let key = FragKey::V4 {
                src: h.source(),
                dst: h.destination(),
                id: h.identification(),
                proto: payload.ip_number.0,
                tunnel: ctx.tunnel,
            };
            (
                key,
                h.fragments_offset().byte_offset() as usize,
                h.more_fragments(),
            )
        }
        IpSlice::Ipv6(v6) => {
            let frag = v6
                .extensions()
                .clone()
                .into_iter()
                .find_map(|ext| match ext {
                    Ipv6ExtensionSlice::Fragment(f) => Some(f),
                    _ => None,
                });
            let Some(frag) = frag else {
                return ctx.stats.drop(DropReason::IpMalformed);
            };
            let h = v6.header();
            let key = FragKey::V6 {
                src: h.source(),
                dst: h.destination(),
                id: frag.identification(),
                tunnel: ctx.tunnel,
            };
            (
                key,
                frag.fragment_offset().byte_offset() as usize,
                frag.more_fragments(),
            )
        }
    };
    let proto = payload.ip_number;
    let datagram = ctx.defrag.push(
        ctx.ts.secs,
        key,
        proto.0,
        offset,
        more,
        payload.payload,
        ctx.stats,
    );
    if let Some(datagram) = datagram {
        ctx.stats.reassembled_datagrams += 1;
        transport(
            ctx,
            src,
            dst,
            IpNumber(datagram.proto),
            &datagram.payload,
            emit,
        );
        ctx.defrag.recycle(datagram);
    }
}

/// Whether the IP header says the packet is longer than what was captured
/// (a snap length shorter than the packet): nothing after the cut can be
/// trusted to parse, so the packet is counted apart from malformed ones.
fn snap_truncated(data: &[u8]) -> bool {
    match data.first().map(|b| b >> 4) {
        Some(4) if data.len() >= 4 => {
            usize::from(u16::from_be_bytes([data[2], data[3]])) > data.len()
        }
        Some(6) if data.len() >= 6 => {
            usize::from(u16::from_be_bytes([data[4], data[5]])) + 40 > data.len()
        }
        _ => false,
    }
}

/// Dispatches a complete (possibly reassembled) transport payload.
fn transport(
    ctx: &mut Context<'_>,
    src: IpAddr,
    dst: IpAddr,
    proto: IpNumber,
    data: &[u8],
    emit: &mut dyn FnMut(DnsMessage<'_>),
) {
    match proto {
        IpNumber::UDP => udp(ctx, data, emit),
        IpNumber::TCP => tcp(ctx, src, dst, data, emit),
        IpNumber::GRE if ctx.tunnels.enabled => tunnel::gre(ctx, data, emit),
        _ => ctx.stats.drop(DropReason::NotUdpTcp),
    }
}

fn udp(ctx: &mut Context<'_>, data: &[u8], emit: &mut dyn FnMut(DnsMessage<'_>)) {
    if data.len() < 8 {
        return ctx.stats.drop(DropReason::TransportMalformed);
    }
    let sport = u16::from_be_bytes([data[0], data[1]]);
    let dport = u16::from_be_bytes([data[2], data[3]]);
    // From a DNS port it is DNS, even to a client port that is a tunnel's
    // (resolvers pick source ports from the whole range); else a tunnel's
    // destination port opens it.
    let dns_source = ctx.ports.contains(sport);
    let tunnel = if dns_source {
        None
    } else {
        ctx.tunnels.udp(dport)
    };
    if tunnel.is_none() && !dns_source && !ctx.ports.contains(dport) {
        return ctx.stats.drop(DropReason::NotDnsPort);
    }
    let len = u16::from_be_bytes([data[4], data[5]]) as usize;
    // A length of 0 is legal for jumbograms; otherwise it must fit.
    let end = if len == 0 { data.len() } else { len };
    if end < 8 || end > data.len() {
        return ctx.stats.drop(DropReason::TransportMalformed);
    }
    if let Some(tunnel) = tunnel {
        return tunnel::udp(ctx, tunnel, &data[8..end], emit);
    }
    emit(DnsMessage {
        ts: ctx.ts,
        transport: Transport::Udp,
        data: &data[8..end],
    });
}

fn tcp(
    ctx: &mut Context<'_>,
    src: IpAddr,
    dst: IpAddr,
    data: &[u8],
    emit: &mut dyn FnMut(DnsMessage<'_>),
) {
    if data.len() < 20 {
        return ctx.stats.drop(DropReason::TransportMalformed);
    }
    let sport = u16::from_be_bytes([data[0], data[1]]);
    let dport = u16::from_be_bytes([data[2], data[3]]);
    if !ctx.ports.contains(sport) && !ctx.ports.contains(dport) {
        return ctx.stats.drop(DropReason::NotDnsPort);
    }
    let seq = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    let ack = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
    let header_len = (data[12] >> 4) as usize * 4;
    if header_len < 20 || header_len > data.len() {
        return ctx.stats.drop(DropReason::TransportMalformed);
    }
    let flags = data[13];
    let key = FlowKey {
        src,
        dst,
        sport,
        dport,
        tunnel: ctx.tunnel,
    };
    let ts = ctx.ts;
    ctx.tcp.segment(
        ts.secs,
        key,
        seq,
        ack,
        flags,
        &data[header_len..],
        ctx.stats,
        &mut |message| {
            emit(DnsMessage {
                ts,
                transport: Transport::Tcp,
                data: message,
            })
        },
    );
}

/// Symmetric hash of the IP addresses of a packet (0 when not IP).
pub(super) fn address_hash(data: &[u8]) -> u64 {
    let (a, b): (&[u8], &[u8]) = match data.first().map(|b| b >> 4) {
        Some(4) if data.len() >= 20 => (&data[12..16], &data[16..20]),
        Some(6) if data.len() >= 40 => (&data[8..24], &data[24..40]),
        _ => return 0,
    };
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let state = foldhash::fast::FixedState::with_seed(0x5eed_d115);
    state.hash_one((lo, hi))
}
