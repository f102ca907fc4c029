//! `pdns-sensor backup`: a consistent copy while another process writes,
//! restored and read back; through a running writer (also on a path too
//! long for a Unix socket address) or, with none, by itself; clear errors.

mod common;
#[path = "live_support/pcap.rs"]
#[allow(dead_code)]
mod pcap;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pdns_sensor::store::retention::Retention;
use pdns_sensor::store::{Filter, Selector, Store, StoreOptions};
use pdns_sensor::vocab::observation::ObservationSink;
use pdns_sensor::vocab::value::{Origin, Value};
use pdns_sensor::vocab::{Rtype, name};

const SENSOR: &str = env!("CARGO_BIN_EXE_pdns-sensor");

fn sensor(args: &[&str]) -> Output {
    Command::new(SENSOR)
        .args(args)
        .env_remove("PDNS_DB")
        .env_remove("PDNS_SENSOR_TEST_NOW")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `rrname rrtype rdata -> count` from `dump --json`.
fn dump(db: &Path) -> BTreeMap<String, u64> {
    let out = sensor(&["dump", "--json", "--db", s(db)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                format!("{} {} {}", v["rrname"], v["rrtype"], v["rdata"][0]),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every record as (owner, rtype, rdata) -> value, from one selector.
fn values(store: &Store, sel: &Selector) -> BTreeMap<(Vec<u8>, u16, Vec<u8>), Value> {
    store
        .records(sel, &Filter::default())
        .map(|r| {
            let r = r.unwrap();
            ((r.owner, r.rtype.to_int(), r.rdata), r.value)
        })
        .collect()
}

/// The records, their `rdata` index entries and their owners' `names`
/// entries agree: what one atomic batch writes to several column families
/// is all in the copy, or none of it.
fn assert_column_families_agree(store: &Store) {
    let forward = values(store, &Selector::All);
    let index = values(
        store,
        &pdns_sensor::store::address_selector("0.0.0.0/0").unwrap(),
    );
    assert_eq!(forward, index, "records and their index entries differ");
    let mut owners: Vec<Vec<u8>> = store.owners_forward(b"").map(Result::unwrap).collect();
    owners.sort();
    let mut expected: Vec<Vec<u8>> = forward.keys().map(|k| k.0.clone()).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(owners, expected, "names entries differ from the owners");
    // Newly observed domains are in the copy too, committed with the
    // records that caused them: one per registrable domain of the owners.
    let domains: BTreeSet<String> = expected
        .iter()
        .filter_map(|o| {
            let text = name::presentation(o);
            psl::domain_str(text.trim_end_matches('.')).map(|d| format!("{d}."))
        })
        .collect();
    let recorded: BTreeSet<String> = store
        .new_domains(0, None)
        .map(|r| name::presentation(&r.unwrap().domain))
        .collect();
    assert_eq!(
        recorded, domains,
        "newly observed domains differ from the owners"
    );
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed if the test fails before it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_backup_while_an_ingest_runs_holds_exactly_the_batches_committed_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let capture = dir.path().join("traffic.pcap");
    // 500 names asked in turn, 40 rounds per file: after P responses,
    // name k has been answered P / 500 + (k < P % 500) times.
    const NAMES: usize = 500;
    const PAIRS: usize = 20_000;
    const FILES: usize = 8;
    let (packets, _) = pcap::dns_traffic(PAIRS, NAMES);
    pcap::write(&capture, &packets);
    // One decoder thread and one key per batch: batches commit in the
    // order of the traffic, thousands of them, while the backup runs.
    let mut ingest = Command::new(SENSOR);
    ingest
        .args([
            "ingest",
            "--db",
            s(&db),
            "--threads",
            "1",
            "--aggregate-entries",
            "1",
            "--quiet",
        ])
        .args(std::iter::repeat_n(&capture, FILES))
        .env_remove("PDNS_SENSOR_TEST_NOW")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut ingest = Child(ingest.spawn().unwrap());

    // Once some batches are in, back up.
    let mut reader = None;
    wait_for(
        "the ingest's first batches",
        Duration::from_secs(60),
        || {
            if reader.is_none() {
                reader = Store::open_reader(&db).ok();
            }
            // Opened while the writer may still be creating the column
            // families: the reader must catch up all the same.
            reader.as_ref().is_some_and(|r| {
                r.catch_up().unwrap();
                r.records(&Selector::All, &Filter::default()).count() >= NAMES
            })
        },
    );
    let copy = dir.path().join("backups").join("copy");
    let out = sensor(&["backup", "--db", s(&db), s(&copy)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("checkpoint by the running writer"),
        "{}",
        text(&out.stderr)
    );

    let status = {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = ingest.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the ingest did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(status.success());
    // The writer deleted its staging copy and its socket.
    assert!(!db.join("backup-staging").exists());
    assert!(!db.join("backup.sock").exists());

    // Restore: the copy is a database; put it where a writer expects one.
    let restored = dir.path().join("restored");
    std::fs::rename(&copy, &restored).unwrap();
    let rows = dump(&restored);
    let committed: u64 = rows.values().sum();
    let total = (PAIRS * FILES) as u64;
    assert!(
        committed > 0 && committed < total,
        "the backup was meant to land mid-ingest: it holds {committed} of {total} responses"
    );
    eprintln!("the backup holds {committed} of {total} responses");
    // Exactly the first `committed` responses: a prefix of the batches.
    let (full, extra) = (committed / NAMES as u64, committed % NAMES as u64);
    for k in 0..NAMES as u64 {
        let want = full + u64::from(k < extra);
        let key = format!("\"n{k}.example.test.\" \"A\" \"192.0.2.{}\"", k % 250 + 1);
        assert_eq!(
            rows.get(&key).copied().unwrap_or(0),
            want,
            "{key} after {committed} responses"
        );
    }
    assert_eq!(
        rows.values().filter(|&&c| c > 0).count(),
        NAMES.min(committed as usize)
    );
    assert_column_families_agree(&Store::open_reader(&restored).unwrap());

    // The live database went on to the end.
    let live = dump(&db);
    assert!(live.values().all(|&c| c == (PAIRS * FILES / NAMES) as u64));

    // A writer takes the restored database up again.
    let out = sensor(&[
        "ingest",
        "--db",
        s(&restored),
        "-q",
        s(&common::pcap("dnscap/dns.pcap")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = dump(&restored);
    assert_eq!(after.len(), rows.len() + 3);
    assert!(rows.iter().all(|(k, v)| after.get(k) == Some(v)));
}

#[test]
fn a_backup_of_an_idle_database_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ingested = common::ingest(&[
        common::pcap("dnscap/dns.pcap"),
        common::pcap("zeek/pcapng-multi-interface.pcapng"),
    ]);
    let db = ingested.db();
    let copy = dir.path().join("copy");
    let out = sensor(&["backup", "--db", s(&db), s(&copy)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("no writer was running"), "{err}");
    assert!(dump(&copy).len() > 3);
    assert_eq!(dump(&copy), dump(&db));
    assert!(!db.join("backup-staging").exists());

    // Errors say what is wrong.
    let out = sensor(&["backup", "--db", s(&db), s(&copy)]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already exists: backup writes a new directory"),
        "{}",
        text(&out.stderr)
    );
    let out = sensor(&[
        "backup",
        "--db",
        s(&dir.path().join("none")),
        s(&dir.path().join("x")),
    ]);
    assert!(text(&out.stderr).contains("no pdns-sensor database at"));
    assert!(!dir.path().join("x").exists());

    // A writer that cannot answer (here: RocksDB itself, holding the lock
    // without our socket) is named as such, after a few seconds' retry.
    let held = rocksdb::DB::open_cf(
        &rocksdb::Options::default(),
        &db,
        ["records", "rdata", "negative", "names", "spool", "nod"],
    )
    .unwrap();
    let started = Instant::now();
    let out = sensor(&["backup", "--db", s(&db), s(&dir.path().join("y"))]);
    drop(held);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is in use by a process that does not answer backup requests"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!dir.path().join("y").exists());
}

#[test]
fn a_running_writer_on_a_long_path_answers_and_its_setting_travels() {
    let dir = tempfile::tempdir().unwrap();
    // Longer than a Unix socket address can be.
    let deep: PathBuf = dir
        .path()
        .join("a-rather-long-directory-name-for-a-database-".repeat(3))
        .join("pdns-data");
    assert!(deep.join("backup.sock").as_os_str().len() > 108);
    let writer = Store::open_with(
        &deep,
        &StoreOptions {
            retention: Some(Retention::Days(3650)),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut agg = pdns_sensor::aggregate::Aggregator::new(100, Origin::WIRE);
    for i in 0..20u8 {
        let owner = name::encode_presentation(&format!("h{i}.deep.test")).unwrap();
        agg.record(&owner, Rtype::A, &[192, 0, 2, i], 60, now - u64::from(i));
    }
    writer.write(&agg.take()).unwrap();

    let copy = dir.path().join("copy");
    let out = sensor(&["backup", "--db", s(&deep), s(&copy)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("checkpoint by the running writer"));
    assert_eq!(dump(&copy).len(), 20);
    assert_eq!(dump(&copy), dump(&deep));
    let stats = sensor(&["dump", "--stats", "--json", "--db", s(&copy)]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["retention_days"], 3650);
    // The writer deletes its staging copy once the client hung up.
    wait_for("the staging copy to go", Duration::from_secs(10), || {
        !deep.join("backup-staging").exists()
    });
    drop(writer);
    assert!(!deep.join("backup.sock").exists());
}
