//! Tunnels: VXLAN, Geneve, GRE and ERSPAN opened, and the packet inside
//! decoded like any other.
//!
//! A sensor fed by a mirror session receives its traffic tunnelled: AWS VPC
//! Traffic Mirroring sends VXLAN, GCP and Azure VXLAN or Geneve, switches
//! ERSPAN over GRE, and Linux tunnels (gretap, ip6gretap, ipip over GRE)
//! look the same on the wire. Each header is checked, skipped, and the inner
//! frame goes back through the same link and IP decoding — VLAN tags,
//! fragments and TCP reassembly included — one level deeper.
//!
//! The tunnel becomes part of every inner flow key ([`TunnelId`]: the
//! encapsulation and its VNI, GRE key or ERSPAN session, mixed with those
//! of the tunnels around it), so TCP streams and fragments from different
//! tunnels never mix, while both directions of a mirrored flow — which
//! travel in the same session — still meet. Outer addresses are left out
//! on purpose: a mirror may send the two directions from different places.
//! Outer fragments are reassembled before the tunnel is opened (the
//! defragmenter runs first at every level).
//!
//! Bounds: at most [`MAX_DEPTH`] tunnels inside one another (a loop, or a
//! hostile packet, is counted as `tunnel_too_deep`); every length is
//! checked against the bytes present (`tunnel_malformed`); what is not
//! opened is counted as `tunnel_unsupported`.

use super::ip::{self, Context};
use super::link;
use super::{DropReason, Encap, PortSet};
use crate::vocab::packet::{DnsMessage, LinkType};

/// Tunnels inside one another that are opened, at most.
pub(super) const MAX_DEPTH: u8 = 4;

/// The tunnels a packet came through: 0 for none, else a mix of each
/// encapsulation and its identifier, outermost first.
pub(super) type TunnelId = u64;

const GRE_CHECKSUM: u16 = 0x8000;
const GRE_ROUTING: u16 = 0x4000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQUENCE: u16 = 0x1000;
const GRE_VERSION: u16 = 0x0007;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_TEB: u16 = 0x6558;
const ETH_P_ERSPAN: u16 = 0x88be;
const ETH_P_ERSPAN3: u16 = 0x22eb;

const VXLAN_FLAG_VNI: u8 = 0x08;

/// Which tunnels are opened.
pub(super) struct TunnelConfig {
    pub enabled: bool,
    pub vxlan: PortSet,
    pub geneve: PortSet,
}

impl TunnelConfig {
    pub(super) fn new(config: &super::DecodeConfig) -> TunnelConfig {
        TunnelConfig {
            enabled: config.tunnels,
            vxlan: PortSet::new(&config.vxlan_ports),
            geneve: PortSet::new(&config.geneve_ports),
        }
    }

    /// The UDP tunnel on destination port `dport`, if any.
    #[inline]
    pub(super) fn udp(&self, dport: u16) -> Option<UdpTunnel> {
        if !self.enabled {
            None
        } else if self.vxlan.contains(dport) {
            Some(UdpTunnel::Vxlan)
        } else if self.geneve.contains(dport) {
            Some(UdpTunnel::Geneve)
        } else {
            None
        }
    }
}

/// A tunnel carried in UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UdpTunnel {
    Vxlan,
    Geneve,
}

/// What a tunnel header carries.
#[derive(Debug, PartialEq, Eq)]
enum Inner<'a> {
    Ethernet(&'a [u8]),
    Ip(&'a [u8]),
}

/// An opened tunnel header: the encapsulation, its identifier, its payload.
#[derive(Debug, PartialEq, Eq)]
struct Opened<'a> {
    encap: Encap,
    id: u32,
    inner: Inner<'a>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// A VXLAN header (8 bytes: flags with I set, VNI) and the Ethernet frame
/// after it.
fn open_vxlan(data: &[u8]) -> Result<Opened<'_>, DropReason> {
    if data.len() < 8 || data[0] & VXLAN_FLAG_VNI == 0 {
        return Err(DropReason::TunnelMalformed);
    }
    Ok(Opened {
        encap: Encap::Vxlan,
        id: u32::from_be_bytes([0, data[4], data[5], data[6]]),
        inner: Inner::Ethernet(&data[8..]),
    })
}

