//! Tunnelled variants of real captures: every frame rewritten to travel
//! inside VXLAN, Geneve, GRE or ERSPAN (or several of them nested), over an
//! IPv4 or IPv6 outer header, as a mirror session or an overlay network
//! would deliver it to the sensor. Also deliberately broken tunnels.
//!
//! The outer headers are built by hand here (independently of the
//! decoder): outer Ethernet, outer IP (header checksum filled, IPv6 UDP
//! checksums filled, IPv4 UDP checksums 0 as Linux sends VXLAN), UDP or GRE,
//! the tunnel header and the inner frame. Frames of link types other than
//! Ethernet get an Ethernet header built around their IP packet; GRE-in-IP
//! carries the IP packet itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pdns_sensor::decode::{DropReason, link};
use pdns_sensor::vocab::packet::{LinkType, Timestamp};

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_TEB: u16 = 0x6558;
const GRE_ERSPAN_1_2: u16 = 0x88be;
const GRE_ERSPAN_3: u16 = 0x22eb;
const VXLAN_PORT: u16 = 4789;
const GENEVE_PORT: u16 = 6081;

/// One kind of tunnel header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encap {
    /// VXLAN (RFC 7348) on UDP 4789, I flag set.
    Vxlan { vni: u32 },
    /// Geneve (RFC 8926) on UDP 6081 carrying Ethernet; with `options`, two
    /// TLV options (4 and 8 data bytes) before the frame.
    Geneve { vni: u32, options: bool },
    /// IPv4/IPv6 directly in GRE.
    GreIp {
        key: Option<u32>,
        seq: bool,
        checksum: bool,
    },
    /// Ethernet in GRE (0x6558).
    GreTeb {
        key: Option<u32>,
        seq: bool,
        checksum: bool,
    },
    /// ERSPAN type I: GRE 0x88BE without sequence, the frame right after.
    Erspan1,
    /// ERSPAN type II: GRE 0x88BE with S, 8-byte header version 1.
    Erspan2 { session: u16 },
    /// ERSPAN type III: GRE 0x22EB with S, 12-byte header version 2, plus
    /// the 8-byte platform-specific subheader when `subheader`.
    Erspan3 { session: u16, subheader: bool },
}

impl Encap {
    /// The label the sensor counts it under (`pdns_decapsulated_total`).
    pub(crate) fn label(self) -> &'static str {
        self.counter().as_str()
    }

    /// The sensor's counter for it.
    pub(crate) fn counter(self) -> pdns_sensor::decode::Encap {
        use pdns_sensor::decode::Encap as E;
        match self {
            Encap::Vxlan { .. } => E::Vxlan,
            Encap::Geneve { .. } => E::Geneve,
            Encap::GreIp { .. } => E::GreIp,
            Encap::GreTeb { .. } => E::GreTeb,
            Encap::Erspan1 => E::Erspan1,
            Encap::Erspan2 { .. } => E::Erspan2,
            Encap::Erspan3 { .. } => E::Erspan3,
        }
    }

    fn carries_ethernet(self) -> bool {
        !matches!(self, Encap::GreIp { .. })
    }

    /// A representative of every kind (keys, sequence numbers, checksums,
    /// options and subheaders on).
    pub(crate) fn all() -> Vec<Encap> {
        vec![
            Encap::Vxlan { vni: 4242 },
            Encap::Geneve {
                vni: 0x00ab_cdef,
                options: true,
            },
            Encap::Geneve {
                vni: 7,
                options: false,
            },
            Encap::GreIp {
                key: Some(0xdead_beef),
                seq: true,
                checksum: true,
            },
            Encap::GreIp {
                key: None,
                seq: false,
                checksum: false,
            },
            Encap::GreTeb {
                key: Some(17),
                seq: true,
                checksum: false,
            },
            Encap::GreTeb {
                key: None,
                seq: false,
                checksum: true,
            },
            Encap::Erspan1,
            Encap::Erspan2 { session: 0x3ff },
            Encap::Erspan3 {
                session: 5,
                subheader: true,
            },
            Encap::Erspan3 {
                session: 6,
                subheader: false,
            },
        ]
    }
}

