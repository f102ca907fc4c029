//! Minimal classic-pcap reading and writing for the live tests: patching
//! MAC addresses (`tcprewrite --enet-dmac` gives the frames to ::1 the
//! multicast address 33:33:00:00:00:01, which the receiver then classes as
//! `PACKET_MULTICAST`), adding an outer QinQ tag, and generating
//! deterministic DNS traffic with many flows.

use std::io::Write;
use std::path::Path;

/// One packet: capture time (µs) and bytes.
#[derive(Clone, Debug)]
pub(crate) struct Packet {
    pub ts_usec: u64,
    pub data: Vec<u8>,
}

/// Reads an Ethernet classic pcap (either byte order, µs or ns).
pub(crate) fn read(path: &Path) -> Vec<Packet> {
    let b = std::fs::read(path).unwrap();
    let magic = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let (le, nanos) = match magic {
        0xa1b2c3d4 => (true, false),
        0xa1b23c4d => (true, true),
        0xd4c3b2a1 => (false, false),
        0x4d3cb2a1 => (false, true),
        m => panic!("{}: not a classic pcap (magic {m:#x})", path.display()),
    };
    let u32_at = |o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert_eq!(u32_at(20), 1, "{}: not Ethernet", path.display());
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let (sec, frac, caplen) = (
            u32_at(o) as u64,
            u32_at(o + 4) as u64,
            u32_at(o + 8) as usize,
        );
        o += 16;
        if o + caplen > b.len() {
            break;
        }
        let usec = if nanos { frac / 1000 } else { frac };
        out.push(Packet {
            ts_usec: sec * 1_000_000 + usec,
            data: b[o..o + caplen].to_vec(),
        });
        o += caplen;
    }
    out
}

/// Writes an Ethernet classic pcap (µs, little endian).
pub(crate) fn write(path: &Path, packets: &[Packet]) {
    let mut w = Writer::create(path);
    for p in packets {
        w.frame(p.ts_usec, &p.data);
    }
}

/// An Ethernet classic pcap (µs, little endian) written frame by frame,
/// for captures too big to hold in memory first.
pub(crate) struct Writer(std::io::BufWriter<std::fs::File>);

impl Writer {
    pub(crate) fn create(path: &Path) -> Writer {
        let mut b = 0xa1b2c3d4u32.to_le_bytes().to_vec();
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        w.write_all(&b).unwrap();
        Writer(w)
    }

    pub(crate) fn frame(&mut self, ts_usec: u64, data: &[u8]) {
        let mut h = Vec::with_capacity(16);
        h.extend_from_slice(&((ts_usec / 1_000_000) as u32).to_le_bytes());
        h.extend_from_slice(&((ts_usec % 1_000_000) as u32).to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.0.write_all(&h).unwrap();
        self.0.write_all(data).unwrap();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.0.flush().unwrap();
    }
}

/// Rewrites every frame's MAC addresses so the receiving veth sees unicast
/// frames addressed to it (PACKET_HOST).
pub(crate) fn patch_macs(packets: &mut [Packet], src: [u8; 6], dst: [u8; 6]) {
    for p in packets {
        p.data[0..6].copy_from_slice(&dst);
        p.data[6..12].copy_from_slice(&src);
    }
}

/// Inserts an outer 802.1ad (0x88a8) tag with `vid` after the MACs: a
/// single-tagged frame becomes QinQ.
pub(crate) fn add_outer_tag(packets: &mut [Packet], vid: u16) {
    for p in packets {
        let mut tag = vec![0x88, 0xa8];
        tag.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
        p.data.splice(12..12, tag);
    }
}

/// The Internet checksum (RFC 1071) of `b`.
pub(crate) fn checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            (c[0] as u16) << 8
        };
        sum += w as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet/IPv4/UDP frame (UDP checksum 0: "none", valid for IPv4).
pub(crate) fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = 20 + 8 + payload.len();
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// The wire form of `name` (uncompressed labels, case kept).
pub(crate) fn qname(name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q
}

/// A DNS query for `name` A.
pub(crate) fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(&qname(name));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

/// A DNS response: `name` A `addr`, TTL 300.
pub(crate) fn dns_response(id: u16, name: &str, addr: [u8; 4]) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    m.extend_from_slice(&qname(name));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4]);
    m.extend_from_slice(&addr);
    m
}

/// Deterministic resolver traffic: `pairs` query/response pairs between
/// clients 192.0.2.2–254 (varying ports, so the fanout hash spreads them)
/// and a server at 192.0.2.1, asking for `names` distinct names
/// `nK.example.test`, each always answered with 192.0.2.(K % 250 + 1).
/// Every 10th pair is followed by a non-DNS datagram (UDP 5353).
/// Returns the packets and the expected `(name, count)` of the responses.
pub(crate) fn dns_traffic(pairs: usize, names: usize) -> (Vec<Packet>, Vec<(String, u64)>) {
    let mut packets = Vec::with_capacity(pairs * 2 + pairs / 10);
    let mut counts = vec![0u64; names.min(pairs)];
    let server = [192, 0, 2, 1];
    for i in 0..pairs {
        let k = i % names;
        let name = format!("n{k}.example.test");
        let client = [192, 0, 2, (2 + i % 253) as u8];
        let port = 1024 + (i * 7 % 60000) as u16;
        let id = (i & 0xffff) as u16;
        let ts = 1_700_000_000_000_000 + i as u64 * 10;
        packets.push(Packet {
            ts_usec: ts,
            data: udp4(client, server, port, 53, &dns_query(id, &name)),
        });
        packets.push(Packet {
            ts_usec: ts + 5,
            data: udp4(
                server,
                client,
                53,
                port,
                &dns_response(id, &name, [192, 0, 2, (k % 250 + 1) as u8]),
            ),
        });
        if i % 10 == 9 {
            packets.push(Packet {
                ts_usec: ts + 7,
                data: udp4(client, server, 5353, 5353, b"not dns at all"),
            });
        }
        counts[k] += 1;
    }
    let expected = counts
        .into_iter()
        .enumerate()
        .map(|(k, n)| (format!("n{k}.example.test."), n))
        .collect();
    (packets, expected)
}

/// Reads a LINKTYPE_IPV4 (228) or RAW (101) classic pcap as Ethernet
/// frames (zero MACs, to be patched; EtherType IPv4).
pub(crate) fn raw_ipv4_as_ethernet(b: &[u8]) -> Vec<Packet> {
    let le = u32::from_le_bytes(b[0..4].try_into().unwrap()) == 0xa1b2c3d4;
    let u32_at = |o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert!(
        matches!(u32_at(20), 228 | 101 | 12 | 14),
        "link type {}",
        u32_at(20)
    );
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let (sec, usec, caplen) = (
            u32_at(o) as u64,
            u32_at(o + 4) as u64,
            u32_at(o + 8) as usize,
        );
        o += 16;
        let mut data = vec![0u8; 12];
        data.extend_from_slice(&[0x08, 0x00]);
        data.extend_from_slice(&b[o..o + caplen]);
        out.push(Packet {
            ts_usec: sec * 1_000_000 + usec,
            data,
        });
        o += caplen;
    }
    out
}
