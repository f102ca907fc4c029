//! SIGTERM under load loses nothing: every response that reached the ring
//! before the signal is in the store afterwards.
//!
//! The flush interval is set far beyond the test, so every observation
//! still sits in the workers' pre-aggregation maps (and the last frames in
//! a not yet retired ring block) when SIGTERM arrives right after
//! tcpreplay's last packet. Only the shutdown path — drain the rings, flush
//! every worker, flush and close the database — can get them into the
//! store.

mod live_support;

use live_support::*;

#[test]
fn sigterm_right_after_the_last_packet_loses_nothing() {
    require(&["ip", "tcpreplay"]);
    let dir = tempfile::tempdir().unwrap();
    let link = Link::new("term", false);
    let pairs = 100_000;
    let (mut packets, expected) = pcap::dns_traffic(pairs, 5_000);
    pcap::patch_macs(&mut packets, link.mac_a(), link.mac_b());
    let file = dir.path().join("replay.pcap");
    pcap::write(&file, &packets);

    let sensor = Sensor::start(
        &link.b,
        &[
            "-i",
            link.if_b,
            "--threads",
            "2",
            "--flush-interval",
            "3600",
            "--ring-timeout-ms",
            "1000",
        ],
    );
    link.replay(&file, 1);
    let stopped = sensor.stop();
    let s = &stopped.stats;
    assert_eq!(num(&s["interfaces"][link.if_b], &["drops"]), 0, "{s:#}");
    assert_eq!(num(s, &["dns_responses"]), pairs as u64, "{s:#}");
    let stored = counts(&dump(&stopped.db));
    assert_eq!(stored.len(), expected.len());
    for (name, n) in &expected {
        let k: usize = name[1..].split('.').next().unwrap().parse().unwrap();
        let key = (
            name.clone(),
            "A".to_string(),
            format!("192.0.2.{}", k % 250 + 1),
        );
        assert_eq!(stored.get(&key), Some(n), "{name}");
    }
    assert_eq!(stored.values().sum::<u64>(), pairs as u64);
}
