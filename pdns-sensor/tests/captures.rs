//! Exact records from specific real captures, one per decoding feature the
//! spec names: DNS over TCP (several messages per segment, messages across
//! segments), IPv4 and IPv6 fragments, 802.1Q and QinQ, Linux SLL2, and
//! hostile compression. Expected values were read off the captures with
//! tshark, independently of our decoder.

mod common;

use pdns_sensor::extract::DropReason;

fn lines(files: &[&str]) -> (common::Ingested, Vec<common::Line>) {
    let paths: Vec<_> = files.iter().map(|f| common::pcap(f)).collect();
    let ingested = common::ingest(&paths);
    let records = common::all_records(&ingested.store());
    (ingested, records)
}

fn line(
    name: &str,
    rtype: &str,
    data: &str,
    count: u64,
    ttl: u32,
    first: u64,
    last: u64,
) -> common::Line {
    (
        name.into(),
        rtype.into(),
        data.into(),
        count,
        ttl,
        first,
        last,
    )
}

#[test]
fn tcp_many_messages_in_one_stream() {
    // 41 lookups over one TCP connection (dnscap's dnso1tcp): 24 A
    // responses for google.com and 17 PTR responses with two names each.
    let (_, got) = lines(&["dnscap/dnso1tcp.pcap"]);
    assert_eq!(
        got,
        vec![
            line(
                "206.218.58.216.in-addr.arpa.",
                "PTR",
                "dfw06s47-in-f14.1e100.net.",
                17,
                21597,
                1515583361,
                1515583363
            ),
            line(
                "206.218.58.216.in-addr.arpa.",
                "PTR",
                "dfw06s47-in-f206.1e100.net.",
                17,
                21597,
                1515583361,
                1515583363
            ),
            line(
                "google.com.",
                "A",
                "216.58.211.142",
                24,
                56,
                1515583361,
                1515583363
            ),
        ]
    );
}

#[test]
fn tcp_several_messages_in_one_segment() {
    let (ingested, got) = lines(&["dnscap/dnsotcp-many1pkt.pcap"]);
    assert_eq!(
        got,
        vec![line(
            "google.com.",
            "A",
            "172.217.22.174",
            1,
            47,
            1513000744,
            1513000744
        )]
    );
    assert_eq!(ingested.report.summary.extract.tcp_responses, 1);
}

#[test]
fn tcp_answer_spanning_many_segments() {
    // A 2048-record answer retried over TCP after a TC=1 UDP answer.
    let (ingested, got) = lines(&["go-dnscollector/dnsdump_udp_truncated+tcp_fragmented.pcap"]);
    assert_eq!(got.len(), 2048);
    assert!(
        got.iter()
            .all(|l| l.0 == "2048-a.size.dns.netmeister.org." && l.1 == "A" && l.3 == 1)
    );
    assert!(got.iter().any(|l| l.2 == "127.0.7.255"));
    // The truncated UDP answer is not a negative answer.
    assert!(common::negatives(&ingested.store()).is_empty());
}

#[test]
fn ipv4_fragments_are_reassembled() {
    // dnscap's frags.pcap: the dns.pcap lookups with every packet
    // fragmented, raw IPv4 link type.
    let (ingested, got) = lines(&["dnscap/frags.pcap"]);
    assert_eq!(
        got,
        vec![
            line(
                "206.218.58.216.in-addr.arpa.",
                "PTR",
                "dfw06s47-in-f14.1e100.net.",
                17,
                72125,
                1506965422,
                1506965422
            ),
            line(
                "206.218.58.216.in-addr.arpa.",
                "PTR",
                "dfw06s47-in-f206.1e100.net.",
                17,
                72125,
                1506965422,
                1506965422
            ),
            line(
                "google.com.",
                "A",
                "216.58.218.206",
                24,
                297,
                1506965422,
                1506965422
            ),
        ]
    );
    assert_eq!(ingested.report.summary.decode.reassembled_datagrams, 82);
}

#[test]
fn large_ipv4_and_ipv6_answers_are_reassembled() {
    let (_, v4) = lines(&["go-dnscollector/dnsdump_ip4_fragmented+udp.pcap"]);
    let types: Vec<(&str, &str)> = v4.iter().map(|l| (l.0.as_str(), l.1.as_str())).collect();
    assert_eq!(
        types,
        vec![
            ("weberlab.de.", "DNSKEY"),
            ("weberlab.de.", "DNSKEY"),
            ("weberlab.de.", "RRSIG"),
            ("weberlab.de.", "RRSIG")
        ]
    );
    assert!(v4.iter().any(|l| {
        l.2.starts_with("257 3 10 AwEAAd3v/e0irXYKOwtYEB3VPe7z99qvi5le9")
    }));

    let (_, v6) = lines(&["go-dnscollector/dnsdump_ip6_fragmented+udp.pcap"]);
    assert_eq!(v6.len(), 2);
    assert_eq!(v6[0].1, "AAAA");
    assert_eq!(v6[0].2, "2001:470:1f0b:1024::2");
    assert!(
        v6[1]
            .2
            .starts_with("AAAA 10 3 60 20190616150220 20190517140220 36935 weberlab.de. ")
    );
}

#[test]
fn vlan_tagged_frames_decode_like_untagged_ones() {
    // vlan11.pcap is dns.pcap with an 802.1Q tag: same records, same times.
    let (_, tagged) = lines(&["dnscap/vlan11.pcap"]);
    let (_, plain) = lines(&["dnscap/dns.pcap"]);
    assert_eq!(tagged.len(), 3);
    assert_eq!(tagged, plain);
}

