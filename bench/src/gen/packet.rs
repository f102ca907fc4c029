//! Ethernet / IPv4 / IPv6 / UDP / TCP framing with real checksums.
//!
//! Frames are appended straight into the pcap output buffer to avoid a copy
//! per packet; checksums are computed in place because a sensor (or tshark
//! with validation on) may reject bad ones. IPv4 fragmentation lives here
//! too, since it is purely a framing concern.

/// Link MTU for fragmentation.
pub const MTU: usize = 1500;

/// An IP address of either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ip {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub mac: [u8; 6],
    pub ip: Ip,
    pub port: u16,
}

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// TCP flag bits.
pub mod tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// Ones'-complement sum of `data` folded into `acc` (big-endian words).
#[inline]
pub fn sum16(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes(c.try_into().unwrap());
        acc += (w >> 48) + ((w >> 32) & 0xFFFF) + ((w >> 16) & 0xFFFF) + (w & 0xFFFF);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [b] = rest.remainder() {
        acc += (*b as u64) << 8;
    }
    acc
}

/// Folds and complements a running sum into a checksum field value.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

fn pseudo_sum(src: Ip, dst: Ip, proto: u8, len: usize) -> u64 {
    let mut acc = proto as u64 + len as u64;
    match (src, dst) {
        (Ip::V4(s), Ip::V4(d)) => {
            acc = sum16(acc, &s);
            acc = sum16(acc, &d);
        }
        (Ip::V6(s), Ip::V6(d)) => {
            acc = sum16(acc, &s);
            acc = sum16(acc, &d);
        }
        _ => panic!("mixed address families"),
    }
    acc
}

fn ethernet(out: &mut Vec<u8>, src: &Endpoint, dst: &Endpoint) {
    out.extend_from_slice(&dst.mac);
    out.extend_from_slice(&src.mac);
    let ethertype: u16 = match src.ip {
        Ip::V4(_) => 0x0800,
        Ip::V6(_) => 0x86DD,
    };
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// Writes an IPv4 header for `payload_len` bytes of L4 data.
fn ipv4(
    out: &mut Vec<u8>,
    s: [u8; 4],
    d: [u8; 4],
    proto: u8,
    payload_len: usize,
    id: u16,
    frag: u16,
) {
    let start = out.len();
    let total = (20 + payload_len) as u16;
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&frag.to_be_bytes());
    out.extend_from_slice(&[64, proto, 0, 0]);
    out.extend_from_slice(&s);
    out.extend_from_slice(&d);
    let c = fold(sum16(0, &out[start..start + 20]));
    out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
}

fn ipv6(out: &mut Vec<u8>, s: [u8; 16], d: [u8; 16], proto: u8, payload_len: usize) {
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(&(payload_len as u16).to_be_bytes());
    out.extend_from_slice(&[proto, 64]);
    out.extend_from_slice(&s);
    out.extend_from_slice(&d);
}

fn ip_header(
    out: &mut Vec<u8>,
    src: &Endpoint,
    dst: &Endpoint,
    proto: u8,
    l4_len: usize,
    id: u16,
    df: bool,
) {
    match (src.ip, dst.ip) {
        (Ip::V4(s), Ip::V4(d)) => ipv4(out, s, d, proto, l4_len, id, if df { 0x4000 } else { 0 }),
        (Ip::V6(s), Ip::V6(d)) => ipv6(out, s, d, proto, l4_len),
        _ => panic!("mixed address families"),
    }
}

/// Appends a UDP datagram (header + payload) with its checksum to `out`.
pub fn udp_datagram(out: &mut Vec<u8>, src: &Endpoint, dst: &Endpoint, payload: &[u8]) {
    let start = out.len();
    let len = 8 + payload.len();
    out.extend_from_slice(&src.port.to_be_bytes());
    out.extend_from_slice(&dst.port.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let acc = sum16(pseudo_sum(src.ip, dst.ip, PROTO_UDP, len), &out[start..]);
    let c = match fold(acc) {
        0 => 0xFFFF,
        c => c,
    };
    out[start + 6..start + 8].copy_from_slice(&c.to_be_bytes());
}

/// Appends a whole Ethernet frame carrying a UDP datagram.
pub fn udp_frame(out: &mut Vec<u8>, src: &Endpoint, dst: &Endpoint, ip_id: u16, payload: &[u8]) {
    ethernet(out, src, dst);
    ip_header(out, src, dst, PROTO_UDP, 8 + payload.len(), ip_id, false);
    udp_datagram(out, src, dst, payload);
}

/// TCP segment parameters.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// Include an MSS option (SYN segments).
    pub mss: Option<u16>,
}

