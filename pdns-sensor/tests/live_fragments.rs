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
    let mut packets = pcap::raw_ipv4_as_ethernet(&raw);
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
