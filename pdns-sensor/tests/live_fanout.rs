//! Fanout: with several rings (threads) on one interface, the totals equal
//! a single-ring run on the same replayed traffic, and the eBPF fanout
//! program sends every datagram about one name to one ring.
//!
//! The traffic of the first test is generated resolver traffic (many
//! clients and names, so the fanout spreads it) plus real DNS-over-TCP and
//! IPv6 captures from `testdata/pcap`: TCP reassembly only works if every
//! segment of a stream and both directions reach the same ring, which the
//! fanout program's symmetric hash of the addresses promises for TCP.

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

/// The ring of `rings` the fanout program sends a question for `wire`
/// (the name as sent) to: the hash it calls
/// (`pdns_common::fanout::question_name_hash`), over what it copies from
/// the message (the counts and the question, 72 bytes of it).
fn ring_of_name(wire: &[u8], rings: u32) -> u32 {
    let mut message = vec![0, 1, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(wire);
    message.extend_from_slice(&[0, 1, 0, 1]);
    message.resize(72, 0);
    let window: &[u8; 72] = message[..].try_into().unwrap();
    pdns_common::fanout::question_name_hash(window).expect("the names fit the window") % rings
}

/// Every query and response for one name reaches one ring, whichever
/// client asked and whatever the case of its letters (DNS 0x20): each
/// ring reads exactly the frames of the names the fanout program's hash
/// gives it, and the store counts every response once. Dispatched by
/// addresses, the same traffic would have spread each name over both
/// rings (checked below, so the test tells the two apart).
#[test]
fn datagrams_of_one_name_reach_one_ring() {
    require(&["ip", "tcpreplay"]);
    const CLIENTS: u8 = 6;
    let server = [198, 51, 100, 1];
    let names: Vec<String> = (0..24)
        .map(|i| format!("host{i}.fanout-{}.example.test", i * 7))
        .collect();
    let mut packets = Vec::new();
    let mut by_name = [0u64; 2];
    let mut by_addresses = [0u64; 2];
    let mut ts = 1_700_000_000_000_000u64;
    for (i, name) in names.iter().enumerate() {
        let ring = ring_of_name(&pcap::qname(name), 2) as usize;
        for c in 0..CLIENTS {
            let client = [198, 51, 100, 10 + c];
            // A different case for every client, as 0x20 randomises it.
            let asked: String = name
                .chars()
                .enumerate()
                .map(|(k, ch)| {
                    if (k + usize::from(c)) % 3 == 0 {
                        ch.to_ascii_uppercase()
                    } else {
                        ch
                    }
                })
                .collect();
            assert_eq!(ring_of_name(&pcap::qname(&asked), 2) as usize, ring);
            let port = 2000 + u16::from(c) * 97 + i as u16;
            let id = (i * 16 + usize::from(c)) as u16;
            let addr = [192, 0, 2, i as u8 + 1];
            packets.push(pcap::Packet {
                ts_usec: ts,
                data: pcap::udp4(client, server, port, 53, &pcap::dns_query(id, &asked)),
            });
            packets.push(pcap::Packet {
                ts_usec: ts + 5,
                data: pcap::udp4(
                    server,
                    client,
                    53,
                    port,
                    &pcap::dns_response(id, &asked, addr),
                ),
            });
            ts += 10;
            by_name[ring] += 2;
            by_addresses[ring_of_addresses(client, server, 2) as usize] += 2;
        }
    }
    assert!(by_name.iter().all(|&n| n > 0), "{by_name:?}");
    let link = Link::new("fq", false);
    pcap::patch_macs(&mut packets, link.mac_a(), link.mac_b());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("names.pcap");
    pcap::write(&file, &packets);
    let sensor = Sensor::start(&link.b, &["-i", link.if_b, "--threads", "2"]);
    link.replay(&file, 1);
    let stopped = sensor.stop();
    let st = &stopped.stats;
    assert!(stopped.stderr.contains("eBPF fanout"), "{}", stopped.stderr);
    let rings = st["rings"].as_array().unwrap();
    assert_eq!(rings.len(), 2);
    let frames: Vec<u64> = rings.iter().map(|r| num(r, &["frames"])).collect();
    assert_eq!(frames, by_name, "{st:#}");
    // Dispatch by addresses would have read other counts per ring: the
    // assertion above tells the two apart.
    assert_ne!(by_addresses, by_name);
    let stored = counts(&dump(&stopped.db));
    for (i, name) in names.iter().enumerate() {
        let key = (
            format!("{name}."),
            "A".to_string(),
            format!("192.0.2.{}", i + 1),
        );
        assert_eq!(stored.get(&key), Some(&u64::from(CLIENTS)), "{key:?}");
    }
    assert_eq!(stored.len(), names.len(), "{stored:?}");
}