/// The outer IP version of one tunnel layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OuterIp {
    V4,
    V6,
}

/// One tunnel: its header and the IP version it travels over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layer {
    pub encap: Encap,
    pub outer: OuterIp,
}

pub(crate) fn layer(encap: Encap, outer: OuterIp) -> Layer {
    Layer { encap, outer }
}

/// How the outer addresses are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Addressing {
    /// A mirror session: one fixed source (the tap) and destination (the
    /// sensor) for everything, per nesting depth.
    Mirror,
    /// One mirror session per inner source host (as AWS Traffic Mirroring
    /// from every ENI to one target): the outer source is derived from the
    /// inner source address, the destination is the sensor. The two
    /// directions of a flow arrive from two different outer sources.
    PerSourceHost,
}

/// A deliberately broken outermost tunnel header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformation {
    /// The tunnel header (GRE plus ERSPAN, or VXLAN/Geneve) cut in half, the
    /// outer lengths telling the truth about the cut packet.
    TruncatedHeader,
    /// VXLAN with the I (valid VNI) flag clear.
    VxlanNoIFlag,
    /// Geneve version 1.
    GeneveVersion1,
    /// Geneve options length of 252 bytes, the packet ending after the
    /// header's real options.
    GeneveOptionOverrun,
    /// GRE protocol 0x88B5 (IEEE local experimental).
    GreUnknownProtocol,
    /// GRE version 1 (PPTP's enhanced GRE).
    GreVersion1,
    /// GRE with the routing bit set.
    GreRouting,
    /// ERSPAN type II header with version 3.
    ErspanUnknownVersion,
    /// ERSPAN type III with frame type 2 (IP), not Ethernet.
    ErspanNotEthernet,
}

/// What a capture is rewritten into.
#[derive(Clone, Debug)]
pub(crate) struct Tunnel {
    /// Outermost first: `[GRE, VXLAN]` is VXLAN inside GRE.
    pub layers: Vec<Layer>,
    pub addressing: Addressing,
    /// Fragment the outermost IP packet to this many bytes of IP (header
    /// included), as an underlay with that MTU would.
    pub mtu: Option<usize>,
    /// Break the outermost tunnel header.
    pub malformation: Option<Malformation>,
}

impl Tunnel {
    pub(crate) fn new(layers: Vec<Layer>) -> Tunnel {
        assert!(!layers.is_empty());
        Tunnel {
            layers,
            addressing: Addressing::Mirror,
            mtu: None,
            malformation: None,
        }
    }

    pub(crate) fn single(encap: Encap, outer: OuterIp) -> Tunnel {
        Tunnel::new(vec![layer(encap, outer)])
    }

    pub(crate) fn addressing(mut self, a: Addressing) -> Tunnel {
        self.addressing = a;
        self
    }

    pub(crate) fn mtu(mut self, mtu: usize) -> Tunnel {
        self.mtu = Some(mtu);
        self
    }

    pub(crate) fn malformed(mut self, m: Malformation) -> Tunnel {
        self.malformation = Some(m);
        self
    }

    /// `depth` VXLAN layers (VNIs 1..=depth), alternating IPv4 and IPv6.
    pub(crate) fn nested_vxlan(depth: usize) -> Tunnel {
        Tunnel::new(
            (0..depth)
                .map(|i| {
                    layer(
                        Encap::Vxlan { vni: i as u32 + 1 },
                        if i % 2 == 0 { OuterIp::V4 } else { OuterIp::V6 },
                    )
                })
                .collect(),
        )
    }

    pub(crate) fn describe(&self) -> String {
        let mut s = self
            .layers
            .iter()
            .map(|l| format!("{:?}/{:?}", l.encap, l.outer))
            .collect::<Vec<_>>()
            .join(" > ");
        if self.addressing != Addressing::Mirror {
            s.push_str(&format!(" [{:?}]", self.addressing));
        }
        if let Some(m) = self.mtu {
            s.push_str(&format!(" [mtu {m}]"));
        }
        if let Some(m) = self.malformation {
            s.push_str(&format!(" [{m:?}]"));
        }
        s
    }
}

