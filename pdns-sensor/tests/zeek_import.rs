//! `import-zeek`: the Zeek dns.log baselines in `testdata/zeek-dnslog`, the
//! differential against `ingest` of the same captures, JSON vs TSV,
//! idempotence and resumption, malformed logs, follow mode across rotations
//! and restarts, and import speed.
//!
//! The btest baselines have their `ts` masked (`XXXXXXXXXX.XXXXXX`): as
//! they are, every data line is counted `bad_ts` (the import still
//! succeeds); the tests that need the data import an unmasked copy with a
//! fixed timestamp written in place of the mask.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pdns_sensor::cli::import_zeek;
use pdns_sensor::report::ImportZeekReport;
use pdns_sensor::source::zeek::follow::{self, FollowConfig};
use pdns_sensor::source::zeek::{LineSkip, ZeekStats};
use pdns_sensor::store::{Filter, Selector, Store};
use pdns_sensor::vocab::value::Origin;

const TS: u64 = 1_600_000_000;

fn zeek_dir() -> PathBuf {
    common::testdata().join("zeek-dnslog")
}

/// Every baseline under `zeek-dnslog`, sorted.
fn baselines() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(zeek_dir()).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    assert!(
        out.len() >= 29,
        "expected the 29 Zeek baselines, found {}",
        out.len()
    );
    out
}

fn import(db: &Path, paths: &[PathBuf]) -> ImportZeekReport {
    import_zeek::run_with_stop(
        &common::import_zeek_args(db, paths),
        &AtomicBool::new(false),
    )
    .unwrap()
}

/// The baseline with its masked `ts` replaced by a real one.
fn unmasked(text: &str, ts: u64) -> String {
    text.lines()
        .map(|l| match l.strip_prefix("XXXXXXXXXX.XXXXXX") {
            Some(rest) => format!("{ts}.000000{rest}\n"),
            None => format!("{l}\n"),
        })
        .collect()
}

fn write_unmasked(src: &Path, dir: &Path) -> PathBuf {
    let rel = src.strip_prefix(zeek_dir()).unwrap();
    let out = dir.join(rel);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, unmasked(&std::fs::read_to_string(src).unwrap(), TS)).unwrap();
    out
}

/// Every record: (name, type, rdata) -> (count, ttl, first, last, origin).
type Records = BTreeMap<(String, String, String), (u64, u32, u64, u64, Origin)>;

fn records(store: &Store) -> Records {
    store
        .records(&Selector::All, &Filter::default())
        .map(|r| {
            let r = r.unwrap();
            let row = pdns_sensor::dump::Row::record(&r);
            (
                (row.name, row.rtype, row.data),
                (
                    r.value.count,
                    r.value.ttl,
                    r.value.first,
                    r.value.last,
                    r.value.origin,
                ),
            )
        })
        .collect()
}

/// Every negative answer: (name, qtype, rcode) -> count.
fn negatives(store: &Store) -> BTreeMap<(String, String, String), u64> {
    common::negatives(store)
        .into_iter()
        .map(|(n, t, r, c)| ((n, t, r), c))
        .collect()
}

fn reader(db: &Path) -> Store {
    Store::open_reader(db).unwrap()
}

/// Counts with every line accounted for exactly once.
fn assert_accounted(stats: &ZeekStats) {
    assert_eq!(
        stats.lines,
        stats.lines_imported + stats.lines_skipped(),
        "every data line is imported or skipped once: {stats:?}"
    );
}

const MALFORMED: [LineSkip; 7] = [
    LineSkip::NoHeader,
    LineSkip::ColumnCount,
    LineSkip::BadEscape,
    LineSkip::BadJson,
    LineSkip::BadTs,
    LineSkip::BadValue,
    LineSkip::TooLong,
];

fn malformed(stats: &ZeekStats) -> u64 {
    MALFORMED.iter().map(|r| stats.line_skipped(*r)).sum()
}

#[test]
fn every_baseline_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let mut data_lines = 0;
    for log in baselines() {
        let name = log.strip_prefix(zeek_dir()).unwrap().display().to_string();
        let cut = name.ends_with(".cut") || name.contains("dns.dnssec/");
        // As shipped: masked timestamps are counted, nothing fails.
        let db = tmp.path().join(format!("raw-{}", name.replace('/', "_")));
        let report = import(&db, std::slice::from_ref(&log));
        let s = &report.import.stats;
        assert_accounted(s);
        assert_eq!(report.import.files_failed, 0, "{name}");
        if name.ends_with(".json.log") {
            assert_eq!(malformed(s), 0, "{name}: {s:?}");
            assert!(s.lines_imported > 0, "{name}");
        } else if cut {
            // zeek-cut output: no usable header, reported, nothing stored.
            assert!(
                s.header_errors + s.line_skipped(LineSkip::NoHeader) > 0,
                "{name}: {s:?}"
            );
            assert_eq!(s.lines_imported, 0, "{name}");
        } else {
            assert_eq!(s.line_skipped(LineSkip::BadTs), s.lines, "{name}: {s:?}");
        }
        // Unmasked: no malformed line at all (cut files aside).
        let copy = write_unmasked(&log, &tmp.path().join("unmasked"));
        let db = tmp.path().join(format!("fixed-{}", name.replace('/', "_")));
        let report = import(&db, &[copy]);
        let s = &report.import.stats;
        assert_accounted(s);
        if !cut {
            assert_eq!(malformed(s), 0, "{name}: {s:?}");
            assert_eq!(s.header_errors, 0, "{name}");
            assert!(s.lines > 0, "{name}");
        }
        data_lines += s.lines;
    }
    assert!(data_lines >= 45, "only {data_lines} data lines read");
}

