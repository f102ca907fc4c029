//! Tunnel decapsulation, differentially: every real test capture is
//! rewritten so that each frame travels inside VXLAN, Geneve, GRE or ERSPAN
//! (over IPv4 and over IPv6, nested, fragmented, duplicated into two
//! tunnels, split between two tunnels), and the store the sensor builds
//! from it is compared with the store of the plain captures. Broken tunnel
//! headers are counted under their drop reason and yield nothing.
//!
//! The tunnelled captures are built by `common::tunnel`, by hand and
//! independently of the decoder.

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::OnceLock;

use common::tunnel::{
    self, Addressing, Encap, Malformation, OuterIp, Tunnel, Wrapped, Wrapper, layer,
};
use pdns_sensor::cli::ingest::IngestArgs;
use pdns_sensor::decode::{DecodeConfig, Decoder};
use pdns_sensor::report::IngestReport;
use pdns_sensor::vocab::packet::{Frame, LinkType};

type Negative = (String, String, String, u64);

/// What one ingest gave.
struct Outcome {
    records: Vec<common::Line>,
    negatives: Vec<Negative>,
    report: IngestReport,
}

impl Outcome {
    fn decapsulated(&self, e: pdns_sensor::decode::Encap) -> u64 {
        self.report.summary.decode.decapsulated[e as usize]
    }

    /// The `decapsulated` object of `--stats-json`, as scripts read it.
    fn decapsulated_json(&self) -> Option<BTreeMap<String, u64>> {
        let v = serde_json::to_value(&self.report).unwrap();
        serde_json::from_value(v.get("decapsulated")?.clone()).ok()
    }

    fn drop(&self, reason: &str) -> u64 {
        self.report.totals.drops.get(reason).copied().unwrap_or(0)
    }

    /// Decode drops only (extraction drops are the other reasons).
    fn decode_drops(&self) -> BTreeMap<&'static str, u64> {
        pdns_sensor::decode::DropReason::ALL
            .iter()
            .map(|r| (r.as_str(), self.drop(r.as_str())))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

fn run(files: &[PathBuf], tweak: impl FnOnce(&mut IngestArgs)) -> Outcome {
    let ingested = common::ingest_with(files, tweak);
    let store = ingested.store();
    Outcome {
        records: common::all_records(&store),
        negatives: common::negatives(&store),
        report: ingested.report,
    }
}

/// The plain captures, ingested once.
fn plain() -> &'static Outcome {
    static PLAIN: OnceLock<Outcome> = OnceLock::new();
    PLAIN.get_or_init(|| {
        let o = run(&common::all_pcaps(), |_| {});
        assert!(o.records.len() > 1000, "{} records", o.records.len());
        o
    })
}

/// The captures that carry no tunnel of their own (the plain decoder opens
/// nothing in them), for tests that nest several tunnels around every
/// frame; and the plain outcome of just those.
fn untunnelled() -> &'static (Vec<PathBuf>, Outcome) {
    static UNTUNNELLED: OnceLock<(Vec<PathBuf>, Outcome)> = OnceLock::new();
    UNTUNNELLED.get_or_init(|| {
        let files: Vec<PathBuf> = common::all_pcaps()
            .into_iter()
            .filter(|p| {
                let mut decoder = Decoder::new(&DecodeConfig::default());
                pdns_sensor::source::pcap::read_file(p, |frame| {
                    decoder.decode(frame, &mut |_| {});
                })
                .ok();
                decoder.stats.decapsulated.iter().all(|n| *n == 0)
            })
            .collect();
        assert!(files.len() > 100);
        let o = run(&files, |_| {});
        (files, o)
    })
}

