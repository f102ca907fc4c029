//! Export to a real ClickHouse (Debian's 18.16, started by the test): the
//! schema `clickhouse-schema` prints runs there, and what sensors export
//! adds up, key for key, to what their local stores hold — after outages,
//! through the spool, and with `pdns-sensor export`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::clickhouse::{ClickHouse, Totals, central, merge};
use common::free_port;
use pdns_sensor::store::{Filter, Selector, Store};
use pdns_sensor::vocab::key;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sensor(args: &[&str]) -> Output {
    common::sensor_command().args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A key's merged aggregate, as both sides report it.
/// What a local store holds, by the same keys: records, index entries,
/// owner names (only `last` compared), negative answers.
struct Local {
    records: Totals,
    index: Totals,
    names: BTreeMap<Vec<u8>, u64>,
    negatives: Totals,
}

fn local(db: &Path) -> Local {
    let store = Store::open_reader(db).unwrap();
    let filter = Filter::default();
    let mut l = Local {
        records: Totals::new(),
        index: Totals::new(),
        names: BTreeMap::new(),
        negatives: Totals::new(),
    };
    for r in store.records(&Selector::All, &filter) {
        let r = r.unwrap();
        let mut k = Vec::new();
        key::record_key(&mut k, &r.owner, r.rtype, &r.rdata);
        let parsed = key::parse_record_key(&k).unwrap();
        let mut ik = Vec::new();
        if key::index_key(&mut ik, &parsed) {
            l.index.insert(ik, r.value);
        }
        let mut forward = Vec::new();
        pdns_sensor::vocab::name::forward(&r.owner, &mut forward);
        let last = l.names.entry(forward).or_default();
        *last = (*last).max(r.value.last);
        l.records.insert(k, r.value);
    }
    for n in store.negatives(&Selector::All, &filter) {
        let n = n.unwrap();
        let mut k = Vec::new();
        key::negative_key(&mut k, &n.qname, n.qtype, n.rcode);
        l.negatives.insert(k, n.value);
    }
    l
}

fn central_names(ch: &ClickHouse) -> BTreeMap<Vec<u8>, u64> {
    central(ch, "pdns_names", "names_key")
        .into_iter()
        .map(|(k, v)| (k, v.last))
        .collect()
}

/// Checks every central table against the local truth.
fn assert_central_equals(ch: &ClickHouse, want: &Local) {
    let records = central(ch, "pdns_records", "key");
    assert_eq!(records.len(), want.records.len(), "record keys");
    assert_eq!(records, want.records, "records");
    assert_eq!(central(ch, "pdns_rdata", "index_key"), want.index, "index");
    assert_eq!(central_names(ch), want.names, "names");
    assert_eq!(
        central(ch, "pdns_negative", "key"),
        want.negatives,
        "negatives"
    );
}

fn apply_schema(ch: &ClickHouse) {
    ok(&sensor(&[
        "clickhouse-schema",
        "--apply",
        &format!("http://127.0.0.1:{}/pdns", ch.http_port),
    ]));
}

/// Half of the captures, or the other half (overlapping in what they
/// hold: the same resolvers and names recur across files).
fn captures(half: usize) -> Vec<PathBuf> {
    common::all_pcaps()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == half)
        .map(|(_, p)| p)
        .collect()
}

fn ingest(db: &Path, files: &[PathBuf], extra: &[&str]) -> Output {
    let mut args = vec!["ingest", "--db", s(db), "--quiet"];
    args.extend_from_slice(extra);
    let files: Vec<&str> = files.iter().map(|f| s(f)).collect();
    args.extend(files);
    sensor(&args)
}

fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn two_sensors_add_up_key_for_key_to_their_local_stores() {
    let ch = ClickHouse::start();
    apply_schema(&ch);
    // Applying again changes nothing (IF NOT EXISTS everywhere).
    apply_schema(&ch);
    let dir = tempfile::tempdir().unwrap();
    let mut want = Local {
        records: Totals::new(),
        index: Totals::new(),
        names: BTreeMap::new(),
        negatives: Totals::new(),
    };
    for (half, sensor_id) in [(0, "resolver-a"), (1, "resolver-b")] {
        let db = dir.path().join(sensor_id);
        let stats_file = dir.path().join(format!("{sensor_id}.json"));
        ok(&ingest(
            &db,
            &captures(half),
            &[
                "--export-clickhouse",
                &ch.url("pdns"),
                "--sensor-id",
                sensor_id,
                "--flush-interval",
                "1",
                "--aggregate-entries",
                "50",
                "--stats-json",
                s(&stats_file),
            ],
        ));
        let report = stats(&stats_file);
        let export = &report["export"];
        assert_eq!(export["remaining"]["entries"], 0, "{export}");
        assert!(export["sent_batches"].as_u64().unwrap() > 1, "{export}");
        // One row per key and batch: what the store merged, ClickHouse
        // received.
        assert_eq!(
            export["sent_rows"].as_u64().unwrap(),
            report["records_written"].as_u64().unwrap()
                + report["negatives_written"].as_u64().unwrap(),
            "{report}"
        );
        let l = local(&db);
        merge(&mut want.records, &l.records);
        merge(&mut want.index, &l.index);
        merge(&mut want.negatives, &l.negatives);
        for (k, last) in l.names {
            let e = want.names.entry(k).or_default();
            *e = (*e).max(last);
        }
    }
    assert!(want.records.len() > 500, "{}", want.records.len());
    assert!(!want.negatives.is_empty());
    assert_central_equals(&ch, &want);
    // The readable columns say what the keys say.
    let www = ch.query(
        "SELECT rrname, rrtype, rdata FROM pdns.pdns_records WHERE rrtype = 1 \
         GROUP BY rrname, rrtype, rdata ORDER BY rrname LIMIT 1 FORMAT TabSeparated",
    );
    let f: Vec<&str> = www.trim().split('\t').collect();
    assert!(f[0].ends_with('.'), "{www}");
    assert!(f[2].parse::<std::net::Ipv4Addr>().is_ok(), "{www}");
    // Merging parts changes no answer.
    for table in ["pdns_records", "pdns_rdata", "pdns_names", "pdns_negative"] {
        ch.query(&format!("OPTIMIZE TABLE pdns.{table} FINAL"));
    }
    assert_central_equals(&ch, &want);
}