/// Wraps frames one at a time, keeping sequence numbers and IP ids.
pub(crate) struct Wrapper {
    pub tunnel: Tunnel,
    seq: u32,
    ip_id: u16,
}

/// What the payload of a layer is.
enum Payload {
    Ethernet(Vec<u8>),
    Ip(Vec<u8>),
}

impl Wrapper {
    pub(crate) fn new(tunnel: Tunnel) -> Wrapper {
        Wrapper {
            tunnel,
            seq: 0,
            ip_id: 0x1000,
        }
    }

    /// The outer Ethernet frames carrying one captured frame (several when
    /// the outer packet is fragmented), or the reason the plain decoder
    /// drops the frame at the link layer when it cannot be carried (a frame
    /// that is not IP, of a link type other than Ethernet or inside
    /// GRE-in-IP).
    pub(crate) fn wrap(
        &mut self,
        link: LinkType,
        frame: &[u8],
    ) -> Result<Vec<Vec<u8>>, DropReason> {
        let mut payload = if link == LinkType::Ethernet
            && self.tunnel.layers.last().unwrap().encap.carries_ethernet()
        {
            Payload::Ethernet(frame.to_vec())
        } else {
            Payload::Ip(link::strip(link, frame)?.to_vec())
        };
        self.seq = self.seq.wrapping_add(1);
        let n = self.tunnel.layers.len();
        let mut packet = Vec::new();
        for i in (0..n).rev() {
            let Layer { encap, outer } = self.tunnel.layers[i];
            let broken = if i == 0 {
                self.tunnel.malformation
            } else {
                None
            };
            let inner = match (payload, encap.carries_ethernet()) {
                (Payload::Ethernet(f), true) => f,
                (Payload::Ip(p), true) => ethernet(0x10 + i as u8, ethertype_of(&p), &p),
                (Payload::Ip(p), false) => p,
                (Payload::Ethernet(f), false) => link::strip(LinkType::Ethernet, &f)?.to_vec(),
            };
            let flow = if encap.carries_ethernet() {
                link::strip(LinkType::Ethernet, &inner)
                    .ok()
                    .and_then(inner_flow)
            } else {
                inner_flow(&inner)
            };
            let (src, dst) = self.addresses(i, outer, flow.as_ref());
            let ip = match encap {
                Encap::Vxlan { vni } => {
                    let mut h = vec![0x08, 0, 0, 0];
                    if broken == Some(Malformation::VxlanNoIFlag) {
                        h[0] = 0;
                    }
                    h.extend_from_slice(&(vni << 8).to_be_bytes());
                    let sport = flow_port(flow.as_ref());
                    let body = tunnel_body(h, &inner, broken);
                    self.ip(
                        outer,
                        &src,
                        &dst,
                        17,
                        udp(&src, &dst, sport, VXLAN_PORT, &body, outer),
                    )
                }
                Encap::Geneve { vni, options } => {
                    let mut opts = Vec::new();
                    if options {
                        // AWS Gateway Load Balancer style options (class
                        // 0x0108): 4 and 8 bytes of data.
                        opts.extend_from_slice(&[0x01, 0x08, 0x01, 0x01]);
                        opts.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                        opts.extend_from_slice(&[0x01, 0x08, 0x02, 0x02]);
                        opts.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
                    }
                    let mut h = vec![(opts.len() / 4) as u8, 0];
                    h.extend_from_slice(&ETH_TEB.to_be_bytes());
                    h.extend_from_slice(&(vni << 8).to_be_bytes());
                    if broken == Some(Malformation::GeneveVersion1) {
                        h[0] |= 0x40;
                    }
                    h.extend_from_slice(&opts);
                    let body = if broken == Some(Malformation::GeneveOptionOverrun) {
                        h[0] = 63;
                        h
                    } else {
                        tunnel_body(h, &inner, broken)
                    };
                    let sport = flow_port(flow.as_ref());
                    self.ip(
                        outer,
                        &src,
                        &dst,
                        17,
                        udp(&src, &dst, sport, GENEVE_PORT, &body, outer),
                    )
                }
                Encap::GreIp { key, seq, checksum } => {
                    let proto = ethertype_of(&inner);
                    let h = gre(proto, checksum, key, seq.then_some(self.seq), broken);
                    self.ip(
                        outer,
                        &src,
                        &dst,
                        47,
                        gre_body(h, &[], &inner, checksum, broken),
                    )
                }
                Encap::GreTeb { key, seq, checksum } => {
                    let h = gre(ETH_TEB, checksum, key, seq.then_some(self.seq), broken);
                    self.ip(
                        outer,
                        &src,
                        &dst,
                        47,
                        gre_body(h, &[], &inner, checksum, broken),
                    )
                }
                Encap::Erspan1 => {
                    let h = gre(GRE_ERSPAN_1_2, false, None, None, broken);
                    self.ip(
                        outer,
                        &src,
                        &dst,
                        47,
                        gre_body(h, &[], &inner, false, broken),
                    )
                }
                Encap::Erspan2 { session } => {
                    let h = gre(GRE_ERSPAN_1_2, false, None, Some(self.seq), broken);
                    let version: u32 = if broken == Some(Malformation::ErspanUnknownVersion) {
                        3
                    } else {
                        1
                    };
                    // Ver(4) VLAN(12) | COS(3) En(2) T(1) Session(10);
                    // Reserved(12) Index(20).
                    let w0 = version << 28 | 10 << 16 | 0b11 << 11 | (session as u32 & 0x3ff);
                    let mut e = w0.to_be_bytes().to_vec();
                    e.extend_from_slice(&(self.seq & 0xf_ffff).to_be_bytes());
                    self.ip(
                        outer,
                        &src,
                        &dst,
                        47,
                        gre_body(h, &e, &inner, false, broken),
                    )
                }
                Encap::Erspan3 { session, subheader } => {
                    let h = gre(GRE_ERSPAN_3, false, None, Some(self.seq), broken);
                    let version: u32 = 2;
                    // Ver(4) VLAN(12) | COS(3) BSO(2) T(1) Session(10).
                    let w0 = version << 28 | 20 << 16 | (session as u32 & 0x3ff);
                    let mut e = w0.to_be_bytes().to_vec();
                    // Timestamp.
                    e.extend_from_slice(&self.seq.wrapping_mul(1000).to_be_bytes());
                    // SGT(16) | P(1) FT(5) HW ID(6) D(1) Gra(2) O(1).
                    let ft: u16 = if broken == Some(Malformation::ErspanNotEthernet) {
                        2
                    } else {
                        0
                    };
                    let low: u16 = ft << 10 | 3 << 4 | 0b01 << 1 | u16::from(subheader);
                    e.extend_from_slice(&0x0042u16.to_be_bytes());
                    e.extend_from_slice(&low.to_be_bytes());
                    if subheader {
                        // Platform ID 3: port ID and upper timestamp.
                        e.extend_from_slice(&[0x0c, 0, 0, 7, 0, 0, 0, 1]);
                    }
                    self.ip(
                        outer,
                        &src,
                        &dst,
                        47,
                        gre_body(h, &e, &inner, false, broken),
                    )
                }
            };
            packet = ip;
            payload = Payload::Ip(packet.clone());
        }
        let outer = self.tunnel.layers[0].outer;
        let packets = match self.tunnel.mtu {
            Some(mtu) if packet.len() > mtu => fragment(&packet, outer, mtu),
            _ => vec![packet],
        };
        Ok(packets
            .into_iter()
            .map(|p| {
                let mut f = vec![0x02, 0, 0, 0, 0x01, 0x00, 0x02, 0, 0, 0, 0x00, 0x01];
                f.extend_from_slice(&ethertype_of(&p).to_be_bytes());
                f.extend_from_slice(&p);
                f
            })
            .collect())
    }