/// The elements only `a` has and those only `b` has (both sorted).
fn differences<T: Ord + Debug + Clone>(a: &[T], b: &[T]) -> String {
    let only = |x: &[T], y: &[T]| -> Vec<T> {
        x.iter()
            .filter(|e| y.binary_search(e).is_err())
            .cloned()
            .collect()
    };
    let (ga, gb) = (only(a, b), only(b, a));
    let show = |v: &[T]| {
        let mut s: Vec<String> = v
            .iter()
            .take(12)
            .map(|e| {
                let e = format!("{e:?}");
                let cut = e.char_indices().nth(160).map_or(e.len(), |(i, _)| i);
                format!(
                    "\n      {}{}",
                    &e[..cut],
                    if cut < e.len() { " …" } else { "" }
                )
            })
            .collect();
        if v.len() > 12 {
            s.push(format!("\n      ... {} more", v.len() - 12));
        }
        s.concat()
    };
    let mut out = format!(
        "{} vs {} entries; only in the tunnelled: {}{}; only in the expected: {}{}",
        a.len(),
        b.len(),
        ga.len(),
        show(&ga),
        gb.len(),
        show(&gb)
    );
    if ga.is_empty() && gb.is_empty() {
        out.push_str(" (same elements, different multiplicity)");
    }
    out
}

/// Collects failures so that one run reports every combination that fails.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check<T: Ord + Debug + Clone>(&mut self, what: &str, got: &[T], want: &[T]) {
        if got != want {
            self.0.push(format!("{what}: {}", differences(got, want)));
        }
    }

    fn check_eq<T: PartialEq + Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.0
                .push(format!("{what}: got {got:?}, expected {want:?}"));
        }
    }

    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} failure(s):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

