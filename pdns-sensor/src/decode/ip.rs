//! Network and transport layers: IPv4/IPv6 (options, extension headers,
//! fragments) and UDP/TCP, down to the DNS payload.
//!
//! IP headers are sliced by `etherparse` (zero-copy, lengths validated, IP
//! total length honoured so Ethernet padding is cut off). Nearly every DNS
//! packet has one shape, though: UDP in IPv4 without options or fragments,
//! or in IPv6 without extension headers. [`plain_udp`] slices that shape
//! itself, with the same result `etherparse` gives for it (checked on every
//! packet of the real captures and on mutations of them), and leaves every
//! other packet to `etherparse`: its general walk over versions, options
//! and extension chains, and the addresses it builds for fragments and TCP,
//! were a tenth of a 10 k-name ingest's decoder thread. Checksums are not
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
    if let Some(datagram) = plain_udp(data) {
        return udp(ctx, datagram, emit);
    }
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

/// The UDP datagram of an IPv4 packet without options that is not a
/// fragment, or of an IPv6 packet whose next header is UDP, cut at the
/// length the IP header gives; `None` for any other packet, and for one
/// whose lengths do not fit what was captured (the general path then
/// classifies it). Exactly the payload `etherparse` slices for such a
/// packet.
#[inline]
pub(super) fn plain_udp(data: &[u8]) -> Option<&[u8]> {
    const UDP: u8 = IpNumber::UDP.0;
    match *data.first()? {
        // Version 4, header length 5 words.
        0x45 => {
            let header = data.get(..20)?;
            let total = usize::from(u16::from_be_bytes([header[2], header[3]]));
            // No more fragments and offset 0 (the flags' low bit and the
            // offset's 13 bits); the reserved and don't-fragment bits do
            // not matter.
            let whole = header[6] & 0x3f == 0 && header[7] == 0;
            (header[9] == UDP && whole && (20..=data.len()).contains(&total))
                .then(|| &data[20..total])
        }
        first if first >> 4 == 6 => {
            let header = data.get(..40)?;
            let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
            // A payload length of 0 (a jumbogram) is left to the general
            // path.
            (header[6] == UDP && len > 0 && 40 + len <= data.len()).then(|| &data[40..40 + len])
        }
        _ => None,
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
///
/// The addresses are read as integers: compared and hashed as byte
/// slices, they cost two calls of `memcmp` and a hash of lengths and
/// bytes per frame, a tenth of the reader thread's time when it
/// dispatches to two decoders.
pub(super) fn address_hash(data: &[u8]) -> u64 {
    let state = foldhash::fast::FixedState::with_seed(0x5eed_d115);
    match data.first().map(|b| b >> 4) {
        Some(4) if data.len() >= 20 => {
            let a = u32::from_be_bytes([data[12], data[13], data[14], data[15]]);
            let b = u32::from_be_bytes([data[16], data[17], data[18], data[19]]);
            state.hash_one((u64::from(a.min(b)) << 32) | u64::from(a.max(b)))
        }
        Some(6) if data.len() >= 40 => {
            let address = |at: usize| {
                let mut bytes = [0; 16];
                bytes.copy_from_slice(&data[at..at + 16]);
                u128::from_be_bytes(bytes)
            };
            let (a, b) = (address(8), address(24));
            state.hash_one((a.min(b), a.max(b)))
        }
        _ => 0,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::decode::link;

    /// The IP packets of every real capture in `testdata/pcap`.
    pub(in crate::decode) fn captured_packets() -> Vec<Vec<u8>> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path
                    .extension()
                    .is_some_and(|e| e == "pcap" || e == "pcapng")
                {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/pcap");
        walk(&root, &mut files);
        assert!(files.len() > 40, "only {} captures found", files.len());
        let mut packets = Vec::new();
        for file in &files {
            crate::source::pcap::read_file(file, |frame| {
                if let Ok(ip) = link::strip(frame.link, frame.data) {
                    packets.push(ip.to_vec());
                }
            })
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
        packets
    }

    /// What the general path makes of a packet that `plain_udp` takes: a
    /// UDP payload that is no fragment.
    fn general_udp(data: &[u8]) -> Option<&[u8]> {
        if snap_truncated(data) {
            return None;
        }
        let ip = IpSlice::from_slice(data).ok()?;
        let payload = ip.payload();
        (!payload.fragmented && payload.ip_number == IpNumber::UDP).then_some(payload.payload)
    }

    /// `plain_udp` takes a packet only where the general path makes the
    /// same datagram of it: the same bytes at the same place.
    fn agrees(data: &[u8]) -> bool {
        match plain_udp(data) {
            None => true,
            Some(fast) => general_udp(data).is_some_and(|slow| {
                std::ptr::eq(fast.as_ptr(), slow.as_ptr()) && fast.len() == slow.len()
            }),
        }
    }

    #[test]
    fn plain_udp_slices_real_packets_as_etherparse_does() {
        let packets = captured_packets();
        let mut taken = [0usize; 2];
        let mut general = 0;
        for p in &packets {
            assert!(agrees(p), "differs on {p:02x?}");
            match plain_udp(p) {
                Some(_) => taken[usize::from(p[0] >> 4 == 6)] += 1,
                None => general += usize::from(general_udp(p).is_some()),
            }
        }
        // The shortcut is taken for IPv4 and IPv6 alike, and left only
        // for the shapes it does not know (fragments, options, extension
        // headers): a shortcut that took nothing would pass the check
        // above without doing its job.
        assert!(
            taken[0] > 300 && taken[1] > 30,
            "taken {taken:?} of {}",
            packets.len()
        );
        assert!(
            general < taken[0] / 20,
            "left {general} plain UDP packets to the general path"
        );
    }

    #[test]
    fn plain_udp_agrees_on_mutated_headers() {
        let packets = captured_packets();
        let mut checked = 0;
        // A sample of each version, every header byte set to values that
        // hit the checks (lengths, flags, protocol, version nibble), and
        // cut at every length up to past the header.
        for p in packets
            .iter()
            .filter(|p| p[0] == 0x45)
            .take(40)
            .chain(packets.iter().filter(|p| p[0] >> 4 == 6).take(40))
        {
            let header = if p[0] == 0x45 { 20 } else { 40 };
            for at in 0..header.min(p.len()) {
                for v in [
                    0x00, 0x01, 0x06, 0x11, 0x20, 0x2c, 0x3f, 0x40, 0x45, 0x60, 0x80, 0xff,
                ] {
                    let mut m = p.clone();
                    m[at] = v;
                    m[at] ^= u8::from(m[at] == p[at]);
                    assert!(agrees(&m), "differs on {m:02x?}");
                    checked += 1;
                }
            }
            for len in 0..(header + 10).min(p.len()) {
                assert!(agrees(&p[..len]), "differs on {:02x?}", &p[..len]);
                checked += 1;
            }
        }
        assert!(checked > 10_000, "{checked} checked");
    }

    proptest::proptest! {
        #[test]
        fn plain_udp_agrees_on_any_bytes(
            first in proptest::prop_oneof![proptest::strategy::Just(0x45u8), proptest::strategy::Just(0x60u8), proptest::num::u8::ANY],
            rest in proptest::collection::vec(proptest::num::u8::ANY, 0..120),
            udp in proptest::bool::ANY,
        ) {
            let mut data = vec![first];
            data.extend_from_slice(&rest);
            if udp && data.len() > 9 {
                let at = if first == 0x45 { 9 } else { 6 };
                data[at] = 17;
            }
            proptest::prop_assert!(agrees(&data));
        }
    }
}
