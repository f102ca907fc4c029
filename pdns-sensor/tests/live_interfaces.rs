//! Several interfaces in one process: `--interface` twice, each with its
//! own fanout group of rings, all feeding one database.

mod live_support;

use std::process::Command;
use std::time::Duration;

use live_support::*;

#[test]
fn two_interfaces_into_one_database() {
    require(&["ip", "tcpreplay"]);
    let dir = tempfile::tempdir().unwrap();
    let rx = Netns::new("mrx");
    let senders = [Netns::new("mtx1"), Netns::new("mtx2")];
    for ns in senders.iter().chain([&rx]) {
        ns.sysctl("net.ipv6.conf.all.disable_ipv6=1");
        ns.sysctl("net.ipv6.conf.default.disable_ipv6=1");
    }
    let captures = [
        capture("dnscap/vlan11.pcap"),
        capture("dnscap/dnso1tcp.pcap"),
    ];
    let mut files = Vec::new();
    for (i, tx) in senders.iter().enumerate() {
        let peer = format!("veth-{}", i + 1);
        run(
            Command::new("ip").args([
                "link", "add", "veth-a", "netns", &tx.name, "type", "veth", "peer", "name", &peer,
                "netns", &rx.name,
            ]),
            Duration::from_secs(10),
        );
        tx.run(&[
            "ip",
            "link",
            "set",
            "veth-a",
            "address",
            "02:00:00:00:01:0a",
            "up",
        ]);
        let mac = format!("02:00:00:00:0{}:0b", i + 2);
        rx.run(&["ip", "link", "set", &peer, "address", &mac, "up"]);
        let mut packets = pcap::read(&captures[i]);
        pcap::patch_macs(
            &mut packets,
            [2, 0, 0, 0, 1, 0x0a],
            [2, 0, 0, 0, i as u8 + 2, 0x0b],
        );
        let file = dir.path().join(format!("replay-{i}.pcap"));
        pcap::write(&file, &packets);
        files.push(file);
    }

    let sensor = Sensor::start(&rx, &["-i", "veth-1", "-i", "veth-2", "--threads", "2"]);
    for (tx, file) in senders.iter().zip(&files) {
        run(
            tx.cmd("tcpreplay")
                .args(["-K", "--topspeed", "-i", "veth-a", file.to_str().unwrap()]),
            Duration::from_secs(60),
        );
    }
    let stopped = sensor.stop();
    let s = &stopped.stats;
    assert_eq!(s["rings"].as_array().unwrap().len(), 4, "{s:#}");
    for iface in ["veth-1", "veth-2"] {
        assert!(num(&s["interfaces"][iface], &["frames"]) > 0, "{s:#}");
        assert_eq!(num(&s["interfaces"][iface], &["drops"]), 0, "{s:#}");
    }
    // Only the first capture is VLAN-tagged.
    assert!(num(&s["interfaces"]["veth-1"], &["vlan_tagged"]) > 0);
    assert_eq!(num(&s["interfaces"]["veth-2"], &["vlan_tagged"]), 0);
    let (_d, reference) = ingest(&[&captures[0], &captures[1]]);
    assert_eq!(
        counts(&dump(&stopped.db)),
        counts(&dump(&reference)),
        "{}",
        stopped.stderr
    );
}
