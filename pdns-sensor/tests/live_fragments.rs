//! IP fragments on the live path. IPv4: the fanout group's
//! `PACKET_FANOUT_FLAG_DEFRAG` makes the kernel reassemble datagrams before
//! the filter sees them. IPv6 (not reassembled by the kernel): the filter
//! keeps non-first fragments, which carry no ports, and userspace
//! reassembles them. Either way the records equal the file decoder's.

mod live_support;

use live_support::*;

fn replay(tag: &str, packets: &mut [pcap::Packet]) -> (Stopped, tempfile::TempDir) {
    require(&["ip", "tcpreplay"]);
    let dir = tempfile::tempdir().unwrap();
    let link = Link::new(tag, false);
    pcap::patch_macs(packets, link.mac_a(), link.mac_b());
    let file = dir.path().join("replay.pcap");
    pcap::write(&file, packets);
    let sensor = Sensor::start(&link.b, &["-i", link.if_b, "--threads", "2"]);
    link.replay(&file, 1);
    (sensor.stop(), dir)
}

#[test]
fn ipv6_non_first_fragments_are_kept_and_reassembled() {
    let original = capture("zeek/ipv6-fragmented-dns.pcap");
    let mut packets = pcap::read(&original);
    let (stopped, _dir) = replay("f6", &mut packets);
    let s = &stopped.stats;
    let later = tcpdump_count(&original, "ip6[6] == 44 and (ip6[42:2] & 0xfff8) != 0");
    assert!(later > 0);
    assert_eq!(
        num(s, &["filter_stats", "accepted_fragments"]),
        later,
        "{s:#}"
    );
    let (_d, reference) = ingest(&[&original]);
    let expected = counts(&dump(&reference));
    assert!(expected.keys().any(|k| k.1 == "TXT"), "{expected:?}");
    assert_eq!(counts(&dump(&stopped.db)), expected, "{}", stopped.stderr);
}

#[test]
fn ipv4_fragments_are_reassembled_by_the_kernel() {
    // frags.pcap is raw IPv4: give every packet an Ethernet header.
    let original = capture("dnscap/frags.pcap");
    let raw = std::fs::read(&original).unwrap();
    let mut packets = raw_ipv4_packets(&raw);
    assert!(!packets.is_empty());
    let (stopped, _dir) = replay("f4", &mut packets);
    let s = &stopped.stats;
    let (_d, reference) = ingest(&[&original]);
    let expected = counts(&dump(&reference));
    assert!(!expected.is_empty());
    assert_eq!(counts(&dump(&stopped.db)), expected, "{}", stopped.stderr);
    // Reassembled before the filter: it saw whole datagrams only.
    assert_eq!(num(s, &["filter_stats", "accepted_fragments"]), 0, "{s:#}");
    assert!(
        num(s, &["filter_stats", "accepted"]) < packets.len() as u64,
        "{s:#}"
    );
}

/// Reads a LINKTYPE_IPV4 (228) or RAW (101) classic pcap as Ethernet frames.
fn raw_ipv4_packets(b: &[u8]) -> Vec<pcap::Packet> {
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
        out.push(pcap::Packet {
            ts_usec: sec * 1_000_000 + usec,
            data,
        });
        o += caplen;
    }
    out
}