/// The pairs of `pairs.tsv` with a stock dns.log (the capture, the log,
/// the DNS ports Zeek read it on).
fn pairs() -> Vec<(PathBuf, PathBuf, Vec<u16>)> {
    let data = common::testdata();
    let text = std::fs::read_to_string(data.join("pairs.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|row| {
            let cols: Vec<&str> = row.split('\t').collect();
            let (log, pcap) = (cols[0], cols[1]);
            if log == "-" {
                return None; // dns-inverse-query: Zeek writes no log
            }
            let ports = if pcap.contains("mdns") {
                vec![53, 5353]
            } else {
                vec![53]
            };
            Some((data.join(pcap), data.join(log), ports))
        })
        .collect()
}

/// Record types whose rdata Zeek logs in full (MX minus its preference).
fn zeek_expressible(rtype: &str) -> bool {
    matches!(
        rtype,
        "A" | "AAAA" | "CNAME" | "NS" | "PTR" | "TXT" | "SPF" | "MX"
    )
}

/// An MX rdata without its preference (Zeek drops it; imports store 0).
fn comparable(key: &(String, String, String)) -> (String, String, String) {
    let (n, t, d) = key.clone();
    if t == "MX" {
        let exchange = d.split_once(' ').map_or(d.clone(), |(_, x)| x.to_string());
        return (n, t, exchange);
    }
    (n, t, d)
}

/// Differential: the store `import-zeek` builds from a baseline and the one
/// `ingest` builds from its capture agree on every (name, type, rdata) Zeek
/// can express, with the same counts and TTLs. Known exceptions:
///
/// - types Zeek does not render in full (RRSIG, DNSKEY, DS, NSEC*, SSHFP,
///   LOC, WKS, TYPE65534, ...): only on the wire side (`zeek_expressible`);
/// - MX: Zeek drops the preference, the import stores 0; compared by
///   exchange only;
/// - tunnel pairs: their answers travel only in tunnels the decoder does
///   not open (GRE in UDP, PPTP's PPP in GRE, GTP), or they hold queries
///   only (GRE, triple VXLAN): the wire store is empty and only the import
///   has data (DNS in the tunnels it opens is compared with tshark and in
///   `tunnels.rs`);
/// - the two `dnssec/*.log` baselines and the `.cut` file: zeek-cut output
///   without a usable header (not stock), nothing imported;
/// - a reply Zeek logged without its query name (`notify`: the query was
///   not seen): the wire path files its NODATA, the import cannot;
/// - rejected replies (REFUSED with no records) and referrals/TC=1 replies:
///   the wire path tells them apart, the import counts rejected lines and
///   treats an answerless NOERROR as NODATA (none occurs in these pairs);
/// - chains Zeek flattens: a CNAME chain is rebuilt hop by hop from the
///   order of the answers, which matches the wire in every pair here.
#[test]
fn differential_against_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let mut compared_records = 0;
    let mut compared_negatives = 0;
    let mut pairs_compared = 0;
    for (i, (pcap, log, ports)) in pairs().into_iter().enumerate() {
        let name = log.strip_prefix(zeek_dir()).unwrap().display().to_string();
        if name.ends_with(".cut") || name.contains("dns.dnssec/") {
            continue;
        }
        let copy = write_unmasked(&log, tmp.path());
        let db = tmp.path().join(format!("db{i}"));
        import(&db, &[copy]);
        let zeek = reader(&db);
        let wire = common::ingest_with(std::slice::from_ref(&pcap), |a| {
            a.pipeline.ports = ports.clone()
        });
        let wire = wire.store();
        let (zr, wr) = (records(&zeek), records(&wire));
        let (zn, wn) = (negatives(&zeek), negatives(&wire));
        if pcap.to_string_lossy().contains("/tunnels/") {
            assert!(
                wr.is_empty() && wn.is_empty(),
                "{name}: these tunnels are not opened, or carry queries only"
            );
            continue;
        }
        pairs_compared += 1;
        let wire_by: BTreeMap<_, _> = wr.iter().map(|(k, v)| (comparable(k), *v)).collect();
        let zeek_by: BTreeMap<_, _> = zr.iter().map(|(k, v)| (comparable(k), *v)).collect();
        for (k, z) in &zeek_by {
            let w = wire_by.get(k).unwrap_or_else(|| {
                panic!("{name}: imported {k:?} is not in the ingested store {wr:#?}")
            });
            assert_eq!(
                (z.0, z.1),
                (w.0, w.1),
                "{name}: {k:?} count/ttl (zeek, wire)"
            );
            assert_eq!(z.4, Origin::ZEEK, "{name}: {k:?} origin");
            if name.ends_with(".json.log") {
                // Real timestamps: same second (query time vs reply time).
                assert_eq!((z.2, z.3), (w.2, w.3), "{name}: {k:?} first/last");
            }
            compared_records += 1;
        }
        for k in wire_by.keys() {
            if zeek_expressible(&k.1) {
                assert!(
                    zeek_by.contains_key(k),
                    "{name}: ingested {k:?} missing from the import"
                );
            }
        }
        for (k, n) in &zn {
            assert_eq!(
                wn.get(k),
                Some(n),
                "{name}: imported negative {k:?} (wire {wn:?})"
            );
            compared_negatives += 1;
        }
        let wire_only: Vec<_> = wn.keys().filter(|k| !zn.contains_key(*k)).collect();
        let expected: Vec<(String, String, String)> = if name.contains("dns.notify/") {
            vec![("aei.mpg.de.".into(), "DS".into(), "NODATA".into())]
        } else {
            vec![]
        };
        assert_eq!(
            wire_only,
            expected.iter().collect::<Vec<_>>(),
            "{name}: negatives only on the wire"
        );
    }
    eprintln!(
        "differential: {pairs_compared} pairs, {compared_records} records and {compared_negatives} negative answers agree"
    );
    assert!(pairs_compared >= 20, "compared {pairs_compared} pairs");
    assert!(compared_records >= 20 && compared_negatives >= 4);
}