/// A Geneve header (version 0, options) and the frame or packet after it.
fn open_geneve(data: &[u8]) -> Result<Opened<'_>, DropReason> {
    if data.len() < 8 || data[0] >> 6 != 0 {
        return Err(DropReason::TunnelMalformed);
    }
    let start = 8 + usize::from(data[0] & 0x3f) * 4;
    if start > data.len() {
        return Err(DropReason::TunnelMalformed);
    }
    let payload = &data[start..];
    let inner = match be16(data, 2) {
        ETH_P_TEB => Inner::Ethernet(payload),
        ETH_P_IPV4 | ETH_P_IPV6 => Inner::Ip(payload),
        _ => return Err(DropReason::TunnelUnsupported),
    };
    Ok(Opened {
        encap: Encap::Geneve,
        id: u32::from_be_bytes([0, data[4], data[5], data[6]]),
        inner,
    })
}

/// A GRE header (version 0; checksum, key and sequence number as flagged)
/// and what it carries: IP, Ethernet, or ERSPAN I, II or III.
fn open_gre(data: &[u8]) -> Result<Opened<'_>, DropReason> {
    if data.len() < 4 {
        return Err(DropReason::TunnelMalformed);
    }
    let flags = be16(data, 0);
    if flags & GRE_VERSION != 0 || flags & GRE_ROUTING != 0 {
        return Err(DropReason::TunnelUnsupported);
    }
    let mut at = 4;
    if flags & GRE_CHECKSUM != 0 {
        at += 4;
    }
    let mut key = 0;
    if flags & GRE_KEY != 0 {
        key = data
            .get(at..at + 4)
            .map(|k| u32::from_be_bytes([k[0], k[1], k[2], k[3]]))
            .ok_or(DropReason::TunnelMalformed)?;
        at += 4;
    }
    let sequenced = flags & GRE_SEQUENCE != 0;
    if sequenced {
        at += 4;
    }
    if at > data.len() {
        return Err(DropReason::TunnelMalformed);
    }
    let payload = &data[at..];
    match be16(data, 2) {
        ETH_P_IPV4 | ETH_P_IPV6 => Ok(Opened {
            encap: Encap::GreIp,
            id: key,
            inner: Inner::Ip(payload),
        }),
        ETH_P_TEB => Ok(Opened {
            encap: Encap::GreTeb,
            id: key,
            inner: Inner::Ethernet(payload),
        }),
        // Type I has no header of its own (and no sequence number).
        ETH_P_ERSPAN if !sequenced => Ok(Opened {
            encap: Encap::Erspan1,
            id: key,
            inner: Inner::Ethernet(payload),
        }),
        ETH_P_ERSPAN => open_erspan2(payload),
        ETH_P_ERSPAN3 => open_erspan3(payload),
        _ => Err(DropReason::TunnelUnsupported),
    }
}

/// The 10-bit ERSPAN session id of a type II or III header.
fn erspan_session(h: &[u8]) -> u32 {
    u32::from(be16(h, 2) & 0x03ff)
}

/// ERSPAN type II: an 8-byte header (version 1), then the Ethernet frame.
fn open_erspan2(h: &[u8]) -> Result<Opened<'_>, DropReason> {
    if h.len() < 8 || h[0] >> 4 != 1 {
        return Err(DropReason::TunnelMalformed);
    }
    Ok(Opened {
        encap: Encap::Erspan2,
        id: erspan_session(h),
        inner: Inner::Ethernet(&h[8..]),
    })
}

