//! End-to-end checks of generated files: every DNS message (UDP, reassembled
//! IPv4 fragments, TCP streams) parses with the `domain` crate, and the
//! manifest's distinct-record counts match what an independent decoder
//! finds in the packets.

use std::collections::{HashMap, HashSet};

use bench::r#gen::{Config, Summary, generate};
use domain::base::iana::Rcode;
use domain::base::{Message, ParsedName};
use domain::rdata::AllRecordData;

/// DNS payloads of a pcap, in order, with IP fragments and TCP streams
/// reassembled. A deliberately independent, minimal decoder.
fn dns_messages(pcap: &[u8]) -> (u64, Vec<Vec<u8>>) {
    assert_eq!(&pcap[..4], &0xa1b2_c3d4u32.to_le_bytes());
    assert_eq!(u32::from_le_bytes(pcap[20..24].try_into().unwrap()), 1);
    let mut pos = 24;
    let mut frames = 0;
    let mut out = Vec::new();
    let mut frags: HashMap<u16, Vec<u8>> = HashMap::new();
    let mut streams: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut last_ts = 0u64;
    while pos < pcap.len() {
        let ts = u32::from_le_bytes(pcap[pos..pos + 4].try_into().unwrap()) as u64 * 1_000_000
            + u32::from_le_bytes(pcap[pos + 4..pos + 8].try_into().unwrap()) as u64;
        assert!(ts > last_ts, "timestamps must increase");
        last_ts = ts;
        let len = u32::from_le_bytes(pcap[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let frame = &pcap[pos + 16..pos + 16 + len];
        pos += 16 + len;
        frames += 1;
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let ip = &frame[14..];
        let (proto, l4, addrs): (u8, Vec<u8>, Vec<u8>) = match ethertype {
            0x0800 => {
                let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
                assert_eq!(total, ip.len());
                let ff = u16::from_be_bytes([ip[6], ip[7]]);
                let id = u16::from_be_bytes([ip[4], ip[5]]);
                let off = (ff & 0x1FFF) as usize * 8;
                let mf = ff & 0x2000 != 0;
                let data = &ip[20..];
                if off > 0 || mf {
                    let buf = frags.entry(id).or_default();
                    assert_eq!(buf.len(), off, "fragments in order, contiguous");
                    buf.extend_from_slice(data);
                    if mf {
                        continue;
                    }
                    (ip[9], frags.remove(&id).unwrap(), ip[12..20].to_vec())
                } else {
                    (ip[9], data.to_vec(), ip[12..20].to_vec())
                }
            }
            0x86DD => {
                let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
                assert_eq!(plen + 40, ip.len());
                (ip[6], ip[40..].to_vec(), ip[8..40].to_vec())
            }
            t => panic!("unexpected ethertype {t:#x}"),
        };
        match proto {
            17 => {
                let ulen = u16::from_be_bytes([l4[4], l4[5]]) as usize;
                assert_eq!(ulen, l4.len());
                out.push(l4[8..].to_vec());
            }
            6 => {
                let hl = (l4[12] >> 4) as usize * 4;
                let data = &l4[hl..];
                let mut key = addrs.clone();
                key.extend_from_slice(&l4[..4]);
                if l4[13] & 0x02 != 0 {
                    streams.insert(key.clone(), Vec::new());
                }
                let buf = streams.get_mut(&key).expect("segment after SYN");
                buf.extend_from_slice(data);
                while buf.len() >= 2 {
                    let mlen = u16::from_be_bytes([buf[0], buf[1]]) as usize;
                    if buf.len() < 2 + mlen {
                        break;
                    }
                    out.push(buf[2..2 + mlen].to_vec());
                    buf.drain(..2 + mlen);
                }
            }
            p => panic!("unexpected protocol {p}"),
        }
    }
    (frames, out)
}

fn run(cfg: &Config) -> (Vec<u8>, Summary) {
    generate(cfg, Vec::new(), &mut |_| {}).unwrap()
}

/// Parses every message fully and recomputes the manifest's counts.
fn check_messages(cfg: &Config) {
    let (bytes, summary) = run(cfg);
    let (frames, msgs) = dns_messages(&bytes);
    assert_eq!(frames, cfg.packets);
    assert_eq!(summary.packets, cfg.packets);
    assert_eq!(summary.bytes, bytes.len() as u64);

    let (mut queries, mut responses, mut nx_responses) = (0, 0, 0);
    let mut records = HashSet::new();
    let mut nx_pairs = HashSet::new();
    for m in msgs {
        let msg = Message::from_octets(m).expect("message");
        let question: Vec<_> = msg.question().map(|q| q.expect("question")).collect();
        assert_eq!(question.len(), 1);
        let q = &question[0];
        let mut sections = 0;
        let mut section = Some(msg.answer().expect("answer section"));
        while let Some(s) = section {
            for rr in s {
                let rr = rr.expect("record header");
                let rec = rr
                    .to_any_record::<AllRecordData<_, ParsedName<_>>>()
                    .expect("record data parses");
                if sections == 0 {
                    let owner = rec.owner().to_string().to_ascii_lowercase();
                    let data = rec.data().to_string().to_ascii_lowercase();
                    records.insert((owner, rec.rtype().to_string(), data));
                }
            }
            sections += 1;
            section = s.next_section().expect("next section");
        }
        assert_eq!(sections, 3);
        if msg.header().qr() {
            responses += 1;
            if msg.header().rcode() == Rcode::NXDOMAIN {
                nx_responses += 1;
                let mut auth = msg.authority().unwrap();
                assert!(auth.next().is_some(), "NXDOMAIN carries an SOA");
                nx_pairs.insert((q.qname().to_string().to_ascii_lowercase(), q.qtype()));
            }
        } else {
            queries += 1;
            assert_eq!(msg.header_counts().ancount(), 0);
        }
    }
    assert_eq!(queries, summary.queries);
    assert_eq!(responses, summary.responses);
    assert_eq!(nx_responses, summary.nxdomain_responses);
    assert_eq!(
        records.len() as u64,
        summary.counts.answer_records,
        "distinct answer records"
    );
    assert_eq!(
        nx_pairs.len() as u64,
        summary.counts.nxdomain_pairs,
        "nxdomain pairs"
    );
    let by_type: u64 = summary.counts.answer_records_by_type.values().sum();
    assert_eq!(by_type, summary.counts.answer_records);
}

#[test]
fn every_message_parses_and_manifest_is_exact() {
    check_messages(&Config {
        packets: 40_000,
        names: 3_000,
        tcp_share: 0.1,
        large_share: 0.02,
        nxdomain: 0.1,
        ..Config::default()
    });
}

#[test]
fn many_names_bypass_template_cache() {
    check_messages(&Config {
        packets: 20_000,
        names: 1_000_000,
        zipf: 0.5,
        ..Config::default()
    });
}

#[test]
fn water_torture_is_all_unique_nxdomain() {
    let cfg = Config {
        packets: 10_001,
        water_torture: true,
        tcp_share: 0.05,
        ..Config::default()
    };
    check_messages(&cfg);
    let (_, s) = run(&cfg);
    assert_eq!(s.counts.answer_records, 0);
    assert_eq!(s.nxdomain_responses, s.responses);
    assert_eq!(s.counts.nxdomain_pairs, s.responses);
}

#[test]
fn same_seed_same_bytes() {
    let cfg = Config {
        packets: 30_000,
        tcp_share: 0.05,
        ..Config::default()
    };
    let (a, sa) = run(&cfg);
    let (b, sb) = run(&cfg);
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    let (c, _) = run(&Config {
        seed: 2,
        ..cfg.clone()
    });
    assert_ne!(a, c);
}

#[test]
fn shorter_file_is_a_prefix() {
    let cfg = Config {
        packets: 20_000,
        tcp_share: 0.1,
        ..Config::default()
    };
    let (long, _) = run(&cfg);
    let (short, _) = run(&Config {
        packets: 5_000,
        ..cfg
    });
    // All but the tail exchange (at most one TCP connection) must agree.
    let common = long.iter().zip(&short).take_while(|(a, b)| a == b).count();
    assert!(
        common > short.len() - 2_000,
        "common prefix {common} of {}",
        short.len()
    );
}

#[test]
fn exact_packet_counts() {
    for packets in [1, 2, 3, 9, 10, 11, 101] {
        let cfg = Config {
            packets,
            tcp_share: 0.5,
            large_share: 0.2,
            ..Config::default()
        };
        let (bytes, s) = run(&cfg);
        assert_eq!(dns_messages(&bytes).0, packets);
        assert_eq!(s.packets, packets);
    }
}

#[test]
fn shares_are_roughly_honoured() {
    let cfg = Config {
        packets: 200_000,
        nxdomain: 0.05,
        large_share: 0.01,
        ..Config::default()
    };
    let (_, s) = run(&cfg);
    let nx = s.nxdomain_responses as f64 / s.responses as f64;
    let large = s.fragmented_responses as f64 / s.responses as f64;
    assert!((0.04..0.06).contains(&nx), "nx share {nx}");
    assert!((0.007..0.013).contains(&large), "large share {large}");
    assert_eq!(s.tcp_exchanges, 0);
}

#[test]
fn all_ipv6_clients_get_no_fragments() {
    let cfg = Config {
        packets: 20_000,
        ipv6_share: 1.0,
        large_share: 0.3,
        nxdomain: 0.05,
        tcp_share: 0.05,
        ..Config::default()
    };
    check_messages(&cfg);
    let (_, s) = run(&cfg);
    assert_eq!(s.fragmented_responses, 0);
    let nx = s.nxdomain_responses as f64 / s.responses as f64;
    assert!((0.03..0.07).contains(&nx), "nx share {nx}");
}
