//! Bounded decoder state under a hostile sender (issue 14): 100 000 TCP
//! connections to port 53 that announce a message and never finish it,
//! and 100 000 trains of IP fragments that never complete, interleaved at
//! full speed with real DNS captures (TCP conversations and fragmented
//! answers among them).
//!
//! The hostile frames are cheap for the sender and dear for a naive
//! receiver: a 3-byte segment announcing a 65 535-byte message makes the
//! reassembler reserve 64 KiB; an 8-byte last fragment at offset 65 000
//! makes the defragmenter hold a 64 KiB datagram. Before the byte budgets,
//! 16 384 such directions and 1 024 such datagrams per decoder thread came
//! to about 1.1 GiB.
//!
//! Checked: the `ingest` of the mixed capture records exactly what an
//! `ingest` of the real captures alone records (the truth: the same frames
//! in the same order and at the same times, without the flood); its peak
//! RSS stays within the truth's plus the documented budgets (64 MiB of TCP
//! state and 16 MiB of fragments per decoder thread); and the evictions
//! that kept it there are counted, by bound, in `--stats-json`.

mod common;
#[path = "live_support/pcap.rs"]
#[allow(dead_code)]
mod pcap;

use std::path::{Path, PathBuf};

use pcap::Packet;
use pdns_sensor::store::Store;
use pdns_sensor::vocab::packet::LinkType;

const HOSTILE_FLOWS: u32 = 100_000;
const HOSTILE_TRAINS: u32 = 100_000;
/// The byte budgets of one decoder thread (`DecodeConfig::default()`).
const TCP_BUDGET: u64 = 64 << 20;
const FRAGMENT_BUDGET: u64 = 16 << 20;
/// Room for what the budgets do not count: allocator slack, the hash
/// tables' growth steps, the reader's buffer.
const SLACK: u64 = 24 << 20;

/// Real captures with DNS over TCP and fragmented DNS over UDP (and plain
/// UDP around them), all under `testdata/pcap`.
const CAPTURES: [&str; 12] = [
    "go-dnscollector/dnsdump_ip4_fragmented+udp.pcap",
    "go-dnscollector/dnsdump_ip6_fragmented+udp.pcap",
    "go-dnscollector/dnsdump_tcp.pcap",
    "go-dnscollector/dnsdump_tcp_fastopen.pcap",
    "go-dnscollector/dnsdump_udp+tcp.pcap",
    "go-dnscollector/dnsdump_udp_truncated+tcp_fragmented.pcap",
    "dnscap/dnso1tcp.pcap",
    "dnscap/frags.pcap",
    "dnscap/dns.pcap",
    "zeek/ipv6-fragmented-dns.pcap",
    "zeek/dns-edns-tcp-keepalive.pcap",
    "tcpdump/dns_tcp.pcap",
];

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/pcap")
        .join(name)
}