/// ERSPAN type III: a 12-byte header (version 2), an 8-byte
/// platform-specific subheader if its O bit is set, then the frame —
/// Ethernet (frame type 0) is the only one opened.
fn open_erspan3(h: &[u8]) -> Result<Opened<'_>, DropReason> {
    if h.len() < 12 || h[0] >> 4 != 2 {
        return Err(DropReason::TunnelMalformed);
    }
    let frame_type = (h[10] >> 2) & 0x1f;
    if frame_type != 0 {
        return Err(DropReason::TunnelUnsupported);
    }
    let start = if h[11] & 0x01 != 0 { 20 } else { 12 };
    if start > h.len() {
        return Err(DropReason::TunnelMalformed);
    }
    Ok(Opened {
        encap: Encap::Erspan3,
        id: erspan_session(h),
        inner: Inner::Ethernet(&h[start..]),
    })
}

/// The identifier of a tunnel inside the tunnels `outer`.
fn mix(outer: TunnelId, encap: Encap, id: u32) -> TunnelId {
    let this = ((encap as u64 + 1) << 32) | u64::from(id);
    (outer.rotate_left(23) ^ this).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

/// Opens a UDP tunnel's payload and decodes what it carries.
pub(super) fn udp(
    ctx: &mut Context<'_>,
    tunnel: UdpTunnel,
    payload: &[u8],
    emit: &mut dyn FnMut(DnsMessage<'_>),
) {
    let opened = match tunnel {
        UdpTunnel::Vxlan => open_vxlan(payload),
        UdpTunnel::Geneve => open_geneve(payload),
    };
    enter(ctx, opened, emit);
}

/// Opens a GRE packet (IP protocol 47) and decodes what it carries.
pub(super) fn gre(ctx: &mut Context<'_>, payload: &[u8], emit: &mut dyn FnMut(DnsMessage<'_>)) {
    enter(ctx, open_gre(payload), emit);
}

/// Decodes the inside of an opened tunnel one level deeper.
fn enter(
    ctx: &mut Context<'_>,
    opened: Result<Opened<'_>, DropReason>,
    emit: &mut dyn FnMut(DnsMessage<'_>),
) {
    let opened = match opened {
        Ok(o) => o,
        Err(reason) => return ctx.stats.drop(reason),
    };
    if ctx.depth >= MAX_DEPTH {
        return ctx.stats.drop(DropReason::TunnelTooDeep);
    }
    ctx.stats.decapsulated[opened.encap as usize] += 1;
    let l3 = match opened.inner {
        Inner::Ip(packet) => packet,
        Inner::Ethernet(frame) => match link::strip(LinkType::Ethernet, frame) {
            Ok(l3) => l3,
            Err(reason) => return ctx.stats.drop(reason),
        },
    };
    let outer = (ctx.tunnel, ctx.depth);
    ctx.tunnel = mix(ctx.tunnel, opened.encap, opened.id);
    ctx.depth += 1;
    ip::decode(ctx, l3, emit);
    (ctx.tunnel, ctx.depth) = outer;
}

/// The innermost IP packet inside the tunnels a parsed IP packet carries,
/// for dispatching by inner addresses (see `FlowHasher`): the packet itself
/// when it carries no tunnel or is not well formed. A first fragment is
/// looked into as far as its headers go (the inner headers are in it); a
/// later fragment carries no tunnel header and is returned as it is.
pub(super) fn innermost<'a>(
    config: &TunnelConfig,
    mut l3: &'a [u8],
    ip: &etherparse::IpSlice<'a>,
) -> &'a [u8] {
    if !config.enabled {
        return l3;
    }
    let mut opened = open_headers(config, ip);
    for _ in 0..MAX_DEPTH {
        let Some(o) = opened else {
            break;
        };
        let inner = match o.inner {
            Inner::Ip(packet) => Some(packet),
            Inner::Ethernet(frame) => link::strip(LinkType::Ethernet, frame).ok(),
        };
        let Some(inner) = inner else {
            break;
        };
        l3 = inner;
        opened = etherparse::IpSlice::from_slice(l3)
            .ok()
            .and_then(|ip| open_headers(config, &ip));
    }
    l3
}