    /// Outer source and destination of layer `depth`.
    fn addresses(&self, depth: usize, outer: OuterIp, flow: Option<&Flow>) -> (Vec<u8>, Vec<u8>) {
        let d = depth as u8;
        let host = match (self.tunnel.addressing, flow) {
            (Addressing::PerSourceHost, Some(f)) => fnv(&f.src) as u16,
            _ => 1,
        };
        match outer {
            OuterIp::V4 => (
                vec![10, d, (host >> 8) as u8, (host as u8).max(1)],
                vec![192, 0, 2, 100 + d],
            ),
            OuterIp::V6 => {
                let mut s = vec![0xfd, 0, 0, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                s.extend_from_slice(&host.max(1).to_be_bytes());
                let mut t = vec![0x20, 0x01, 0x0d, 0xb8, 0, d, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                t.push(0x64);
                (s, t)
            }
        }
    }

    /// An IP packet (no options or extension headers) around `payload`.
    fn ip(&mut self, v: OuterIp, src: &[u8], dst: &[u8], proto: u8, payload: Vec<u8>) -> Vec<u8> {
        match v {
            OuterIp::V4 => {
                self.ip_id = self.ip_id.wrapping_add(1);
                let total = 20 + payload.len();
                assert!(total <= 65535, "outer IPv4 packet of {total} bytes");
                let mut h = vec![0x45, 0];
                h.extend_from_slice(&(total as u16).to_be_bytes());
                h.extend_from_slice(&self.ip_id.to_be_bytes());
                h.extend_from_slice(&[0, 0, 64, proto, 0, 0]);
                h.extend_from_slice(src);
                h.extend_from_slice(dst);
                let c = checksum(&[&h]);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                h.extend_from_slice(&payload);
                h
            }
            OuterIp::V6 => {
                assert!(
                    payload.len() <= 65535,
                    "outer IPv6 payload of {} bytes",
                    payload.len()
                );
                let mut h = vec![0x60, 0, 0, 0];
                h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
                h.extend_from_slice(&[proto, 64]);
                h.extend_from_slice(src);
                h.extend_from_slice(dst);
                h.extend_from_slice(&payload);
                h
            }
        }
    }
}

/// The tunnel header followed by the inner frame, or with a truncation the
/// first half of the header only.
fn tunnel_body(mut header: Vec<u8>, inner: &[u8], broken: Option<Malformation>) -> Vec<u8> {
    if broken == Some(Malformation::TruncatedHeader) {
        header.truncate(header.len() / 2);
        return header;
    }
    header.extend_from_slice(inner);
    header
}

/// A GRE header: flags, version, protocol and the optional fields
/// (checksum left 0 here, filled by [`gre_body`]).
fn gre(
    proto: u16,
    checksum: bool,
    key: Option<u32>,
    seq: Option<u32>,
    broken: Option<Malformation>,
) -> Vec<u8> {
    let mut flags: u16 = 0;
    if checksum {
        flags |= 0x8000;
    }
    if key.is_some() {
        flags |= 0x2000;
    }
    if seq.is_some() {
        flags |= 0x1000;
    }
    let proto = match broken {
        Some(Malformation::GreVersion1) => {
            flags |= 1;
            proto
        }
        Some(Malformation::GreRouting) => {
            flags |= 0x4000;
            proto
        }
        Some(Malformation::GreUnknownProtocol) => 0x88b5,
        _ => proto,
    };
    let mut h = flags.to_be_bytes().to_vec();
    h.extend_from_slice(&proto.to_be_bytes());
    if checksum {
        h.extend_from_slice(&[0; 4]);
    }
    if let Some(k) = key {
        h.extend_from_slice(&k.to_be_bytes());
    }
    if let Some(s) = seq {
        h.extend_from_slice(&s.to_be_bytes());
    }
    h
}

/// GRE header, ERSPAN header, inner frame; the GRE checksum filled when
/// present.
fn gre_body(
    gre: Vec<u8>,
    erspan: &[u8],
    inner: &[u8],
    checksummed: bool,
    broken: Option<Malformation>,
) -> Vec<u8> {
    let mut header = gre;
    header.extend_from_slice(erspan);
    let mut body = tunnel_body(header, inner, broken);
    if checksummed && broken.is_none() {
        let c = checksum(&[&body]);
        body[4..6].copy_from_slice(&c.to_be_bytes());
    }
    body
}

/// A UDP datagram; the checksum is filled over IPv6 (mandatory there) and
/// left 0 over IPv4 (as Linux sends VXLAN).
fn udp(src: &[u8], dst: &[u8], sport: u16, dport: u16, body: &[u8], v: OuterIp) -> Vec<u8> {
    let len = 8 + body.len();
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(body);
    if v == OuterIp::V6 {
        let mut pseudo = src.to_vec();
        pseudo.extend_from_slice(dst);
        pseudo.extend_from_slice(&(len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
        let c = match checksum(&[&pseudo, &u]) {
            0 => 0xffff,
            c => c,
        };
        u[6..8].copy_from_slice(&c.to_be_bytes());
    }
    u
}

/// Fragments an IP packet (no options or extension headers) into packets
/// of at most `mtu` bytes.
fn fragment(packet: &[u8], v: OuterIp, mtu: usize) -> Vec<Vec<u8>> {
    let (hlen, payload) = match v {
        OuterIp::V4 => (20, &packet[20..]),
        OuterIp::V6 => (40, &packet[40..]),
    };
    let per = match v {
        OuterIp::V4 => (mtu - 20) / 8 * 8,
        OuterIp::V6 => (mtu - 48) / 8 * 8,
    };
    let id = fnv(packet) as u32;
    let mut out = Vec::new();
    for (i, chunk) in payload.chunks(per).enumerate() {
        let offset = i * per;
        let more = offset + chunk.len() < payload.len();
        let mut p = packet[..hlen].to_vec();
        match v {
            OuterIp::V4 => {
                p[2..4].copy_from_slice(&((20 + chunk.len()) as u16).to_be_bytes());
                let field = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
                p[6..8].copy_from_slice(&field.to_be_bytes());
                p[10..12].copy_from_slice(&[0, 0]);
                let c = checksum(&[&p]);
                p[10..12].copy_from_slice(&c.to_be_bytes());
            }
            OuterIp::V6 => {
                let next = p[6];
                p[6] = 44;
                p[4..6].copy_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
                p.extend_from_slice(&[next, 0]);
                let field = (offset as u16) | u16::from(more);
                p.extend_from_slice(&field.to_be_bytes());
                p.extend_from_slice(&id.to_be_bytes());
            }
        }
        p.extend_from_slice(chunk);
        out.push(p);
    }
    out
}

/// An Ethernet header (locally administered addresses) around `payload`.
fn ethernet(tag: u8, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, tag, 0, 0, 0, 2, 0x02, tag, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ethertype_of(ip: &[u8]) -> u16 {
    match ip.first() {
        Some(b) if b >> 4 == 6 => ETH_IPV6,
        _ => ETH_IPV4,
    }
}

/// The addresses and (when not a fragment) ports of an IP packet.
pub(crate) struct Flow {
    pub src: Vec<u8>,
    pub dst: Vec<u8>,
    pub proto: u8,
    pub ports: Option<(u16, u16)>,
    /// Offset of the transport header in the packet (not a fragment).
    pub l4: Option<usize>,
}

pub(crate) fn inner_flow(ip: &[u8]) -> Option<Flow> {
    let v = ip.first()? >> 4;
    let (src, dst, proto, l4) = if v == 4 {
        let ihl = (ip.first()? & 0x0f) as usize * 4;
        let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
        let fragmented = frag & 0x3fff != 0;
        (
            ip.get(12..16)?.to_vec(),
            ip.get(16..20)?.to_vec(),
            *ip.get(9)?,
            (!fragmented).then_some(ihl),
        )
    } else if v == 6 {
        let next = *ip.get(6)?;
        (
            ip.get(8..24)?.to_vec(),
            ip.get(24..40)?.to_vec(),
            next,
            matches!(next, 6 | 17).then_some(40),
        )
    } else {
        return None;
    };
    let ports = l4
        .filter(|_| matches!(proto, 6 | 17))
        .and_then(|o| Some((be16(ip, o)?, be16(ip, o + 2)?)));
    Some(Flow {
        src,
        dst,
        proto,
        ports,
        l4: l4.filter(|_| ports.is_some()),
    })
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The UDP source port of a VXLAN or Geneve packet: a hash of the inner
/// flow in 49152..65535, as Linux (`udp_flow_src_port`) and AWS choose it
/// for ECMP. Fragments hash their addresses only.
fn flow_port(flow: Option<&Flow>) -> u16 {
    let Some(f) = flow else {
        return 49152;
    };
    let mut key = f.src.clone();
    key.extend_from_slice(&f.dst);
    key.push(f.proto);
    if let Some((s, d)) = f.ports {
        key.extend_from_slice(&s.to_be_bytes());
        key.extend_from_slice(&d.to_be_bytes());
    }
    49152 + (fnv(&key) % 16384) as u16
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The Internet checksum over the concatenation of `parts` (each of even
/// length except the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        if let [b] = chunks.remainder() {
            sum += (*b as u32) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What rewriting captures did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Wrapped {
    /// Frames read.
    pub frames: u64,
    /// Frames put in a tunnel (each one counted once, however many outer
    /// fragments or copies it became).
    pub wrapped: u64,
    /// Frames written.
    pub written: u64,
    /// Frames left out (not carriable), by the reason the plain decoder
    /// counts them under.
    pub skipped: BTreeMap<&'static str, u64>,
}

impl Wrapped {
    fn add(&mut self, o: &Wrapped) {
        self.frames += o.frames;
        self.wrapped += o.wrapped;
        self.written += o.written;
        for (k, v) in &o.skipped {
            *self.skipped.entry(k).or_default() += v;
        }
    }
}

/// Rewrites a capture into a nanosecond Ethernet pcap: `f` gets every frame
/// (with its index) and returns the frames to write in its place, or the
/// reason it was left out.
pub(crate) fn rewrite(
    input: &Path,
    output: &Path,
    mut f: impl FnMut(usize, LinkType, &[u8]) -> Result<Vec<Vec<u8>>, DropReason>,
) -> Wrapped {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut w = Wrapped::default();
    let read = pdns_sensor::source::pcap::read_file(input, |frame| {
        let i = w.frames as usize;
        w.frames += 1;
        match f(i, frame.link, frame.data) {
            Ok(frames) => {
                w.wrapped += 1;
                for data in frames {
                    w.written += 1;
                    record(&mut out, frame.ts, &data);
                }
            }
            Err(reason) => *w.skipped.entry(reason.as_str()).or_default() += 1,
        }
    });
    match read {
        Ok(_) => std::fs::write(output, out).unwrap(),
        // Not a capture at all: the plain ingest fails on it, so must this.
        Err(_) if w.frames == 0 => {
            std::fs::copy(input, output).unwrap();
        }
        Err(e) => panic!("{}: {e}", input.display()),
    }
    w
}

fn record(out: &mut Vec<u8>, ts: Timestamp, data: &[u8]) {
    out.extend_from_slice(&(ts.secs as u32).to_le_bytes());
    out.extend_from_slice(&ts.nanos.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
}

/// Rewrites one capture so that every frame travels in `tunnel`.
pub(crate) fn tunnel_pcap(input: &Path, output: &Path, tunnel: &Tunnel) -> Wrapped {
    let mut w = Wrapper::new(tunnel.clone());
    rewrite(input, output, |_, link, data| w.wrap(link, data))
}

/// Rewrites every capture of `inputs` into `dir` (same order, one output
/// per input), each frame in `tunnel`.
pub(crate) fn tunnel_pcaps(
    inputs: &[PathBuf],
    dir: &Path,
    tunnel: &Tunnel,
) -> (Vec<PathBuf>, Wrapped) {
    each(inputs, dir, |input, output| {
        tunnel_pcap(input, output, tunnel)
    })
}

/// Applies `f(input, output)` to every capture, outputs named after their
/// index in `dir`.
pub(crate) fn each(
    inputs: &[PathBuf],
    dir: &Path,
    mut f: impl FnMut(&Path, &Path) -> Wrapped,
) -> (Vec<PathBuf>, Wrapped) {
    let mut total = Wrapped::default();
    let mut outputs = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let output = dir.join(format!("{i:03}.pcap"));
        total.add(&f(input, &output));
        outputs.push(output);
    }
    (outputs, total)
}
