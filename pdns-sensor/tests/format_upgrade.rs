//! A database of store format 1, written by the last build of that format
//! (`tests/format_upgrade/`, see its README), in the hands of this build:
//! readers print exactly what the format-1 build printed and leave the
//! database as it is; the first writer marks it format 2 in place, and the
//! old values merge, compact and expire together with the new ones.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use pdns_sensor::cli::ingest;
use pdns_sensor::store::retention::{Clock, DAY, Retention};
use pdns_sensor::store::{Selector, Store, StoreOptions};
use pdns_sensor::vocab::name;

const COLUMN_FAMILIES: [&str; 6] = ["records", "rdata", "negative", "names", "spool", "nod"];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/format_upgrade")
}

/// A copy of the format-1 database to work on.
fn format1_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::create_dir(&db).unwrap();
    for entry in std::fs::read_dir(fixture_dir().join("format1-db")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), db.join(entry.file_name())).unwrap();
    }
    (dir, db)
}

/// The captures the fixture was written from (its README).
fn fixture_captures() -> Vec<PathBuf> {
    let mut zeek: Vec<PathBuf> = std::fs::read_dir(common::testdata().join("pcap/zeek/dns"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    zeek.sort();
    let mut all = vec![
        common::pcap("dnscap/dns.pcap"),
        common::pcap("dnscap/dnso1tcp.pcap"),
    ];
    all.append(&mut zeek);
    all
}

fn expected(file: &str) -> String {
    std::fs::read_to_string(fixture_dir().join(file)).unwrap()
}

/// `pdns-sensor dump --db DB ARGS`' standard output.
fn dump(db: &Path, args: &[&str]) -> String {
    common::process::client_ok(
        common::sensor_command()
            .arg("dump")
            .arg("--db")
            .arg(db)
            .args(args),
    )
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

/// The stored format version, read with RocksDB itself.
fn format_version(db: &Path) -> String {
    let raw = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        db,
        COLUMN_FAMILIES,
        false,
    )
    .unwrap();
    String::from_utf8(raw.get(b"format_version").unwrap().unwrap()).unwrap()
}

/// The store format `dump --stats` reports.
fn reported_format(db: &Path) -> u64 {
    let stats: Json = serde_json::from_str(&dump(db, &["--stats", "--json"])).unwrap();
    stats["format_version"].as_u64().unwrap()
}

/// JSON lines keyed by what identifies a record (or negative answer),
/// with the rest of each object.
fn by_key(text: &str) -> BTreeMap<String, Json> {
    text.lines()
        .map(|line| {
            let mut obj: Json = serde_json::from_str(line).unwrap();
            let map = obj.as_object_mut().unwrap();
            let key = ["rrname", "rrtype", "rdata", "rcode"]
                .iter()
                .map(|f| map.remove(*f).map_or_else(String::new, |v| v.to_string()))
                .collect::<Vec<_>>()
                .join(" ");
            (key, obj)
        })
        .collect()
}

/// Each object of `before` seen again as often: count doubled, everything
/// else as it was.
fn assert_counted_twice(before: &str, after: &str) {
    let (before, after) = (by_key(before), by_key(after));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (key, old) in &before {
        let mut want = old.clone();
        want["count"] = Json::from(2 * old["count"].as_u64().unwrap());
        assert_eq!(after[key], want, "{key}");
    }
}

#[test]
fn readers_print_what_the_format_1_build_printed_and_change_nothing() {
    let (_dir, db) = format1_copy();
    assert_eq!(format_version(&db), "1");
    assert_eq!(dump(&db, &["--json"]), expected("dump.json"));
    assert_eq!(
        dump(&db, &["--negative", "--json"]),
        expected("negative.json")
    );
    assert_eq!(
        dump(&db, &["--new-since", "0", "--json"]),
        expected("nod.json")
    );
    // Every owner through the `names` column family (format-1 values).
    assert_eq!(
        sorted_lines(&dump(&db, &["--glob", "*", "--json"])),
        sorted_lines(&expected("dump.json"))
    );
    assert_eq!(reported_format(&db), 1);
    assert!(
        dump(&db, &["--stats"])
            .starts_with(&format!("database {} (store format 1)\n", db.display()))
    );
    assert_eq!(format_version(&db), "1", "a reader wrote to the database");
}

#[test]
fn the_first_writer_upgrades_in_place_and_old_values_merge_with_new() {
    let (_dir, db) = format1_copy();
    // The same captures again, by this build, onto the format-1 values.
    ingest::run(&common::args(&db, &fixture_captures())).unwrap();
    assert_eq!(format_version(&db), "2");
    assert_eq!(reported_format(&db), 2);
    let (records, negatives) = (expected("dump.json"), expected("negative.json"));
    assert_counted_twice(&records, &dump(&db, &["--json"]));
    assert_counted_twice(&negatives, &dump(&db, &["--negative", "--json"]));
    // Newly observed domains: nothing new the second time.
    assert_eq!(
        dump(&db, &["--new-since", "0", "--json"]),
        expected("nod.json")
    );

    // Compaction folds the old base values and the new operands into one.
    Store::open(&db).unwrap().compact().unwrap();
    let twice = dump(&db, &["--json"]);
    assert_counted_twice(&records, &twice);
    assert_counted_twice(&negatives, &dump(&db, &["--negative", "--json"]));
    assert_eq!(
        sorted_lines(&dump(&db, &["--glob", "*", "--json"])),
        sorted_lines(&twice)
    );
    assert_eq!(format_version(&db), "2");
}

/// Records, owners listed by the `names` column family and owners of
/// records, read with nothing hidden by the reader's own clock (the
/// retention cutoff of a clock at 1 is 0).
fn contents(db: &Path) -> (Vec<common::Line>, BTreeSet<String>, BTreeSet<String>) {
    let reader = Store::open_reader_with(db, Clock::fixed(1)).unwrap();
    let records = common::records(&reader, &Selector::All);
    let listed = reader
        .owners_forward(b"")
        .map(|o| name::presentation(&o.unwrap()))
        .collect();
    let of_records = records.iter().map(|line| line.0.clone()).collect();
    (records, listed, of_records)
}

#[test]
fn retention_expires_old_and_new_values_alike() {
    let (_dir, db) = format1_copy();
    // Part of the captures again: their owners' `names` entries get new
    // values on top of the old ones, the others keep format 1's alone.
    let again = [common::pcap("dnscap/dns.pcap")];
    ingest::run(&common::args(&db, &again)).unwrap();
    let again = common::all_records(&common::ingest(&again).store());
    let (before, listed, of_records) = contents(&db);
    assert_eq!(listed, of_records);

    // A cutoff in the middle of the history (2017-07-14): dns.pcap (2016)
    // expires, dnso1tcp.pcap (2018) stays, the Zeek captures both ways.
    let cutoff = 1_500_000_000;
    let options = StoreOptions {
        retention: Some(Retention::Days(30)),
        clock: Clock::fixed(cutoff + 30 * DAY),
        ..StoreOptions::default()
    };
    let store = Store::open_with(&db, &options).unwrap();
    store.compact().unwrap();
    let expired = store.expired_here();
    drop(store);

    let (after, listed_after, of_records_after) = contents(&db);
    // Records last seen since the cutoff stay; a piece seen only before it
    // (the second dns.pcap, all of 2016) no longer counts in them.
    assert!(again.iter().all(|line| line.6 < cutoff));
    let live: Vec<common::Line> = before
        .iter()
        .filter(|line| line.6 >= cutoff)
        .map(|line| {
            let mut line = line.clone();
            if let Some(old) = again
                .iter()
                .find(|a| a.0 == line.0 && a.1 == line.1 && a.2 == line.2)
            {
                line.3 -= old.3;
            }
            line
        })
        .collect();
    assert_eq!(after, live);
    assert!(
        !live.is_empty() && live.len() < before.len(),
        "the cutoff splits the history: {} of {}",
        live.len(),
        before.len()
    );
    // `names` lost exactly the owners that have no record left, whichever
    // format their entries were in.
    assert_eq!(listed_after, of_records_after);
    assert!(listed_after.len() < listed.len());
    assert_eq!(
        expired.names.compaction,
        (listed.len() - listed_after.len()) as u64
    );
}