/// The tunnel an IP packet (or the first fragment of one) carries, if any.
fn open_headers<'a>(config: &TunnelConfig, ip: &etherparse::IpSlice<'a>) -> Option<Opened<'a>> {
    if fragment_offset(ip) != 0 {
        return None;
    }
    let payload = ip.payload();
    let data = payload.payload;
    match payload.ip_number {
        etherparse::IpNumber::UDP if data.len() >= 8 => match config.udp(be16(data, 2))? {
            UdpTunnel::Vxlan => open_vxlan(&data[8..]).ok(),
            UdpTunnel::Geneve => open_geneve(&data[8..]).ok(),
        },
        etherparse::IpNumber::GRE => open_gre(data).ok(),
        _ => None,
    }
}

fn fragment_offset(ip: &etherparse::IpSlice<'_>) -> u16 {
    match ip {
        etherparse::IpSlice::Ipv4(v4) => v4.header().fragments_offset().value(),
        etherparse::IpSlice::Ipv6(v6) => v6
            .extensions()
            .clone()
            .into_iter()
            .find_map(|ext| match ext {
                etherparse::Ipv6ExtensionSlice::Fragment(f) => Some(f.fragment_offset().value()),
                _ => None,
            })
            .unwrap_or(0),
    }
}

/// Identifies the fragments of one IP datagram: addresses, identification,
/// and whether this is the first fragment (`None` for a packet that is not
/// a fragment).
pub(super) fn fragment_id(ip: &etherparse::IpSlice<'_>) -> Option<(u128, u128, u32, bool)> {
    if !ip.payload().fragmented {
        return None;
    }
    let first = fragment_offset(ip) == 0;
    match ip {
        etherparse::IpSlice::Ipv4(v4) => {
            let h = v4.header();
            Some((
                u128::from(u32::from_be_bytes(h.source())),
                u128::from(u32::from_be_bytes(h.destination())),
                u32::from(h.identification()),
                first,
            ))
        }
        etherparse::IpSlice::Ipv6(v6) => {
            let id = v6
                .extensions()
                .clone()
                .into_iter()
                .find_map(|ext| match ext {
                    etherparse::Ipv6ExtensionSlice::Fragment(f) => Some(f.identification()),
                    _ => None,
                })?;
            let h = v6.header();
            Some((
                u128::from_be_bytes(h.source()),
                u128::from_be_bytes(h.destination()),
                id,
                first,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_needs_its_flag_and_eight_bytes() {
        let mut h = vec![0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0, 0xee];
        let o = open_vxlan(&h).unwrap();
        assert_eq!((o.encap, o.id), (Encap::Vxlan, 0x123456));
        assert_eq!(o.inner, Inner::Ethernet(&[0xee][..]));
        h[0] = 0;
        assert_eq!(open_vxlan(&h), Err(DropReason::TunnelMalformed));
        assert_eq!(open_vxlan(&h[..7]), Err(DropReason::TunnelMalformed));
    }

    #[test]
    fn geneve_options_are_skipped_and_bounded() {
        // Two 4-byte words of options, Ethernet inside.
        let mut h = vec![0x02, 0, 0x65, 0x58, 0, 0, 7, 0];
        h.extend([1u8; 8]);
        h.push(0xee);
        let o = open_geneve(&h).unwrap();
        assert_eq!((o.encap, o.id), (Encap::Geneve, 7));
        assert_eq!(o.inner, Inner::Ethernet(&[0xee][..]));
        // Options running past the packet; version 1; an unknown protocol.
        assert_eq!(open_geneve(&h[..12]), Err(DropReason::TunnelMalformed));
        let mut v1 = h.clone();
        v1[0] |= 0x40;
        assert_eq!(open_geneve(&v1), Err(DropReason::TunnelMalformed));
        let mut other = h.clone();
        other[2] = 0x12;
        assert_eq!(open_geneve(&other), Err(DropReason::TunnelUnsupported));
        // IP straight inside.
        let ip = [0x00, 0, 0x86, 0xdd, 0, 0, 9, 0, 0x60];
        assert_eq!(open_geneve(&ip).unwrap().inner, Inner::Ip(&[0x60][..]));
    }

    #[test]
    fn gre_flags_set_where_the_payload_starts() {
        // Checksum, key and sequence: 16 bytes of header.
        let h = [
            0xb0, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 1, 0x45,
        ];
        let o = open_gre(&h).unwrap();
        assert_eq!((o.encap, o.id), (Encap::GreIp, 42));
        assert_eq!(o.inner, Inner::Ip(&[0x45][..]));
        assert_eq!(open_gre(&h[..10]), Err(DropReason::TunnelMalformed));
        // Version 1 (PPTP), routing, unknown protocols.
        assert_eq!(
            open_gre(&[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0]),
            Err(DropReason::TunnelUnsupported)
        );
        assert_eq!(
            open_gre(&[0x40, 0, 0x08, 0]),
            Err(DropReason::TunnelUnsupported)
        );
        assert_eq!(
            open_gre(&[0, 0, 0x12, 0x34]),
            Err(DropReason::TunnelUnsupported)
        );
        let teb = open_gre(&[0x20, 0, 0x65, 0x58, 0, 0, 0, 9, 0xee]).unwrap();
        assert_eq!((teb.encap, teb.id), (Encap::GreTeb, 9));
    }

    #[test]
    fn erspan_types_by_protocol_and_sequence_bit() {
        // Type I: no sequence number, no header.
        let t1 = open_gre(&[0, 0, 0x88, 0xbe, 0xee]).unwrap();
        assert_eq!(t1.encap, Encap::Erspan1);
        assert_eq!(t1.inner, Inner::Ethernet(&[0xee][..]));
        // Type II: sequence number, version 1, session 0x155.
        let t2 = open_gre(&[
            0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0x00, 0x01, 0x55, 0, 0, 0, 0, 0xee,
        ])
        .unwrap();
        assert_eq!((t2.encap, t2.id), (Encap::Erspan2, 0x155));
        assert_eq!(t2.inner, Inner::Ethernet(&[0xee][..]));
        assert_eq!(
            open_erspan2(&[0x20, 0, 0, 0, 0, 0, 0, 0]),
            Err(DropReason::TunnelMalformed)
        );
        // Type III with the platform-specific subheader.
        let mut h3 = vec![0x20, 0, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 0x00, 0x01];
        h3.extend([0u8; 8]);
        h3.push(0xee);
        let t3 = open_erspan3(&h3).unwrap();
        assert_eq!((t3.encap, t3.id), (Encap::Erspan3, 0x201));
        assert_eq!(t3.inner, Inner::Ethernet(&[0xee][..]));
        assert_eq!(open_erspan3(&h3[..16]), Err(DropReason::TunnelMalformed));
        let mut ip_frame = h3.clone();
        ip_frame[10] = 2 << 2;
        assert_eq!(open_erspan3(&ip_frame), Err(DropReason::TunnelUnsupported));
    }

    /// A DNS answer to a client whose port is VXLAN's is DNS: resolvers
    /// pick source ports from the whole range.
    #[test]
    fn an_answer_from_port_53_to_a_tunnel_port_is_dns() {
        use crate::vocab::packet::{Frame, Timestamp};
        let dns = [0x12, 0x34, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([192, 0, 2, 53], [192, 0, 2, 1], 64)
            .udp(53, super::super::DEFAULT_VXLAN_PORT)
            .write(&mut frame, &dns)
            .unwrap();
        let mut decoder = super::super::Decoder::new(&super::super::DecodeConfig::default());
        let mut got = Vec::new();
        decoder.decode(
            &Frame {
                ts: Timestamp::from_secs(1),
                link: LinkType::Ethernet,
                data: &frame,
            },
            &mut |m| got.push(m.data.to_vec()),
        );
        assert_eq!(got, vec![dns.to_vec()]);
        assert_eq!(decoder.stats.decapsulated, [0; Encap::ALL.len()]);
    }

    #[test]
    fn tunnel_ids_differ_by_kind_id_and_nesting() {
        let a = mix(0, Encap::Vxlan, 1);
        assert_ne!(a, 0);
        assert_ne!(a, mix(0, Encap::Vxlan, 2));
        assert_ne!(a, mix(0, Encap::Geneve, 1));
        assert_ne!(mix(a, Encap::Vxlan, 1), a);
        assert_eq!(a, mix(0, Encap::Vxlan, 1));
    }
}