/// The real frames as Ethernet, each capture shifted in time to start ten
/// minutes after the previous one ended (so captures never overlap and
/// time only moves forward), keeping each capture's own spacing.
fn real_frames() -> Vec<Packet> {
    let mut out: Vec<Packet> = Vec::new();
    for name in CAPTURES {
        let mut frames = Vec::new();
        pdns_sensor::source::pcap::read_file(&testdata(name), |f| {
            let usec = f.ts.secs * 1_000_000 + u64::from(f.ts.nanos) / 1_000;
            let data = match f.link {
                LinkType::Ethernet => f.data.to_vec(),
                LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => {
                    let ethertype: u16 = match f.data.first().map(|b| b >> 4) {
                        Some(6) => 0x86dd,
                        _ => 0x0800,
                    };
                    let mut e = vec![0u8; 12];
                    e.extend_from_slice(&ethertype.to_be_bytes());
                    e.extend_from_slice(f.data);
                    e
                }
                other => panic!("{name}: link type {other:?}"),
            };
            frames.push(Packet {
                ts_usec: usec,
                data,
            });
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!frames.is_empty(), "{name}");
        let first = frames.iter().map(|p| p.ts_usec).min().unwrap();
        let start = out
            .last()
            .map_or(1_700_000_000_000_000, |p| p.ts_usec + 600_000_000);
        for mut p in frames {
            p.ts_usec = start + (p.ts_usec - first);
            out.push(p);
        }
    }
    out
}

fn ethernet_ipv4(
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    frag: u16,
    body: &[u8],
) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
    ip[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = pcap::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(body);
    f
}

/// A TCP segment (ACK|PSH, checksum left 0: the decoder does not check it).
fn tcp(src: [u8; 4], sport: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&53u16.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    ethernet_ipv4(6, src, [198, 18, 0, 53], 0, 0x4000, &t)
}

/// The hostile frames of step `i`, in the order they are sent (generated
/// as the capture is written, so that this process stays small: a child's
/// peak RSS counts its parent's at the fork).
///
/// Flows: even ones send the first byte of a length prefix, then the
/// second (65 535) and one byte of the message: 64 KiB reserved. Odd ones
/// send a byte, then 1 400 bytes beyond a hole of 99: held out of order.
/// Trains: even ones are one last fragment at offset 65 000 (a 64 KiB
/// datagram to hold), odd ones a first fragment of 1 480 bytes.
fn hostile_frames(i: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let zeros = [0u8; 1480];
    let src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    let sport = 1024 + (i % 60_000) as u16;
    if i < HOSTILE_FLOWS {
        let seq = i.wrapping_mul(2_654_435_761);
        if i.is_multiple_of(2) {
            out.push(tcp(src, sport, seq, &[0xff]));
            out.push(tcp(src, sport, seq + 1, &[0xff, 0]));
        } else {
            out.push(tcp(src, sport, seq, &[0]));
            out.push(tcp(src, sport, seq + 100, &zeros[..1400]));
        }
    }
    if i < HOSTILE_TRAINS {
        let fsrc = [172, 16 + (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let id = i as u16;
        if i.is_multiple_of(2) {
            out.push(ethernet_ipv4(
                17,
                fsrc,
                [198, 18, 0, 53],
                id,
                65_000 / 8,
                &zeros[..8],
            ));
        } else {
            let mut udp = Vec::new();
            udp.extend_from_slice(&53u16.to_be_bytes());
            udp.extend_from_slice(&33_000u16.to_be_bytes());
            udp.extend_from_slice(&3000u16.to_be_bytes());
            udp.extend_from_slice(&[0, 0]);
            udp.extend_from_slice(&zeros[..1472]);
            out.push(ethernet_ipv4(17, fsrc, [198, 18, 0, 53], id, 0x2000, &udp));
        }
    }
    out
}

/// Runs `ingest` on one decoder thread; returns its peak RSS in bytes and
/// its `--stats-json` report.
fn ingest(pcap: &Path, db: &Path) -> (u64, serde_json::Value) {
    let stats = db.with_extension("json");
    let child = common::sensor_command()
        .arg("ingest")
        .arg("--db")
        .arg(db)
        .args(["--threads", "1", "--quiet", "--stats-json"])
        .arg(&stats)
        .arg(pcap)
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own child's, not yet waited for (the Child is
    // forgotten, so it will not be waited for twice); the pointers are to
    // live locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid as u32, child.id(), "wait4");
    std::mem::forget(child);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "ingest of {} failed: status {status:#x}",
        pcap.display()
    );
    let report = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    (usage.ru_maxrss as u64 * 1024, report)
}

fn count(report: &serde_json::Value, path: &[&str]) -> u64 {
    let mut v = report;
    for p in path {
        v = &v[p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("no {path:?} in {report}"))
}

#[test]
fn a_flood_of_unfinished_flows_and_fragments_stays_within_the_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let real = real_frames();

    // The flood goes in between the real frames, in even slices, with the
    // time of the real frame before it.
    let (real_pcap, mixed_pcap) = (dir.path().join("real.pcap"), dir.path().join("mixed.pcap"));
    let (mut truth_file, mut mixed_file) = (
        pcap::Writer::create(&real_pcap),
        pcap::Writer::create(&mixed_pcap),
    );
    let steps = HOSTILE_FLOWS.max(HOSTILE_TRAINS);
    let per_gap = steps.div_ceil(real.len() as u32);
    let (mut step, mut frames) = (0, 0);
    for p in &real {
        truth_file.frame(p.ts_usec, &p.data);
        mixed_file.frame(p.ts_usec, &p.data);
        frames += 1;
        for i in step..(step + per_gap).min(steps) {
            for data in hostile_frames(i) {
                mixed_file.frame(p.ts_usec, &data);
                frames += 1;
            }
        }
        step = (step + per_gap).min(steps);
    }
    assert_eq!(step, steps);
    drop((truth_file, mixed_file));

    let (truth_rss, truth) = ingest(&real_pcap, &dir.path().join("truth"));
    let (rss, report) = ingest(&mixed_pcap, &dir.path().join("mixed"));
    println!(
        "{} real frames, {} in all; peak RSS {:.1} MiB without the flood, {:.1} MiB with it",
        real.len(),
        frames,
        truth_rss as f64 / 1048576.0,
        rss as f64 / 1048576.0
    );
    println!("evictions: {}", report["evictions"]);
    println!("drops without the flood: {}", truth["drops"]);
    println!("drops with it: {}", report["drops"]);

    // The real traffic is recorded exactly as without the flood.
    let truth_store = Store::open_reader(&dir.path().join("truth")).unwrap();
    let store = Store::open_reader(&dir.path().join("mixed")).unwrap();
    let (want, got) = (
        common::all_records(&truth_store),
        common::all_records(&store),
    );
    assert!(
        want.len() > 100,
        "the real captures hold {} records",
        want.len()
    );
    let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(10).collect();
    let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && got.len() == want.len(),
        "records differ under the flood ({} vs {} records); missing {missing:#?}, \
         extra {extra:#?}",
        got.len(),
        want.len()
    );
    assert_eq!(common::negatives(&store), common::negatives(&truth_store));
    assert_eq!(
        count(&report, &["dns_responses"]),
        count(&truth, &["dns_responses"]),
        "responses decoded"
    );

    // The budgets were what held the flood, and said so.
    for table in ["tcp", "fragments"] {
        let evicted = count(&report, &["evictions", &format!("{table}.bytes")]);
        assert!(evicted > 1000, "{table}: only {evicted} evictions by bytes");
    }
    let bound = truth_rss + TCP_BUDGET + FRAGMENT_BUDGET + SLACK;
    assert!(
        rss <= bound,
        "peak RSS {} MiB above the bound {} MiB",
        rss >> 20,
        bound >> 20
    );
}
