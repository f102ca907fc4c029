//! Hostile input: frames from real captures, mutated at random (bit flips,
//! truncation, garbage splices), go through decode → extract → aggregate,
//! and every record that comes out is rendered. Nothing may panic, and the
//! decoder's tables stay within their bounds.

mod common;

use pdns_sensor::aggregate::Aggregator;
use pdns_sensor::decode::{DecodeConfig, Decoder};
use pdns_sensor::extract::{ExtractStats, Extractor, Sections};
use pdns_sensor::vocab::key;
use pdns_sensor::vocab::packet::{Frame, LinkType, Timestamp};
use pdns_sensor::vocab::value::Origin;
use proptest::prelude::*;

fn frames() -> Vec<(LinkType, Vec<u8>)> {
    let mut out = Vec::new();
    for f in [
        "dnscap/dns.pcap",
        "dnscap/dnso1tcp.pcap",
        "dnscap/frags.pcap",
        "zeek/dns-edns-ecs.pcap",
        "zeek/dnssec/rrsig.pcap",
        "zeek/dns/ech.pcap",
        "go-dnscollector/dnsdump_ip6_fragmented+udp.pcap",
        "tcpdump/dnssec.pcap",
    ] {
        pdns_sensor::source::pcap::read_file(&common::pcap(f), |frame| {
            out.push((frame.link, frame.data.to_vec()))
        })
        .unwrap();
    }
    out
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Truncate { at: usize },
    Splice { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..40)
        )
            .prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    if frame.is_empty() {
        return;
    }
    match m {
        Mutation::Flip { at, bit } => {
            let i = at % frame.len();
            frame[i] ^= 1 << bit;
        }
        Mutation::Truncate { at } => frame.truncate(at % frame.len()),
        Mutation::Splice { at, bytes } => {
            let i = at % frame.len();
            let end = (i + bytes.len()).min(frame.len());
            frame[i..end].copy_from_slice(&bytes[..end - i]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mutated_captures_never_panic(
        mutations in proptest::collection::vec((any::<usize>(), mutation()), 1..200),
    ) {
        let mut frames = frames();
        for (which, m) in &mutations {
            let n = frames.len();
            apply(&mut frames[which % n].1, m);
        }
        let config = DecodeConfig { max_tcp_flows: 4, max_fragment_datagrams: 4, ..DecodeConfig::default() };
        let mut decoder = Decoder::new(&config);
        let mut extractor = Extractor::new(Sections { answer: true, authority: true, additional: true });
        let mut aggregator = Aggregator::new(1_000_000, Origin::WIRE);
        let mut stats = ExtractStats::default();
        for (i, (link, data)) in frames.iter().enumerate() {
            let frame = Frame { ts: Timestamp::from_secs(1_000 + i as u64 / 50), link: *link, data };
            decoder.decode(&frame, &mut |payload| extractor.extract(&payload, &mut stats, &mut aggregator));
            prop_assert!(decoder.tcp_flows() <= 4);
            prop_assert!(decoder.pending_fragments() <= 4);
        }
        for (key, _) in aggregator.take().records.iter() {
            let r = key::parse_record_key(key).expect("keys we build parse back");
            let _ = pdns_sensor::vocab::render::rdata(r.rtype, r.rdata);
            let _ = pdns_sensor::vocab::name::presentation(r.owner);
        }
    }
}