/// Writes a JSON dns.log as Zeek's TSV writer would (default separators,
/// `\xNN` escapes, `-` for missing keys, `(empty)` for empty arrays).
fn json_to_tsv(json: &str) -> String {
    let objects: Vec<serde_json::Map<String, serde_json::Value>> = json
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut fields: Vec<String> = Vec::new();
    for o in &objects {
        for k in o.keys() {
            if !fields.contains(k) {
                fields.push(k.clone());
            }
        }
    }
    // A JSON string is text under the HEX escape policy: decode its
    // `\\xNN` and `\\\\` to the raw bytes, then escape those for TSV.
    let escape = |s: &str, in_set: bool| -> String {
        let src = s.as_bytes();
        let mut raw = Vec::new();
        let mut i = 0;
        while i < src.len() {
            if src[i] == b'\\' && src.get(i + 1) == Some(&b'\\') {
                raw.push(b'\\');
                i += 2;
            } else if src[i] == b'\\'
                && src.get(i + 1) == Some(&b'x')
                && let Some(v) = s
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                raw.push(v);
                i += 4;
            } else {
                raw.push(src[i]);
                i += 1;
            }
        }
        let mut out = String::new();
        for b in raw {
            match b {
                b'\\' => out.push_str("\\\\"),
                b',' if in_set => out.push_str("\\x2c"),
                b'\t' | 0..0x20 | 0x7f..=0xff => out.push_str(&format!("\\x{b:02x}")),
                _ => out.push(b as char),
            }
        }
        if out == "-" || out == "(empty)" {
            out = format!("\\x{:02x}{}", out.as_bytes()[0], &out[1..]);
        }
        out
    };
    let scalar = |key: &str, v: &serde_json::Value, in_set: bool| -> String {
        match v {
            serde_json::Value::Bool(b) => if *b { "T" } else { "F" }.to_string(),
            serde_json::Value::Number(n) if key == "ts" || key == "rtt" || key == "TTLs" => {
                format!("{:.6}", n.as_f64().unwrap())
            }
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => escape(s, in_set),
            other => panic!("unexpected {other}"),
        }
    };
    let mut out = String::from(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n",
    );
    out.push_str(&format!("#fields\t{}\n", fields.join("\t")));
    let types: Vec<&str> = fields
        .iter()
        .map(|f| match f.as_str() {
            "ts" => "time",
            "answers" | "auth" | "addl" => "vector[string]",
            "TTLs" => "vector[interval]",
            _ => "string",
        })
        .collect();
    out.push_str(&format!("#types\t{}\n", types.join("\t")));
    for o in &objects {
        let cols: Vec<String> = fields
            .iter()
            .map(|f| match o.get(f) {
                None | Some(serde_json::Value::Null) => "-".to_string(),
                Some(serde_json::Value::Array(a)) if a.is_empty() => "(empty)".to_string(),
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .map(|v| scalar(f, v, true))
                    .collect::<Vec<_>>()
                    .join(","),
                Some(v) => scalar(f, v, false),
            })
            .collect();
        out.push_str(&cols.join("\t"));
        out.push('\n');
    }
    out
}

