//! Fanout: with several rings (threads) on one interface, the totals equal
//! a single-ring run on the same replayed traffic.
//!
//! The traffic is generated resolver traffic (many clients and ports, so
//! the kernel's flow hash spreads it) plus real DNS-over-TCP and IPv6
//! captures from `testdata/pcap`: TCP reassembly only works if every
//! segment of a stream and both directions reach the same ring, which is
//! what the symmetric `PACKET_FANOUT_HASH` promises.

mod live_support;

use live_support::*;

#[test]
fn two_rings_give_the_same_totals_as_one() {
    require(&["ip", "tcpreplay"]);
    let dir = tempfile::tempdir().unwrap();
    let (mut packets, expected) = pcap::dns_traffic(20_000, 500);
    for extra in [
        "dnscap/dnso1tcp.pcap",
        "dnscap/dns.pcap",
        "dnscap/dns6.pcap",
    ] {
        packets.extend(pcap::read(&capture(extra)));
    }
    let file = dir.path().join("replay.pcap");
    pcap::write(&file, &packets);
    let (_ref_dir, reference) = ingest(&[&file]);
    let reference = counts(&dump(&reference));
    for (name, n) in &expected {
        let k = name
            .trim_start_matches('n')
            .split('.')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap();
        let rdata = format!("192.0.2.{}", k % 250 + 1);
        assert_eq!(reference[&(name.clone(), "A".to_string(), rdata)], *n);
    }

    let mut runs = Vec::new();
    for threads in ["1", "2"] {
        let link = Link::new(&format!("fo{threads}"), false);
        let mut patched = packets.clone();
        pcap::patch_macs(&mut patched, link.mac_a(), link.mac_b());
        let file = dir.path().join(format!("replay-{threads}.pcap"));
        pcap::write(&file, &patched);
        let sensor = Sensor::start(&link.b, &["-i", link.if_b, "--threads", threads]);
        link.replay(&file, 1);
        let stopped = sensor.stop();
        let s = stopped.stats.clone();
        let iface = &s["interfaces"][link.if_b];
        assert_eq!(num(iface, &["drops"]), 0, "{s:#}");
        let rings = s["rings"].as_array().unwrap();
        assert_eq!(rings.len(), threads.parse::<usize>().unwrap());
        // Every ring got a share.
        for r in rings {
            assert!(num(r, &["frames"]) > 1000, "{s:#}");
        }
        runs.push((counts(&dump(&stopped.db)), s));
    }
    let (one, s1) = &runs[0];
    let (two, s2) = &runs[1];
    assert_eq!(one, &reference, "one ring vs ingest");
    assert_eq!(two, one, "two rings vs one");
    for key in ["packets", "dns_responses", "dns_queries", "observations"] {
        assert_eq!(num(s1, &[key]), num(s2, &[key]), "{key}");
    }
    // Every DNS frame of the replay (and nothing else) was read.
    let non_dns = 20_000 / 10;
    let generated_dns = 40_000;
    assert!(num(s1, &["packets"]) >= generated_dns as u64);
    assert_eq!(
        num(s1, &["filter_stats", "rejected_port"]),
        non_dns,
        "{s1:#}"
    );
    assert_eq!(
        num(s1, &["drops", "tcp_gap"]),
        num(s2, &["drops", "tcp_gap"])
    );
}