fn map_differences(got: &BTreeMap<String, u64>, want: &BTreeMap<String, u64>) -> String {
    let keys: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (g, w) = (
                got.get(k).copied().unwrap_or(0),
                want.get(k).copied().unwrap_or(0),
            );
            (g != w).then(|| format!("{k}: {g} (expected {w})"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compares a tunnelled outcome with the plain one: same records and
/// negatives, every layer counted once per wrapped frame (`copies` times),
/// and (when `drops` is set) the same drops but for the frames that could
/// not be carried.
fn compare(
    f: &mut Failures,
    what: &str,
    got: &Outcome,
    plain: &Outcome,
    tunnel: &Tunnel,
    w: &Wrapped,
    drops: bool,
) {
    f.check(&format!("{what}: records"), &got.records, &plain.records);
    f.check(
        &format!("{what}: negatives"),
        &got.negatives,
        &plain.negatives,
    );
    let json = got.decapsulated_json();
    if json.is_none() {
        f.0.push(format!(
            "{what}: no `decapsulated` object in the ingest report's JSON"
        ));
    }
    for e in pdns_sensor::decode::Encap::ALL {
        let layers = tunnel
            .layers
            .iter()
            .filter(|l| l.encap.counter() == e)
            .count() as u64;
        let want = plain.decapsulated(e) + layers * w.wrapped;
        f.check_eq(
            &format!("{what}: decapsulated[{}]", e.as_str()),
            got.decapsulated(e),
            want,
        );
        if let Some(json) = &json {
            f.check_eq(
                &format!("{what}: JSON decapsulated.{}", e.as_str()),
                json.get(e.as_str()).copied().unwrap_or(0),
                want,
            );
        }
    }
    if drops {
        let mut want = plain.report.totals.drops.clone();
        for (reason, n) in &w.skipped {
            *want.get_mut(*reason).unwrap() -= n;
        }
        if got.report.totals.drops != want {
            f.0.push(format!(
                "{what}: drops differ: {}",
                map_differences(&got.report.totals.drops, &want)
            ));
        }
    }
    f.check_eq(
        &format!("{what}: packets"),
        got.report.totals.packets,
        plain.report.totals.packets - w.frames + w.written,
    );
}

fn tunnelled(files: &[PathBuf], tunnel: &Tunnel) -> (tempfile::TempDir, Vec<PathBuf>, Wrapped) {
    let dir = tempfile::tempdir().unwrap();
    let (out, w) = tunnel::tunnel_pcaps(files, dir.path(), tunnel);
    (dir, out, w)
}

#[test]
fn every_encapsulation_over_ipv4_and_ipv6_gives_the_plain_store() {
    let plain = plain();
    let files = common::all_pcaps();
    let mut f = Failures::default();
    for encap in Encap::all() {
        for outer in [OuterIp::V4, OuterIp::V6] {
            let tunnel = Tunnel::single(encap, outer);
            let (_dir, out, w) = tunnelled(&files, &tunnel);
            assert!(w.wrapped > 2500, "{}: {w:?}", tunnel.describe());
            let got = run(&out, |_| {});
            compare(&mut f, &tunnel.describe(), &got, plain, &tunnel, &w, true);
        }
    }
    f.finish();
}

#[test]
fn per_source_host_mirror_sessions_give_the_plain_store() {
    // Each direction of a flow arrives from its own outer source (one
    // mirror session per host), the sensor as the destination.
    let plain = plain();
    let files = common::all_pcaps();
    let mut f = Failures::default();
    for (encap, outer) in [
        (Encap::Vxlan { vni: 99 }, OuterIp::V4),
        (
            Encap::Geneve {
                vni: 3,
                options: true,
            },
            OuterIp::V6,
        ),
        (
            Encap::Erspan3 {
                session: 1,
                subheader: false,
            },
            OuterIp::V4,
        ),
    ] {
        let tunnel = Tunnel::single(encap, outer).addressing(Addressing::PerSourceHost);
        let (_dir, out, w) = tunnelled(&files, &tunnel);
        let got = run(&out, |_| {});
        compare(&mut f, &tunnel.describe(), &got, plain, &tunnel, &w, true);
    }
    f.finish();
}

#[test]
fn nested_tunnels_give_the_plain_store() {
    let (files, plain) = untunnelled();
    let mut f = Failures::default();
    let nests = [
        // VXLAN inside GRE.
        vec![
            layer(
                Encap::GreIp {
                    key: Some(1),
                    seq: false,
                    checksum: false,
                },
                OuterIp::V4,
            ),
            layer(Encap::Vxlan { vni: 10 }, OuterIp::V4),
        ],
        // Geneve inside IPv6 GRE.
        vec![
            layer(
                Encap::GreIp {
                    key: None,
                    seq: true,
                    checksum: true,
                },
                OuterIp::V6,
            ),
            layer(
                Encap::Geneve {
                    vni: 20,
                    options: true,
                },
                OuterIp::V4,
            ),
        ],
        // A mirror of an overlay: VXLAN over IPv6, mirrored by ERSPAN III.
        vec![
            layer(
                Encap::Erspan3 {
                    session: 9,
                    subheader: true,
                },
                OuterIp::V4,
            ),
            layer(Encap::Vxlan { vni: 30 }, OuterIp::V6),
        ],
        // Four deep, every kind of outer.
        vec![
            layer(Encap::Erspan2 { session: 4 }, OuterIp::V6),
            layer(
                Encap::GreTeb {
                    key: Some(7),
                    seq: true,
                    checksum: true,
                },
                OuterIp::V4,
            ),
            layer(
                Encap::Geneve {
                    vni: 1,
                    options: false,
                },
                OuterIp::V6,
            ),
            layer(Encap::Vxlan { vni: 2 }, OuterIp::V4),
        ],
    ];
    for layers in nests {
        let tunnel = Tunnel::new(layers);
        let (_dir, out, w) = tunnelled(files, &tunnel);
        let got = run(&out, |_| {});
        compare(&mut f, &tunnel.describe(), &got, plain, &tunnel, &w, true);
    }
    f.finish();
}

#[test]
fn outer_fragments_are_reassembled_before_the_tunnel_is_opened() {
    // An underlay MTU below the inner frames' size: the encapsulator
    // fragments the outer packet.
    let plain = plain();
    let files = common::all_pcaps();
    let mut f = Failures::default();
    for (encap, outer, mtu) in [
        (Encap::Vxlan { vni: 5 }, OuterIp::V4, 1500),
        (
            Encap::GreIp {
                key: Some(5),
                seq: true,
                checksum: false,
            },
            OuterIp::V6,
            1280,
        ),
        (Encap::Erspan2 { session: 5 }, OuterIp::V4, 576),
    ] {
        let tunnel = Tunnel::single(encap, outer).mtu(mtu);
        let (_dir, out, w) = tunnelled(&files, &tunnel);
        assert!(w.written > w.wrapped + 100, "{w:?}");
        let got = run(&out, |_| {});
        compare(&mut f, &tunnel.describe(), &got, plain, &tunnel, &w, true);
        f.check_eq(
            &format!("{}: datagrams reassembled", tunnel.describe()),
            got.report.summary.decode.reassembled_datagrams,
            plain.report.summary.decode.reassembled_datagrams + w.wrapped
                - count_unfragmented(&out, &tunnel),
        );
    }
    f.finish();
}

/// Outer packets written whole (not fragmented) in tunnelled captures.
fn count_unfragmented(files: &[PathBuf], tunnel: &Tunnel) -> u64 {
    let mut n = 0;
    for p in files {
        pdns_sensor::source::pcap::read_file(p, |frame| {
            let ip = &frame.data[14..];
            let whole = match tunnel.layers[0].outer {
                OuterIp::V4 => u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff == 0,
                OuterIp::V6 => ip[6] != 44,
            };
            n += u64::from(whole);
        })
        .unwrap();
    }
    n
}

#[test]
fn the_same_traffic_in_two_vnis_counts_twice() {
    let plain = plain();
    let files = common::all_pcaps();
    let dir = tempfile::tempdir().unwrap();
    let (out, w) = tunnel::each(&files, dir.path(), |input, output| {
        let mut one = Wrapper::new(Tunnel::single(Encap::Vxlan { vni: 1 }, OuterIp::V4));
        let mut two = Wrapper::new(Tunnel::single(Encap::Vxlan { vni: 2 }, OuterIp::V4));
        tunnel::rewrite(input, output, |_, link, data| {
            let mut frames = one.wrap(link, data)?;
            frames.extend(two.wrap(link, data)?);
            Ok(frames)
        })
    });
    let got = run(&out, |_| {});
    let twice: Vec<common::Line> = plain
        .records
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.3 *= 2;
            l
        })
        .collect();
    let twice_neg: Vec<Negative> = plain
        .negatives
        .iter()
        .map(|n| (n.0.clone(), n.1.clone(), n.2.clone(), n.3 * 2))
        .collect();
    let mut f = Failures::default();
    f.check("records (counts doubled)", &got.records, &twice);
    f.check("negatives (counts doubled)", &got.negatives, &twice_neg);
    f.check_eq(
        "decapsulated[vxlan]",
        got.decapsulated(pdns_sensor::decode::Encap::Vxlan),
        // The captures' own VXLAN packets are in both copies too.
        2 * (plain.decapsulated(pdns_sensor::decode::Encap::Vxlan) + w.wrapped),
    );
    f.check_eq(
        "DNS responses",
        got.report.totals.dns_responses,
        2 * plain.report.totals.dns_responses,
    );
    f.finish();
}

/// The TCP frames of a capture, by direction, alternately given to the
/// first and the second of two choices (`false`, `true`, `false`, ...).
fn alternate_tcp(link: LinkType, data: &[u8], seen: &mut BTreeMap<Vec<u8>, u64>) -> bool {
    let Ok(l3) = pdns_sensor::decode::link::strip(link, data) else {
        return false;
    };
    match tunnel::inner_flow(l3) {
        Some(flow) if flow.proto == 6 && flow.ports.is_some() => {
            let (s, d) = flow.ports.unwrap();
            let mut key = flow.src.clone();
            key.extend_from_slice(&flow.dst);
            key.extend_from_slice(&s.to_be_bytes());
            key.extend_from_slice(&d.to_be_bytes());
            let n = seen.entry(key).or_default();
            *n += 1;
            n.is_multiple_of(2)
        }
        _ => false,
    }
}

#[test]
fn a_tcp_stream_split_across_two_vnis_is_not_reassembled_across_them() {
    // The TCP segments of each direction alternate between VNI 1 and VNI 2:
    // two streams with holes, never one. The expectation is the plain
    // capture with the client port of the VNI 2 segments changed (two
    // streams to the plain decoder as well). In dnso1tcp every message
    // has a segment of its own, so nothing is lost; the 2048-record answer
    // spans many segments and is lost, the plain capture has it.
    let mut f = Failures::default();
    for (capture, spanning) in [
        ("dnscap/dnso1tcp.pcap", false),
        (
            "go-dnscollector/dnsdump_udp_truncated+tcp_fragmented.pcap",
            true,
        ),
    ] {
        let input = common::pcap(capture);
        let dir = tempfile::tempdir().unwrap();
        let split = dir.path().join("split.pcap");
        let ports = dir.path().join("ports.pcap");
        let mut one = Wrapper::new(Tunnel::single(Encap::Vxlan { vni: 1 }, OuterIp::V4));
        let mut two = Wrapper::new(Tunnel::single(Encap::Vxlan { vni: 2 }, OuterIp::V4));
        let mut seen = BTreeMap::new();
        let w = tunnel::rewrite(&input, &split, |_, link, data| {
            if alternate_tcp(link, data, &mut seen) {
                two.wrap(link, data)
            } else {
                one.wrap(link, data)
            }
        });
        let mut seen = BTreeMap::new();
        let moved = std::cell::Cell::new(0);
        tunnel::rewrite(&input, &ports, |_, link, data| {
            let l3 = pdns_sensor::decode::link::strip(link, data)?;
            let mut ip = l3.to_vec();
            if alternate_tcp(link, data, &mut seen) {
                let flow = tunnel::inner_flow(&ip).unwrap();
                let (s, d) = flow.ports.unwrap();
                let at = flow.l4.unwrap() + if s == 53 { 2 } else { 0 };
                let port = if s == 53 { d } else { s };
                ip[at..at + 2].copy_from_slice(&(port ^ 0x2000).to_be_bytes());
                moved.set(moved.get() + 1);
            }
            let ethertype: u16 = if ip[0] >> 4 == 6 { 0x86dd } else { 0x0800 };
            let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
            frame.extend_from_slice(&ethertype.to_be_bytes());
            frame.extend_from_slice(&ip);
            Ok(vec![frame])
        });
        assert!(
            moved.get() > 10,
            "{capture}: {} TCP segments moved",
            moved.get()
        );
        let got = run(&[split], |_| {});
        let want = run(&[ports], |_| {});
        let whole = run(&[input], |_| {});
        assert_eq!(
            want.records != whole.records,
            spanning,
            "{capture}: the stream split by client port loses messages spanning segments"
        );
        f.check(&format!("{capture}: records"), &got.records, &want.records);
        f.check(
            &format!("{capture}: negatives"),
            &got.negatives,
            &want.negatives,
        );
        f.check_eq(
            &format!("{capture}: TCP responses"),
            got.report.summary.extract.tcp_responses,
            want.report.summary.extract.tcp_responses,
        );
        f.check_eq(
            &format!("{capture}: decapsulated[vxlan]"),
            got.decapsulated(pdns_sensor::decode::Encap::Vxlan),
            w.wrapped,
        );
        // Fewer TCP responses than the whole stream gives.
        if spanning
            && got.report.summary.extract.tcp_responses
                >= whole.report.summary.extract.tcp_responses
        {
            f.0.push(format!(
                "{capture}: {} TCP responses from the split stream, {} from the whole one",
                got.report.summary.extract.tcp_responses,
                whole.report.summary.extract.tcp_responses
            ));
        }
    }
    f.finish();
}

#[test]
fn with_no_tunnels_tunnelled_frames_are_counted_and_skipped() {
    let files = common::all_pcaps();
    let mut f = Failures::default();
    for (encap, reason) in [
        (Encap::Vxlan { vni: 1 }, "not_dns_port"),
        (
            Encap::Geneve {
                vni: 1,
                options: true,
            },
            "not_dns_port",
        ),
        (
            Encap::GreIp {
                key: None,
                seq: false,
                checksum: false,
            },
            "not_udp_tcp",
        ),
        (
            Encap::GreTeb {
                key: Some(1),
                seq: false,
                checksum: false,
            },
            "not_udp_tcp",
        ),
        (Encap::Erspan1, "not_udp_tcp"),
        (Encap::Erspan2 { session: 1 }, "not_udp_tcp"),
        (
            Encap::Erspan3 {
                session: 1,
                subheader: true,
            },
            "not_udp_tcp",
        ),
    ] {
        for outer in [OuterIp::V4, OuterIp::V6] {
            let tunnel = Tunnel::single(encap, outer);
            let what = tunnel.describe();
            let (_dir, out, w) = tunnelled(&files, &tunnel);
            let got = run(&out, |a| a.pipeline.no_tunnels = true);
            f.check(&format!("{what}: records"), &got.records, &[]);
            f.check(&format!("{what}: negatives"), &got.negatives, &[]);
            f.check_eq(
                &format!("{what}: decode drops"),
                got.decode_drops(),
                [(reason, w.wrapped)].into_iter().collect(),
            );
            f.check_eq(
                &format!("{what}: decapsulated"),
                got.report.summary.decode.decapsulated.iter().sum::<u64>(),
                0,
            );
        }
    }
    f.finish();
}

#[test]
fn four_nested_tunnels_are_opened_and_five_are_too_deep() {
    let files = vec![common::pcap("dnscap/dns.pcap")];
    let plain = run(&files, |_| {});
    assert_eq!(plain.records.len(), 3);
    let mut f = Failures::default();
    let four = Tunnel::nested_vxlan(4);
    let (_d4, out, w) = tunnelled(&files, &four);
    let got = run(&out, |_| {});
    compare(&mut f, "4 deep", &got, &plain, &four, &w, true);
    for depth in [5, 6] {
        for tunnel in [
            Tunnel::nested_vxlan(depth),
            Tunnel::new(
                (0..depth)
                    .map(|i| {
                        layer(
                            Encap::GreTeb {
                                key: Some(i as u32),
                                seq: false,
                                checksum: false,
                            },
                            OuterIp::V6,
                        )
                    })
                    .collect(),
            ),
        ] {
            let what = tunnel.describe();
            let (_d, out, w) = tunnelled(&files, &tunnel);
            let got = run(&out, |_| {});
            f.check(&format!("{what}: records"), &got.records, &[]);
            f.check(&format!("{what}: negatives"), &got.negatives, &[]);
            f.check_eq(
                &format!("{what}: decode drops"),
                got.decode_drops(),
                [("tunnel_too_deep", w.wrapped)].into_iter().collect(),
            );
        }
    }
    f.finish();
}

#[test]
fn malformed_tunnels_are_counted_under_their_reason() {
    let files = vec![
        common::pcap("dnscap/dns.pcap"),
        common::pcap("dnscap/dnso1tcp.pcap"),
    ];
    let gre_all = Encap::GreIp {
        key: Some(3),
        seq: true,
        checksum: true,
    };
    let teb = Encap::GreTeb {
        key: None,
        seq: false,
        checksum: false,
    };
    let e3 = Encap::Erspan3 {
        session: 2,
        subheader: true,
    };
    let geneve = Encap::Geneve {
        vni: 8,
        options: true,
    };
    use Malformation::*;
    let cases = [
        (Encap::Vxlan { vni: 1 }, TruncatedHeader, "tunnel_malformed"),
        (geneve, TruncatedHeader, "tunnel_malformed"),
        (gre_all, TruncatedHeader, "tunnel_malformed"),
        (teb, TruncatedHeader, "tunnel_malformed"),
        (
            Encap::Erspan2 { session: 1 },
            TruncatedHeader,
            "tunnel_malformed",
        ),
        (e3, TruncatedHeader, "tunnel_malformed"),
        (Encap::Vxlan { vni: 1 }, VxlanNoIFlag, "tunnel_malformed"),
        (geneve, GeneveVersion1, "tunnel_malformed"),
        (geneve, GeneveOptionOverrun, "tunnel_malformed"),
        (teb, GreUnknownProtocol, "tunnel_unsupported"),
        (gre_all, GreUnknownProtocol, "tunnel_unsupported"),
        (gre_all, GreVersion1, "tunnel_unsupported"),
        (teb, GreRouting, "tunnel_unsupported"),
        (
            Encap::Erspan2 { session: 1 },
            ErspanUnknownVersion,
            "tunnel_malformed",
        ),
        (e3, ErspanNotEthernet, "tunnel_unsupported"),
    ];
    let mut f = Failures::default();
    for (encap, m, reason) in cases {
        for outer in [OuterIp::V4, OuterIp::V6] {
            let tunnel = Tunnel::single(encap, outer).malformed(m);
            let what = tunnel.describe();
            let (_d, out, w) = tunnelled(&files, &tunnel);
            let got = run(&out, |_| {});
            f.check(&format!("{what}: records"), &got.records, &[]);
            f.check(&format!("{what}: negatives"), &got.negatives, &[]);
            f.check_eq(
                &format!("{what}: decode drops"),
                got.decode_drops(),
                [(reason, w.wrapped)].into_iter().collect(),
            );
            f.check_eq(
                &format!("{what}: decapsulated"),
                got.report.summary.decode.decapsulated.iter().sum::<u64>(),
                0,
            );
        }
    }
    f.finish();
}

#[test]
fn malformed_tunnels_inside_a_good_one_are_counted_too() {
    // The broken header one level down: the outer tunnel is opened and
    // counted, the inner one is dropped.
    let files = [common::pcap("dnscap/dns.pcap")];
    let mut f = Failures::default();
    for (m, inner, reason) in [
        (
            Malformation::VxlanNoIFlag,
            Encap::Vxlan { vni: 1 },
            "tunnel_malformed",
        ),
        (
            Malformation::GreVersion1,
            Encap::GreIp {
                key: None,
                seq: false,
                checksum: false,
            },
            "tunnel_unsupported",
        ),
    ] {
        // Build the broken tunnel, then wrap its frames once more.
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("broken.pcap");
        let outer = Tunnel::single(
            Encap::Geneve {
                vni: 77,
                options: false,
            },
            OuterIp::V6,
        );
        let w = tunnel::tunnel_pcap(
            &files[0],
            &broken,
            &Tunnel::single(inner, OuterIp::V4).malformed(m),
        );
        let twice = dir.path().join("twice.pcap");
        tunnel::tunnel_pcap(&broken, &twice, &outer);
        let got = run(&[twice], |_| {});
        let what = format!("{m:?} in Geneve");
        f.check(&format!("{what}: records"), &got.records, &[]);
        f.check_eq(
            &format!("{what}: decode drops"),
            got.decode_drops(),
            [(reason, w.wrapped)].into_iter().collect(),
        );
        f.check_eq(
            &format!("{what}: decapsulated[geneve]"),
            got.decapsulated(pdns_sensor::decode::Encap::Geneve),
            w.wrapped,
        );
    }
    f.finish();
}

#[test]
fn cut_and_flipped_tunnel_headers_never_panic() {
    // Every truncation and every single-bit flip of the first 160 bytes of
    // tunnelled frames, straight through a decoder.
    let input = common::pcap("dnscap/dns.pcap");
    let mut frames: Vec<(LinkType, Vec<u8>)> = Vec::new();
    pdns_sensor::source::pcap::read_file(&input, |frame| {
        if frames.len() < 4 {
            frames.push((frame.link, frame.data.to_vec()));
        }
    })
    .unwrap();
    let mut tunnels: Vec<Tunnel> = Encap::all()
        .into_iter()
        .flat_map(|e| [OuterIp::V4, OuterIp::V6].map(|o| Tunnel::single(e, o)))
        .collect();
    tunnels.push(Tunnel::nested_vxlan(4));
    tunnels.push(Tunnel::single(Encap::Vxlan { vni: 1 }, OuterIp::V6).mtu(100));
    let config = DecodeConfig {
        max_tcp_flows: 4,
        max_fragment_datagrams: 4,
        ..DecodeConfig::default()
    };
    let mut decoder = Decoder::new(&config);
    let mut decode = |data: &[u8]| {
        let frame = Frame {
            ts: pdns_sensor::vocab::packet::Timestamp::from_secs(1_000),
            link: LinkType::Ethernet,
            data,
        };
        decoder.decode(&frame, &mut |m| assert!(m.data.len() < 70_000));
    };
    for tunnel in tunnels {
        let mut w = Wrapper::new(tunnel);
        for (link, data) in &frames {
            for outer in w.wrap(*link, data).unwrap() {
                for cut in 0..outer.len() {
                    decode(&outer[..cut]);
                }
                for bit in 0..outer.len().min(160) * 8 {
                    let mut flipped = outer.clone();
                    flipped[bit / 8] ^= 1 << (bit % 8);
                    decode(&flipped);
                }
            }
        }
    }
}

#[test]
fn two_threads_give_the_store_of_one() {
    let plain = plain();
    let files = common::all_pcaps();
    let mut f = Failures::default();
    for tunnel in [
        Tunnel::single(Encap::Vxlan { vni: 11 }, OuterIp::V4),
        Tunnel::single(
            Encap::Geneve {
                vni: 12,
                options: true,
            },
            OuterIp::V6,
        )
        .addressing(Addressing::PerSourceHost),
        Tunnel::single(
            Encap::GreTeb {
                key: Some(13),
                seq: true,
                checksum: false,
            },
            OuterIp::V4,
        )
        .addressing(Addressing::PerSourceHost)
        .mtu(1400),
        Tunnel::new(vec![
            layer(
                Encap::GreIp {
                    key: None,
                    seq: false,
                    checksum: false,
                },
                OuterIp::V6,
            ),
            layer(Encap::Vxlan { vni: 14 }, OuterIp::V4),
        ])
        .addressing(Addressing::PerSourceHost),
    ] {
        let what = tunnel.describe();
        let (_d, out, _w) = tunnelled(&files, &tunnel);
        let one = run(&out, |_| {});
        let two = run(&out, |a| a.threads = 2);
        f.check(
            &format!("{what}: records, 2 threads vs 1"),
            &two.records,
            &one.records,
        );
        f.check(
            &format!("{what}: negatives, 2 threads vs 1"),
            &two.negatives,
            &one.negatives,
        );
        f.check(
            &format!("{what}: records, 2 threads vs plain"),
            &two.records,
            &plain.records,
        );
    }
    f.finish();
}

#[test]
fn an_inner_flow_whose_outer_packets_are_sometimes_fragmented_stays_in_one_thread() {
    // An IPv4 answer fragmented in two (1500 + small) inside VXLAN over an
    // underlay of MTU 1400: the first inner fragment's outer packet is
    // fragmented, the second's is not. With two threads both inner
    // fragments must still meet in one decoder.
    let files = vec![common::pcap(
        "go-dnscollector/dnsdump_ip4_fragmented+udp.pcap",
    )];
    let plain = run(&files, |_| {});
    assert_eq!(plain.records.len(), 4);
    let tunnel = Tunnel::single(Encap::Vxlan { vni: 1 }, OuterIp::V4).mtu(1400);
    let (_d, out, _w) = tunnelled(&files, &tunnel);
    let mut f = Failures::default();
    for threads in [1, 2] {
        let got = run(&out, |a| a.threads = threads);
        f.check(
            &format!("{threads} thread(s): records"),
            &got.records,
            &plain.records,
        );
        f.check_eq(
            &format!("{threads} thread(s): decode drops"),
            got.decode_drops(),
            plain.decode_drops(),
        );
    }
    f.finish();
}