#[test]
fn json_and_tsv_of_the_same_data_give_identical_stores() {
    let tmp = tempfile::tempdir().unwrap();
    // The doc logs, plus lines that exercise escapes and CNAME chains.
    let extra = concat!(
        r#"{"ts":1774911650.5,"query":"a,b.example","qtype":1,"qtype_name":"A","rcode":0,"rcode_name":"NOERROR","answers":["c\\x2cd.example","192.0.2.7"],"TTLs":[30.0,60.0],"rejected":false}"#,
        "\n",
        r#"{"ts":1774911651.0,"query":"t.example","qtype":16,"rcode":0,"answers":["TXT 7 a,b c\\d"],"TTLs":[5.0],"rejected":false}"#,
        "\n",
        r#"{"ts":1774911652.0,"query":"nx.example","qtype":28,"rcode":3,"rcode_name":"NXDOMAIN","rejected":false}"#,
        "\n",
    );
    let mut compared = 0;
    for name in ["dns.json.log", "dns.auth-addl.json.log"] {
        let json = std::fs::read_to_string(zeek_dir().join("doc.reference.logs.dns").join(name))
            .unwrap()
            + extra;
        let json_path = tmp.path().join(format!("{name}.json"));
        let tsv_path = tmp.path().join(format!("{name}.tsv"));
        std::fs::write(&json_path, &json).unwrap();
        std::fs::write(&tsv_path, json_to_tsv(&json)).unwrap();
        let (a, b) = (
            tmp.path().join(format!("{name}-a")),
            tmp.path().join(format!("{name}-b")),
        );
        let ra = import(&a, &[json_path]);
        let rb = import(&b, &[tsv_path]);
        assert_eq!(ra.import.stats, rb.import.stats, "{name}");
        assert_eq!(malformed(&ra.import.stats), 0);
        let (sa, sb) = (reader(&a), reader(&b));
        let recs = records(&sa);
        assert_eq!(recs, records(&sb), "{name}");
        assert_eq!(negatives(&sa), negatives(&sb), "{name}");
        assert!(recs.contains_key(&("c,d.example.".into(), "A".into(), "192.0.2.7".into())));
        assert!(recs.contains_key(&("t.example.".into(), "TXT".into(), r#""a,b c\\d""#.into())));
        assert_eq!(
            recs[&("zeek.org.".into(), "A".into(), "192.0.78.150".into())],
            (1, 60, 1774911641, 1774911641, Origin::ZEEK)
        );
        compared += recs.len();
    }
    assert!(compared >= 8);
}

// ---------------------------------------------------------------------------
// Generated logs

/// The generator of the `zeek-import` benchmark: stock 8.x header and
/// lines, and a resolver-like mix (see its module doc).
#[path = "../../bench/src/zeeklog.rs"]
mod zeeklog;

use zeeklog::HEADER;

/// One stock dns.log line.
fn log_line(
    ts: u64,
    query: &str,
    qtype: (u16, &str),
    rcode: (u16, &str),
    answers: &[String],
    ttls: &[u32],
) -> String {
    let mut out = Vec::new();
    zeeklog::line(&mut out, ts, query, qtype, rcode, answers, ttls).unwrap();
    String::from_utf8(out).unwrap()
}

/// `lines` lines over `distinct` names from `ts0` (header included).
fn generate(lines: usize, distinct: usize, ts0: u64) -> String {
    let mut out = Vec::new();
    zeeklog::generate(&mut out, lines as u64, distinct as u64, ts0).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn generated_log_imports_as_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("dns.log");
    std::fs::write(&log, generate(2000, 300, TS)).unwrap();
    let db = tmp.path().join("db");
    let r = import(&db, &[log]);
    let s = &r.import.stats;
    assert_accounted(s);
    assert_eq!(s.lines, 2000);
    assert_eq!(s.lines_imported, 2000);
    assert_eq!(s.lines_skipped(), 0);
    let store = reader(&db);
    let recs = records(&store);
    // A CNAME hop and the address behind it, owned by the CNAME target.
    assert!(
        recs.keys()
            .any(|(n, t, d)| n.starts_with("host") && t == "CNAME" && d.starts_with("edge"))
    );
    assert!(
        recs.keys()
            .any(|(n, t, _)| n.starts_with("edge") && t == "A")
    );
    assert!(
        recs.keys()
            .any(|(_, t, d)| t == "TXT" && d == "\"v=spf1 -all\"")
    );
    let total: u64 = recs.values().map(|v| v.0).sum();
    assert_eq!(total, s.records);
    let negs = negatives(&store);
    assert!(negs.keys().any(|(_, t, r)| t == "A" && r == "NXDOMAIN"));
    assert!(negs.keys().any(|(_, t, r)| t == "AAAA" && r == "NODATA"));
    assert_eq!(negs.values().sum::<u64>(), s.negatives);
}

// ---------------------------------------------------------------------------
// Idempotence and resumption

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn binary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pdns-sensor"));
    c.env("RUST_LOG", "info").env_remove("PDNS_DB");
    c
}

#[test]
fn importing_the_same_content_twice_counts_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    for log in baselines() {
        write_unmasked(&log, &dir);
    }
    let db = tmp.path().join("db");
    let first = import(&db, std::slice::from_ref(&dir));
    assert_eq!(
        first.import.files_imported, 29,
        "every baseline is found by the directory walk"
    );
    let before = records(&reader(&db));
    let negs_before = negatives(&reader(&db));
    assert!(!before.is_empty());

    let second = import(&db, std::slice::from_ref(&dir));
    assert_eq!(second.import.files_imported, 0);
    assert_eq!(second.import.files_already_imported, 29);
    assert_eq!(second.import.stats.lines, 0);

    // The same content gzipped and renamed (as Zeek's rotation does) is
    // still the same file.
    let one = dir.join("scripts.base.protocols.dns.rrsig/dns.log");
    let rotated = tmp.path().join("dns.2024-01-01-00-00-00.log.gz");
    std::fs::write(&rotated, gzip(&std::fs::read(&one).unwrap())).unwrap();
    let third = import(&db, std::slice::from_ref(&rotated));
    assert_eq!(third.import.files_already_imported, 1);
    assert_eq!(records(&reader(&db)), before);
    assert_eq!(negatives(&reader(&db)), negs_before);

    // And the command says so.
    let out = binary()
        .args(["import-zeek", "--db"])
        .arg(&db)
        .arg(&rotated)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already imported"), "{err}");
    assert!(err.contains("30 already imported, skipped"), "{err}");
}

#[test]
fn an_interrupted_import_resumes_without_double_counting() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("dns.big.log");
    std::fs::write(&log, generate(60_000, 50_000, TS)).unwrap();
    let sha = pdns_sensor::source::zeek::reader::hash_content(&log)
        .unwrap()
        .sha256;
    let key = pdns_sensor::source::zeek::meta::file_key(&sha);

    // Reference: one clean import.
    let clean = tmp.path().join("clean");
    import(&clean, std::slice::from_ref(&log));

    // Killed mid-file: one key per batch makes the run slow enough to be
    // caught with a `partial` entry committed.
    let db = tmp.path().join("db");
    let mut child = binary()
        .args(["import-zeek", "--quiet", "--aggregate-entries", "1", "--db"])
        .arg(&db)
        .arg(&log)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut caught_partial = false;
    while Instant::now() < deadline {
        if let Ok(store) = Store::open_reader(&db)
            && let Ok(Some(v)) = store.meta_get(&key)
        {
            caught_partial = String::from_utf8_lossy(&v).contains("\"partial\"");
            if caught_partial {
                break;
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        caught_partial,
        "the import finished before it could be interrupted"
    );

    let resumed = import(&db, std::slice::from_ref(&log));
    assert_eq!(resumed.import.files_resumed, 1);
    assert!(
        resumed.import.stats.lines < 60_000,
        "resumed mid-file, not from the start"
    );
    assert_eq!(records(&reader(&db)), records(&reader(&clean)));
    assert_eq!(negatives(&reader(&db)), negatives(&reader(&clean)));
    let again = import(&db, &[log]);
    assert_eq!(again.import.files_already_imported, 1);
}

// ---------------------------------------------------------------------------
// Malformed logs

#[test]
fn malformed_logs_are_reported_by_line_and_the_rest_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(zeek_dir().join("scripts.base.protocols.dns.rrsig/dns.log"))
        .unwrap();
    let base = unmasked(&base, TS);
    let lines: Vec<&str> = base.lines().collect();
    // Lines 1-9 are the banner and header, 10-13 data, 14 #close.
    assert!(lines[9].starts_with("1600000000.000000\t"));
    let join = |ls: &[String]| ls.join("\n") + "\n";
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();

    // Bad header: #fields without `answers`; a good header block follows.
    let mut bad_header = owned.clone();
    bad_header[7] = bad_header[7].replace("\tanswers\t", "\tanswerz\t");
    bad_header.extend(owned[1..13].iter().cloned());
    let bad_header_path = tmp.path().join("bad-header.log");
    std::fs::write(&bad_header_path, join(&bad_header)).unwrap();

    // Wrong column count on line 11.
    let mut columns = owned.clone();
    columns[10] = columns[10].replacen("\tudp\t", "\t", 1);
    let columns_path = tmp.path().join("columns.log");
    std::fs::write(&columns_path, join(&columns)).unwrap();

    // A bad escape on line 12.
    let mut escapes = owned.clone();
    escapes[11] = escapes[11].replace("workfamily", "work\\qfamily");
    let escapes_path = tmp.path().join("escapes.log");
    std::fs::write(&escapes_path, join(&escapes)).unwrap();

    // A truncated gzip of a generated log.
    let big = generate(3000, 3000, TS);
    let gz = gzip(big.as_bytes());
    let truncated_path = tmp.path().join("dns.truncated.log.gz");
    std::fs::write(&truncated_path, &gz[..gz.len() * 2 / 3]).unwrap();

    // Binary garbage, and a good file after everything.
    let garbage_path = tmp.path().join("garbage.log");
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage_path, garbage).unwrap();
    let good_path = tmp.path().join("good.log");
    std::fs::write(&good_path, generate(100, 100, TS + 5000)).unwrap();

    let db = tmp.path().join("db");
    let out = binary()
        .args(["import-zeek", "--db"])
        .arg(&db)
        .args([
            &bad_header_path,
            &columns_path,
            &escapes_path,
            &truncated_path,
            &garbage_path,
            &good_path,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let at = |p: &Path, line: usize| format!("{}:{line}:", p.display());
    for want in [
        at(&bad_header_path, 8),
        at(&bad_header_path, 10),
        at(&columns_path, 11),
        at(&escapes_path, 12),
    ] {
        assert!(err.contains(&want), "no report for {want} in:\n{err}");
    }
    assert!(err.contains("lacks answers"), "{err}");
    assert!(err.contains("bad escape"), "{err}");
    assert!(err.contains("wrong number of columns"), "{err}");
    assert!(err.contains("truncated or corrupt gzip"), "{err}");
    assert!(err.contains("1 damaged"), "{err}");

    let store = reader(&db);
    let recs = records(&store);
    let names: BTreeSet<&str> = recs.keys().map(|k| k.0.as_str()).collect();
    // Every undamaged line of each damaged file is in.
    assert!(names.contains("virgo.sas.upenn.edu."));
    assert!(names.contains("quasar.sas.upenn.edu."));
    assert!(
        names.contains("workfamily.sas.upenn.edu."),
        "the second header block and the other files"
    );
    // virgo: 2 (bad-header, second block) + 2 (columns) + 2 (escapes) minus
    // line 11 of columns (virgo's second line) = 5.
    assert_eq!(
        recs[&(
            "virgo.sas.upenn.edu.".into(),
            "A".into(),
            "128.91.234.142".into()
        )]
            .0,
        5
    );
    // The truncated gzip kept a prefix; the good file is complete.
    let generated: u64 = recs
        .iter()
        .filter(|(k, _)| k.0.starts_with("host") || k.0.starts_with("edge"))
        .map(|(_, v)| v.0)
        .sum();
    assert!(generated > 100, "lines before the gzip damage were kept");

    // Re-running skips everything that was read, damaged files included.
    let again = import(
        &db,
        &[
            bad_header_path,
            columns_path,
            escapes_path,
            truncated_path,
            good_path,
        ],
    );
    assert_eq!(again.import.files_already_imported, 5);
    assert_eq!(records(&reader(&db)), recs);
}

// ---------------------------------------------------------------------------
// Follow mode

/// Lines of the follow tests: `q<i>.follow.test A 10.x.y.z`, one record
/// per name, so the store's count per name is the number of lines written.
fn follow_line(i: u32) -> String {
    log_line(
        TS + u64::from(i),
        &format!("q{i}.follow.test"),
        (1, "A"),
        (0, "NOERROR"),
        &[format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)],
        &[60],
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn lines_of(range: std::ops::Range<u32>) -> String {
    range.map(follow_line).collect()
}

/// name -> count of the follow test records.
fn follow_counts(store: &Store) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for ((name, rtype, _), v) in records(store) {
        assert_eq!(rtype, "A");
        *out.entry(name).or_default() += v.0;
    }
    out
}

fn expect_one(range: std::ops::Range<u32>) -> BTreeMap<String, u64> {
    expect(&[range, 0..0])
}

fn expect(ranges: &[std::ops::Range<u32>]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in ranges {
        for i in r.clone() {
            *out.entry(format!("q{i}.follow.test.")).or_default() += 1;
        }
    }
    out
}

/// Waits until the store holds exactly `want` (or panics after a while).
fn wait_for(db: &Path, want: &BTreeMap<String, u64>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = BTreeMap::new();
    while Instant::now() < deadline {
        if let Ok(store) = Store::open_reader(db) {
            last = follow_counts(&store);
            if &last == want {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let missing: Vec<_> = want
        .iter()
        .filter(|(k, v)| last.get(*k) != Some(v))
        .take(5)
        .collect();
    let extra: Vec<_> = last
        .iter()
        .filter(|(k, v)| want.get(*k) != Some(v))
        .take(5)
        .collect();
    panic!("{what}: store never matched; missing/different {missing:?}, unexpected {extra:?}");
}

struct Follower {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<follow::FollowReport>,
}

impl Follower {
    fn start(db: &Path, log: &Path) -> Follower {
        let stop = Arc::new(AtomicBool::new(false));
        let (db, log, flag) = (db.to_path_buf(), log.to_path_buf(), Arc::clone(&stop));
        let handle = std::thread::spawn(move || {
            let store = Arc::new(Store::open(&db).unwrap());
            let config = FollowConfig {
                poll_interval: Duration::from_millis(50),
                flush_interval: Duration::from_millis(200),
                ..FollowConfig::default()
            };
            follow::follow(store, &log, &config, &flag, |_| {}).unwrap()
        });
        Follower { stop, handle }
    }

    fn stop(self) -> follow::FollowReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

#[test]
fn follow_across_appends_rotations_truncation_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("current");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("dns.log");
    let db = tmp.path().join("db");

    // A file with a repeated line; the follower starts at its beginning.
    std::fs::write(
        &log,
        format!("{HEADER}{}{}", lines_of(0..100), follow_line(0)),
    )
    .unwrap();
    let mut want = expect(&[0..100, 0..1]);
    let f = Follower::start(&db, &log);
    wait_for(&db, &want, "initial file");

    // Appends, with a partial line that waits for its newline.
    let partial = follow_line(150);
    let (head, tail) = partial.split_at(40);
    append(&log, &(lines_of(100..150) + head));
    want.extend(expect_one(100..150));
    wait_for(&db, &want, "appended lines");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        follow_counts(&reader(&db)),
        want,
        "a partial line is not imported"
    );
    append(&log, tail);
    want.extend(expect_one(150..151));
    wait_for(&db, &want, "completed partial line");

    // Restart mid-file, with lines appended while stopped.
    let r1 = f.stop();
    assert!(!r1.resumed);
    append(&log, &lines_of(151..200));
    let f = Follower::start(&db, &log);
    want.extend(expect_one(151..200));
    wait_for(&db, &want, "after a restart");

    // Rotation: lines written just before the rename, then a new file.
    append(&log, &lines_of(200..210));
    let rotated1 = logs.join("dns.2024-01-01-00-00-00.log");
    std::fs::rename(&log, &rotated1).unwrap();
    std::fs::write(&log, format!("{HEADER}{}", lines_of(300..321))).unwrap();
    want.extend(expect(&[200..210, 300..321]));
    wait_for(&db, &want, "after a rotation");

    // Truncation in place (copytruncate), rewritten shorter.
    std::fs::write(&log, format!("{HEADER}{}", lines_of(400..406))).unwrap();
    want.extend(expect_one(400..406));
    wait_for(&db, &want, "after a truncation");

    // Rotation while stopped: the old file is found by inode and finished.
    let r2 = f.stop();
    assert!(r2.resumed);
    assert_eq!((r2.rotations, r2.truncations), (1, 1), "{r2:?}");
    append(&log, &lines_of(500..510));
    let rotated2 = logs.join("dns.2024-01-01-01-00-00.log");
    std::fs::rename(&log, &rotated2).unwrap();
    std::fs::write(&log, format!("{HEADER}{}", lines_of(600..611))).unwrap();
    let f = Follower::start(&db, &log);
    want.extend(expect(&[500..510, 600..611]));
    wait_for(&db, &want, "after a rotation while stopped");
    let r3 = f.stop();
    assert_eq!(r3.rotations, 1);

    // Two rotations while stopped: the file in between is found and read
    // whole. A gzipped copy of the older one (a rotation that compresses)
    // and another log are not read.
    append(&log, &lines_of(700..705));
    let rotated3 = logs.join("dns.2024-01-01-02-00-00.log");
    std::fs::rename(&log, &rotated3).unwrap();
    std::fs::write(&log, format!("{HEADER}{}", lines_of(710..720))).unwrap();
    let rotated4 = logs.join("dns.2024-01-01-03-00-00.log");
    std::fs::rename(&log, &rotated4).unwrap();
    std::fs::write(&log, format!("{HEADER}{}", lines_of(730..735))).unwrap();
    let rotated3_gz = logs.join("dns.2024-01-01-02-00-00.log.gz");
    std::fs::write(&rotated3_gz, gzip(&std::fs::read(&rotated3).unwrap())).unwrap();
    std::fs::write(
        logs.join("conn.2024-01-01-03-00-00.log"),
        format!("{HEADER}{}", lines_of(790..800)),
    )
    .unwrap();
    let f = Follower::start(&db, &log);
    want.extend(expect(&[700..705, 710..720, 730..735]));
    wait_for(&db, &want, "after two rotations while stopped");
    let r = f.stop();
    assert_eq!((r.rotations, r.files_caught_up), (1, 1), "{r:?}");

    // copytruncate while stopped (logrotate's numbered copies): the lines
    // written after the saved position are read from the copy, and the
    // older copy, already read, is not read again.
    append(&log, &lines_of(740..745));
    std::fs::copy(&rotated4, logs.join("dns.log.2")).unwrap();
    std::fs::copy(&log, logs.join("dns.log.1")).unwrap();
    std::fs::write(&log, format!("{HEADER}{}", lines_of(750..755))).unwrap();
    let f = Follower::start(&db, &log);
    want.extend(expect(&[740..745, 750..755]));
    wait_for(&db, &want, "after copytruncate while stopped");

    // copytruncate while running, faster than a poll: the lines written
    // between the last read and the copy come from the copy, once.
    std::thread::sleep(Duration::from_millis(300));
    append(&log, &lines_of(760..765));
    std::fs::rename(logs.join("dns.log.1"), logs.join("dns.log.3")).unwrap();
    std::fs::copy(&log, logs.join("dns.log.1")).unwrap();
    std::fs::write(&log, format!("{HEADER}{}", lines_of(770..775))).unwrap();
    want.extend(expect(&[760..765, 770..775]));
    wait_for(&db, &want, "after copytruncate while running");
    let r = f.stop();
    assert_eq!(r.truncations, 2, "{r:?}");

    // Exact final counts, and the same after one more idle restart.
    let f = Follower::start(&db, &log);
    std::thread::sleep(Duration::from_millis(500));
    let r4 = f.stop();
    assert_eq!(r4.stats.lines, 0, "nothing read twice");
    assert_eq!(follow_counts(&reader(&db)), want);
    assert_eq!(want["q0.follow.test."], 2);

    // Files the follower finished count as imported for a batch import,
    // gzipped by the rotation or not.
    let gz = logs.join("dns.2024-01-01-01-00-00.log.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&rotated2).unwrap())).unwrap();
    let batch = import(&db, &[rotated1, gz]);
    assert_eq!(batch.import.files_already_imported, 2, "{:?}", batch.import);
    assert_eq!(follow_counts(&reader(&db)), want);

    // The file a follower stands in is its own: a batch import of it, with
    // lines the follower has not read yet, skips it.
    append(&log, &lines_of(800..810));
    let batch = import(&db, std::slice::from_ref(&log));
    assert_eq!(batch.import.files_already_imported, 1, "{:?}", batch.import);
    assert_eq!(follow_counts(&reader(&db)), want);

    // Rotated while stopped into an archive elsewhere, gzipped (zeekctl):
    // the follower cannot find it, and `import-zeek` of the archive reads
    // only the lines after the follower's position, once.
    let archive = tmp.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let archived = archive.join("dns.00:00:00-01:00:00.log.gz");
    std::fs::write(&archived, gzip(&std::fs::read(&log).unwrap())).unwrap();
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, format!("{HEADER}{}", lines_of(820..825))).unwrap();
    let f = Follower::start(&db, &log);
    want.extend(expect_one(820..825));
    wait_for(&db, &want, "after a rotation to an archive while stopped");
    f.stop();
    let batch = import(&db, std::slice::from_ref(&archived));
    assert_eq!(
        (batch.import.files_resumed, batch.import.files_imported),
        (1, 1),
        "{:?}",
        batch.import
    );
    want.extend(expect_one(800..810));
    assert_eq!(follow_counts(&reader(&db)), want);
    let batch = import(&db, &[archived]);
    assert_eq!(batch.import.files_already_imported, 1, "{:?}", batch.import);
    assert_eq!(follow_counts(&reader(&db)), want);
}

/// A child process killed when dropped, so that a failing test does not
/// leave it running (holding the test's output open).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

#[test]
fn follow_binary_survives_sigkill_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("dns.log");
    let db = tmp.path().join("db");
    std::fs::write(&log, format!("{HEADER}{}", lines_of(0..50))).unwrap();
    std::fs::write(
        logs.join("dns.2024-01-01-00-00-00.log"),
        format!("{HEADER}{}", lines_of(900..910)),
    )
    .unwrap();
    // The directory is imported too: its archive is read, and the live
    // log in it is left to the follower (even before it has a position).
    let spawn = || {
        Reaped(
            binary()
                .args(["import-zeek", "--db"])
                .arg(&db)
                .arg(&logs)
                .arg("--follow")
                .arg(&log)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    let mut child = spawn();
    let mut want = expect(&[0..50, 900..910]);
    wait_for(&db, &want, "first lines");
    append(&log, &lines_of(50..100));
    want.extend(expect_one(50..100));
    wait_for(&db, &want, "appended lines");
    // Crash: whatever was not flushed is lost with its position, together.
    append(&log, &lines_of(100..120));
    child.kill().unwrap();
    child.wait().unwrap();
    append(&log, &lines_of(120..150));
    let mut child = spawn();
    want.extend(expect_one(100..150));
    wait_for(&db, &want, "after SIGKILL and restart");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(exit.success(), "{err}");
    assert!(err.contains("resuming at line"), "{err}");
    assert!(err.contains("followed for"), "summary printed: {err}");
    assert_eq!(follow_counts(&reader(&db)), want);
}

#[test]
fn wire_and_zeek_observations_of_a_record_merge_and_dump_shows_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    // The capture behind the doc JSON log, then the log itself.
    let mut a = common::args(&db, &[common::pcap("zeek/dns/tm1t.pcap")]);
    a.quiet = true;
    pdns_sensor::cli::ingest::run(&a).unwrap();
    import(
        &db,
        &[zeek_dir().join("doc.reference.logs.dns/dns.json.log")],
    );
    let recs = records(&reader(&db));
    let v = recs[&("zeek.org.".into(), "A".into(), "192.0.78.150".into())];
    assert_eq!(
        (v.0, v.4),
        (2, Origin::WIRE.union(Origin::ZEEK)),
        "one key, both origins"
    );
    let negs = negatives(&reader(&db));
    assert_eq!(
        negs[&("zeek.org.".into(), "AAAA".into(), "NODATA".into())],
        2
    );

    let out = binary()
        .args(["dump", "--db"])
        .arg(&db)
        .args(["--name", "zeek.org"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(table.lines().next().unwrap().ends_with("ORIGIN"), "{table}");
    assert!(
        table.contains("192.0.78.150") && table.contains("wire,zeek"),
        "{table}"
    );
    let out = binary()
        .args(["dump", "--json", "--db"])
        .arg(&db)
        .args(["--name", "zeek.org"])
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains(r#""origin":["wire","zeek"]"#), "{json}");
}