/// Appends a whole Ethernet frame carrying a TCP segment.
pub fn tcp_frame(
    out: &mut Vec<u8>,
    src: &Endpoint,
    dst: &Endpoint,
    ip_id: u16,
    seg: Segment,
    payload: &[u8],
) {
    let hdr_len = if seg.mss.is_some() { 24 } else { 20 };
    let l4_len = hdr_len + payload.len();
    ethernet(out, src, dst);
    ip_header(out, src, dst, PROTO_TCP, l4_len, ip_id, true);
    let start = out.len();
    out.extend_from_slice(&src.port.to_be_bytes());
    out.extend_from_slice(&dst.port.to_be_bytes());
    out.extend_from_slice(&seg.seq.to_be_bytes());
    out.extend_from_slice(&seg.ack.to_be_bytes());
    out.push(((hdr_len / 4) as u8) << 4);
    out.push(seg.flags);
    out.extend_from_slice(&64240u16.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    if let Some(mss) = seg.mss {
        out.extend_from_slice(&[2, 4]);
        out.extend_from_slice(&mss.to_be_bytes());
    }
    out.extend_from_slice(payload);
    let c = fold(sum16(
        pseudo_sum(src.ip, dst.ip, PROTO_TCP, l4_len),
        &out[start..],
    ));
    out[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
}

/// Number of fragments a UDP/IPv4 datagram of `udp_len` bytes needs.
pub fn fragment_count(udp_len: usize) -> usize {
    udp_len.div_ceil(max_fragment_payload())
}

/// Largest fragment payload: MTU minus IPv4 header, rounded down to 8.
pub const fn max_fragment_payload() -> usize {
    (MTU - 20) / 8 * 8
}

/// Appends fragment `i` of the UDP datagram `datagram` (header included) as
/// an Ethernet/IPv4 frame.
pub fn ipv4_fragment_frame(
    out: &mut Vec<u8>,
    src: &Endpoint,
    dst: &Endpoint,
    ip_id: u16,
    datagram: &[u8],
    i: usize,
) {
    let (Ip::V4(s), Ip::V4(d)) = (src.ip, dst.ip) else {
        panic!("fragmentation is IPv4 only");
    };
    let step = max_fragment_payload();
    let off = i * step;
    let end = (off + step).min(datagram.len());
    let more = end < datagram.len();
    let frag = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
    ethernet(out, src, dst);
    ipv4(out, s, d, PROTO_UDP, end - off, ip_id, frag);
    out.extend_from_slice(&datagram[off..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(last: u8, port: u16) -> Endpoint {
        Endpoint {
            mac: [2, 0, 0, 0, 0, last],
            ip: Ip::V4([10, 0, 0, last]),
            port,
        }
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let mut out = Vec::new();
        udp_frame(&mut out, &ep(1, 5000), &ep(2, 53), 7, b"hello");
        assert_eq!(fold(sum16(0, &out[14..34])), 0);
        // UDP checksum verifies over pseudo header + datagram.
        let udp = &out[34..];
        let acc = sum16(
            pseudo_sum(
                Ip::V4([10, 0, 0, 1]),
                Ip::V4([10, 0, 0, 2]),
                PROTO_UDP,
                udp.len(),
            ),
            udp,
        );
        assert_eq!(fold(acc), 0);
    }

    #[test]
    fn odd_length_sum() {
        assert_eq!(sum16(0, &[1, 2, 3]), 0x0102 + 0x0300);
        assert_eq!(sum16(0, &[0xFF; 9]), 4 * 0xFFFF + 0xFF00);
    }

    #[test]
    fn fragments_reassemble() {
        let payload: Vec<u8> = (0..3500u32).map(|i| (i * 7) as u8).collect();
        let (src, dst) = (ep(2, 53), ep(1, 4000));
        let mut datagram = Vec::new();
        udp_datagram(&mut datagram, &src, &dst, &payload);
        let n = fragment_count(datagram.len());
        assert_eq!(n, 3);
        let mut rebuilt = vec![0u8; 0];
        let mut last_seen = false;
        for i in 0..n {
            let mut f = Vec::new();
            ipv4_fragment_frame(&mut f, &src, &dst, 99, &datagram, i);
            assert!(f.len() <= 14 + MTU);
            let ip = &f[14..];
            assert_eq!(fold(sum16(0, &ip[..20])), 0);
            assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 99);
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            assert_eq!(total, ip.len());
            let ff = u16::from_be_bytes([ip[6], ip[7]]);
            let off = (ff & 0x1FFF) as usize * 8;
            let mf = ff & 0x2000 != 0;
            assert_eq!(mf, i + 1 < n);
            assert_eq!(off, rebuilt.len());
            last_seen |= !mf;
            rebuilt.extend_from_slice(&ip[20..]);
        }
        assert!(last_seen);
        assert_eq!(rebuilt, datagram);
        assert_eq!(&rebuilt[8..], &payload[..]);
    }
}