#[test]
fn qinq_frames_decode_like_single_tagged_ones() {
    // Add an outer 802.1ad tag (VLAN 200) to every frame of vlan11.pcap.
    let dir = tempfile::tempdir().unwrap();
    let qinq = dir.path().join("qinq.pcap");
    common::rewrite_pcap(&common::pcap("dnscap/vlan11.pcap"), &qinq, |frame| {
        let mut out = frame[..12].to_vec();
        out.extend_from_slice(&[0x88, 0xa8, 0x00, 0xc8]);
        out.extend_from_slice(&frame[12..]);
        out
    });
    let ingested = common::ingest(&[qinq]);
    let (_, single) = lines(&["dnscap/vlan11.pcap"]);
    assert_eq!(common::all_records(&ingested.store()), single);
}

#[test]
fn linux_sll2_nxdomain_for_the_root_zone() {
    // dnscap's sll2.pcap: a query for the one-label name ",." answered
    // NXDOMAIN by a root server, with NSEC, RRSIG and ZONEMD in authority.
    let paths = [common::pcap("dnscap/sll2.pcap")];
    let plain = common::ingest(&paths);
    assert!(common::all_records(&plain.store()).is_empty());
    assert_eq!(
        common::negatives(&plain.store()),
        vec![(
            ",\\..".to_string(),
            "A".to_string(),
            "NXDOMAIN".to_string(),
            1
        )]
    );
    let with_authority = common::ingest_with(&paths, |a| {
        a.pipeline.sections = "answer,authority".parse().unwrap()
    });
    let types: Vec<String> = common::all_records(&with_authority.store())
        .into_iter()
        .map(|l| l.1)
        .collect();
    for t in ["SOA", "RRSIG", "NSEC"] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
}

#[test]
fn compression_loops_are_counted_not_followed() {
    for f in [
        "tcpdump/dns-zlip-1.pcap",
        "tcpdump/dns-zlip-2.pcap",
        "tcpdump/dns-zlip-3.pcap",
    ] {
        let (ingested, got) = lines(&[f]);
        assert!(got.is_empty(), "{f}: {got:?}");
        assert_eq!(
            ingested
                .report
                .summary
                .extract
                .dropped(DropReason::DnsMalformed),
            1,
            "{f}"
        );
    }
    // Fuzzed responses with forward pointers and bogus labels also carry a
    // non-QUERY opcode: nothing is stored and the reason is counted.
    for f in ["tcpdump/dns_fwdptr.pcap", "tcpdump/dns-badlabel.pcap"] {
        let (ingested, got) = lines(&[f]);
        assert!(got.is_empty(), "{f}: {got:?}");
        let d = &ingested.report.summary.extract;
        assert_eq!(
            d.dropped(DropReason::DnsMalformed) + d.dropped(DropReason::DnsOpcodeIgnored),
            1,
            "{f}"
        );
    }
}

#[test]
fn case_randomised_names_land_on_one_record() {
    // dns.pcap with the case of every letter of the question name flipped,
    // as a 0x20-randomising resolver sends it and the server echoes it;
    // answers point at the question name by compression, so their owners
    // carry the mixed case too. Same records, owners stored lowercase.
    let dir = tempfile::tempdir().unwrap();
    let mixed = dir.path().join("mixed-case.pcap");
    common::rewrite_pcap(&common::pcap("dnscap/dns.pcap"), &mixed, |frame| {
        let mut out = frame.to_vec();
        // Ethernet (14) + IPv4 (20) + UDP (8) + DNS header (12).
        if out.len() > 54 && out[23] == 17 {
            let end = 54 + out[54..].iter().position(|&b| b == 0).unwrap();
            for b in &mut out[54..end] {
                if b.is_ascii_alphabetic() {
                    *b ^= 0x20;
                }
            }
        }
        out
    });
    let flipped = common::all_records(&common::ingest(&[mixed]).store());
    let (_, plain) = lines(&["dnscap/dns.pcap"]);
    let key = |l: &common::Line| (l.0.clone(), l.1.clone(), l.2.clone(), l.3);
    assert_eq!(
        flipped.iter().map(key).collect::<Vec<_>>(),
        plain.iter().map(key).collect::<Vec<_>>()
    );
    assert!(flipped.iter().any(|l| l.2 == "dfw06s47-in-f14.1e100.net."));
}

#[test]
fn cname_chains_are_stored_hop_by_hop() {
    // pcapng with two interfaces: www.apple.com resolves through three
    // CNAMEs, each stored under its own owner.
    let (_, got) = lines(&["zeek/pcapng-multi-interface.pcapng"]);
    let hop = |owner: &str, target: &str| {
        got.iter()
            .any(|l| l.0 == owner && l.1 == "CNAME" && l.2 == target)
    };
    assert!(hop("www.apple.com.", "www-apple-com.v.aaplimg.com."));
    assert!(hop(
        "www-apple-com.v.aaplimg.com.",
        "www.apple.com.edgekey.net."
    ));
    assert!(hop(
        "www.apple.com.edgekey.net.",
        "e6858.dsce9.akamaiedge.net."
    ));
    assert!(
        got.iter()
            .any(|l| l.0 == "e6858.dsce9.akamaiedge.net." && l.1 == "A" && l.2 == "23.194.101.24")
    );
    // Capture times come from the pcapng interface resolution, not the clock.
    assert!(
        got.iter()
            .all(|l| (1_767_663_000..1_767_664_000).contains(&l.5))
    );
}