#[test]
fn an_outage_is_spooled_and_export_sends_it_later() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let stats_file = dir.path().join("stats.json");
    let port = free_port();
    let url = format!("http://pdns:s3cret@127.0.0.1:{port}/pdns");
    let stderr = ok(&ingest(
        &db,
        &captures(0),
        &[
            "--export-clickhouse",
            &url,
            "--export-drain-timeout",
            "1",
            "--flush-interval",
            "1",
            "--aggregate-entries",
            "100",
            "--stats-json",
            s(&stats_file),
        ],
    ));
    assert!(
        stderr.contains(&format!(
            "cannot reach ClickHouse at http://pdns@127.0.0.1:{port}/pdns"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
    let report = stats(&stats_file);
    let waiting = report["export"]["remaining"]["entries"].as_u64().unwrap();
    assert!(waiting > 1, "{report}");
    assert_eq!(report["export"]["sent_rows"], 0);
    assert_eq!(
        report["export"]["remaining"]["rows"].as_u64().unwrap(),
        report["records_written"].as_u64().unwrap() + report["negatives_written"].as_u64().unwrap(),
        "the spool holds every row written: {report}"
    );
    let before_second = local(&db);

    // A later write without export says the spool waits, and adds to the
    // store only.
    let again = ok(&ingest(&db, &captures(1), &[]));
    assert!(again.contains("waiting for export"), "{again}");
    assert!(local(&db).records.len() > before_second.records.len());

    // ClickHouse comes: `export` sends the spool.
    let ch = ClickHouse::start();
    apply_schema(&ch);
    let out = sensor(&[
        "export",
        "--db",
        s(&db),
        "--export-clickhouse",
        &ch.url("pdns"),
        "--stats-json",
        s(&dir.path().join("export.json")),
    ]);
    ok(&out);
    let sent = stats(&dir.path().join("export.json"));
    assert_eq!(sent["sent_batches"].as_u64().unwrap(), waiting, "{sent}");
    assert_eq!(sent["remaining"]["entries"], 0);
    // Only what was spooled went out: the second ingest did not export.
    assert_central_equals(&ch, &before_second);
    // Nothing left: a second `export` has nothing to do.
    let stderr = ok(&sensor(&[
        "export",
        "--db",
        s(&db),
        "--export-clickhouse",
        &ch.url("pdns"),
    ]));
    assert!(stderr.contains("the export spool is empty"), "{stderr}");
}

#[test]
fn what_is_wrong_with_the_target_is_said_at_start_up() {
    let ch = ClickHouse::start();
    let dir = tempfile::tempdir().unwrap();
    let files = &captures(0)[..2];
    let port = ch.http_port;
    let dead = free_port();
    for (url, says) in [
        (
            format!("http://pdns:s3cret@127.0.0.1:{dead}/pdns"),
            format!("cannot reach ClickHouse at http://pdns@127.0.0.1:{dead}/pdns"),
        ),
        (
            format!("http://pdns:wrong@127.0.0.1:{port}/pdns"),
            "refused the credentials (user \"pdns\")".to_string(),
        ),
        (
            format!("http://pdns:s3cret@127.0.0.1:{port}/pdns"),
            "database pdns does not exist".to_string(),
        ),
        (
            format!("http://pdns:s3cret@127.0.0.1:{port}/default"),
            "table default.pdns_in does not exist".to_string(),
        ),
        (
            format!("ftp://127.0.0.1:{port}"),
            "the scheme must be http or https".to_string(),
        ),
    ] {
        let db = dir.path().join(format!("db-{}", says.len()));
        // Required: refused, and nothing half-starts (no database made).
        let out = ingest(
            &db,
            files,
            &["--export-clickhouse", &url, "--export-required"],
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{url}: {stderr}");
        assert!(stderr.contains(&says), "{url}: {stderr}");
        assert!(
            !stderr.contains("s3cret") && !stderr.contains("wrong@"),
            "{stderr}"
        );
        assert!(
            !db.exists(),
            "{url}: a database was created before the refusal"
        );
        // Not required: the same words, and the data is stored locally
        // (and spooled) all the same — except for a URL that cannot work.
        let out = ingest(
            &db,
            files,
            &["--export-clickhouse", &url, "--export-drain-timeout", "1"],
        );
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&says), "{url}: {stderr}");
        if url.starts_with("ftp") {
            assert!(!out.status.success(), "{stderr}");
        } else {
            assert!(out.status.success(), "{url}: {stderr}");
            assert!(!local(&db).records.is_empty());
        }
    }
    // A table with a column of the wrong type is named.
    ch.query("CREATE DATABASE pdns");
    ch.query(
        "CREATE TABLE pdns.pdns_in (sensor String, key String, index_key String, names_key \
         String, rrname String, rrtype UInt16, rdata String, count UInt32, time_first DateTime, \
         time_last DateTime, ttl UInt32, origin UInt8) ENGINE = Null",
    );
    let out = ingest(
        &dir.path().join("typed"),
        files,
        &["--export-clickhouse", &ch.url("pdns"), "--export-required"],
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("column pdns.pdns_in.count is UInt32, expected UInt64"),
        "{stderr}"
    );
    assert!(
        stderr.contains("table pdns.pdns_negative_in does not exist"),
        "{stderr}"
    );
    // A sensor id that cannot be one, before anything is opened.
    let db = dir.path().join("unnamed");
    let out = ingest(
        &db,
        files,
        &["--export-clickhouse", &ch.url("pdns"), "--sensor-id", ""],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--sensor-id must be 1 to 255 bytes"),
        "{}",
        text(&out.stderr)
    );
    assert!(!db.exists());
}

#[test]
fn a_full_spool_stores_locally_and_counts_what_it_did_not_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let stats_file = dir.path().join("stats.json");
    let url = format!("http://127.0.0.1:{}/pdns", free_port());
    let out = ingest(
        &db,
        &captures(0),
        &[
            "--export-clickhouse",
            &url,
            "--export-spool-max",
            "4K",
            "--export-drain-timeout",
            "1",
            "--flush-interval",
            "1",
            "--aggregate-entries",
            "40",
            "--stats-json",
            s(&stats_file),
        ],
    );
    let stderr = ok(&out);
    assert!(stderr.contains("export spool full"), "{stderr}");
    let report = stats(&stats_file);
    let r = &report["export"]["remaining"];
    assert!(r["bytes"].as_u64().unwrap() <= 4096, "{report}");
    assert!(r["skipped_batches"].as_u64().unwrap() > 0, "{report}");
    // Every row is either waiting or counted as skipped.
    assert_eq!(
        r["rows"].as_u64().unwrap() + r["skipped_rows"].as_u64().unwrap(),
        report["records_written"].as_u64().unwrap() + report["negatives_written"].as_u64().unwrap(),
        "{report}"
    );
    // The local store has everything.
    let plain = tempfile::tempdir().unwrap();
    ok(&ingest(&plain.path().join("db"), &captures(0), &[]));
    assert_eq!(local(&db).records, local(&plain.path().join("db")).records);
}

#[test]
fn import_zeek_exports_what_it_imports() {
    let ch = ClickHouse::start();
    apply_schema(&ch);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // Zeek's baselines mask their timestamps: give each file a real one.
    let logs = dir.path().join("logs");
    let source = common::testdata().join("zeek-dnslog");
    for (i, entry) in std::fs::read_dir(&source).unwrap().enumerate() {
        let log = entry.unwrap().path().join("dns.log");
        let Ok(text) = std::fs::read_to_string(&log) else {
            continue;
        };
        let ts = 1_600_000_000 + 3600 * i as u64;
        let unmasked: String = text
            .lines()
            .map(|l| match l.strip_prefix("XXXXXXXXXX.XXXXXX") {
                Some(rest) => format!("{ts}.000000{rest}\n"),
                None => format!("{l}\n"),
            })
            .collect();
        let out = logs.join(format!("{i}"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("dns.log"), unmasked).unwrap();
    }
    ok(&sensor(&[
        "import-zeek",
        "--db",
        s(&db),
        "--quiet",
        "--export-clickhouse",
        &ch.url("pdns"),
        "--sensor-id",
        "zeek-archive",
        s(&logs),
    ]));
    let want = local(&db);
    // Zeek's baselines hold a few dozen answers.
    assert!(want.records.len() > 20, "{}", want.records.len());
    assert_central_equals(&ch, &want);
}
