//! The store across runs and processes: merges add up, databases reopen,
//! readers work beside a writer, unknown formats are refused, and the
//! number of decoder threads changes nothing.

mod common;

use std::sync::Arc;

use pdns_sensor::aggregate::Aggregator;
use pdns_sensor::cli::ingest;
use pdns_sensor::store::{Filter, Selector, Store, StoreError};
use pdns_sensor::vocab::Rtype;
use pdns_sensor::vocab::name;
use pdns_sensor::vocab::observation::ObservationSink;
use pdns_sensor::vocab::value::Origin;

#[test]
fn ingesting_twice_doubles_counts_and_keeps_first_and_last() {
    let files = [common::pcap("dnscap/dns.pcap")];
    let once = common::all_records(&common::ingest(&files).store());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest::run(&common::args(&db, &files)).unwrap();
    ingest::run(&common::args(&db, &files)).unwrap();
    let twice = common::all_records(&Store::open_reader(&db).unwrap());
    assert_eq!(once.len(), twice.len());
    for (a, b) in once.iter().zip(&twice) {
        assert_eq!((&a.0, &a.1, &a.2), (&b.0, &b.1, &b.2));
        assert_eq!(b.3, 2 * a.3, "count of {a:?}");
        assert_eq!((b.4, b.5, b.6), (a.4, a.5, a.6), "ttl/first/last of {a:?}");
    }
}

#[test]
fn first_and_last_span_files_in_any_order() {
    // dns.pcap (2016) and dnso1tcp.pcap (2018) share google.com PTRs.
    let older = common::pcap("dnscap/dns.pcap");
    let newer = common::pcap("dnscap/dnso1tcp.pcap");
    let a = common::all_records(&common::ingest(&[older.clone(), newer.clone()]).store());
    let b = common::all_records(&common::ingest(&[newer, older]).store());
    assert_eq!(a, b);
    let ptr = a
        .iter()
        .find(|l| l.2 == "dfw06s47-in-f14.1e100.net.")
        .unwrap();
    assert_eq!((ptr.3, ptr.5, ptr.6), (34, 1476976981, 1515583363));
    // The TTL follows the latest sighting (2018's).
    assert_eq!(ptr.4, 21597);
}

#[test]
fn reopened_database_answers_every_selector() {
    let ingested = common::ingest(&[
        common::pcap("zeek/pcapng-multi-interface.pcapng"),
        common::pcap("dnscap/dns.pcap"),
    ]);
    let store = Store::open(&ingested.db()).unwrap(); // reopen as the writer
    drop(store);
    let store = ingested.store();
    let sel = |s: &str| pdns_sensor::cli::dump::owner_selector(s).unwrap();
    let rd = |s: &str| pdns_sensor::cli::dump::rdata_selector(s).unwrap();
    let names = |sel: Selector| -> Vec<String> {
        common::records(&store, &sel)
            .into_iter()
            .map(|l| format!("{} {} {}", l.0, l.1, l.2))
            .collect()
    };
    assert_eq!(
        names(sel("www.apple.com")),
        vec!["www.apple.com. CNAME www-apple-com.v.aaplimg.com."]
    );
    assert_eq!(
        names(sel("*.akamaiedge.net")),
        vec!["e6858.dsce9.akamaiedge.net. A 23.194.101.24"]
    );
    // The wildcard is strictly below the name.
    assert!(names(sel("*.e6858.dsce9.akamaiedge.net")).is_empty());
    assert_eq!(
        names(rd("23.194.101.24")),
        vec!["e6858.dsce9.akamaiedge.net. A 23.194.101.24"]
    );
    assert_eq!(
        names(rd("23.194.0.0/16")),
        vec!["e6858.dsce9.akamaiedge.net. A 23.194.101.24"]
    );
    assert!(names(rd("23.195.0.0/16")).is_empty());
    assert_eq!(names(rd("2607:f8b0:4023:2007::/64")).len(), 4);
    assert_eq!(
        names(rd("www.apple.com.edgekey.net")),
        vec!["www-apple-com.v.aaplimg.com. CNAME www.apple.com.edgekey.net."]
    );
    assert_eq!(names(rd("*.1e100.net")).len(), 2);
    // Time fences.
    let filter = Filter {
        first_before: Some(1_500_000_000),
        ..Filter::default()
    };
    let old: Vec<_> = store
        .records(&Selector::All, &filter)
        .map(Result::unwrap)
        .collect();
    assert_eq!(old.len(), 3, "only dns.pcap's 2016 records are that old");
}

#[test]
fn readers_see_a_live_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let writer = Arc::new(Store::open(&db).unwrap());
    let reader = Store::open_reader(&db).unwrap();
    let owner = name::encode_presentation("live.test").unwrap();
    for round in 1..=3u64 {
        let mut agg = Aggregator::new(100, Origin::WIRE);
        agg.record(&owner, Rtype::A, &[192, 0, 2, 1], 60, 1000 + round);
        writer.write(&agg.take()).unwrap();
        reader.catch_up().unwrap();
        let got: Vec<_> = reader
            .records(
                &Selector::Owner {
                    name: owner.clone(),
                    wildcard: false,
                },
                &Filter::default(),
            )
            .map(Result::unwrap)
            .collect();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].value.count, got[0].value.last),
            (round, 1000 + round)
        );
    }
}

/// A writer creating a database adds its column families one by one; a
/// reader opened in between must still catch up with everything written
/// after (RocksDB refuses a secondary's catch-up for good when the writer's
/// log names a column family the secondary did not open). Readers are
/// opened as fast as they can be while writers create databases, many
/// times, so some land inside the creation.
#[test]
fn a_reader_opened_while_the_database_is_created_catches_up() {
    let owner = name::encode_presentation("new.test").unwrap();
    let mut opened_early = 0;
    for round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let writer = {
            let db = db.clone();
            std::thread::spawn(move || Store::open(&db).unwrap())
        };
        let reader = loop {
            if let Ok(reader) = Store::open_reader(&db) {
                break reader;
            }
            std::thread::yield_now();
        };
        if !writer.is_finished() {
            opened_early += 1;
        }
        let writer = writer.join().unwrap();
        let mut agg = Aggregator::new(100, Origin::WIRE);
        agg.record(&owner, Rtype::A, &[192, 0, 2, 7], 60, 1000);
        writer.write(&agg.take()).unwrap();
        reader
            .catch_up()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let counts: Vec<u64> = reader
            .records(&Selector::All, &Filter::default())
            .map(|r| r.unwrap().value.count)
            .collect();
        assert_eq!(counts, [1], "round {round}");
    }
    eprintln!("{opened_early} of 40 readers opened before the writer's open returned");
}

/// A reader replays the writer's log into memtables of its own; when the
/// writer flushes that data into files (at the end of an ingest, or while
/// recovering its log at the next open) a reader that kept the memtable
/// would count every merge operand twice.
#[test]
fn readers_count_once_after_the_writer_flushes_or_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let owner = name::encode_presentation("twice.test").unwrap();
    let sighting = |ts| {
        let mut agg = Aggregator::new(100, Origin::WIRE);
        agg.record(&owner, Rtype::A, &[192, 0, 2, 9], 60, ts);
        agg.take()
    };
    let counts = |reader: &Store| -> Vec<u64> {
        reader.catch_up().unwrap();
        reader
            .records(&Selector::All, &Filter::default())
            .map(|r| r.unwrap().value.count)
            .collect()
    };
    let writer = Store::open(&db).unwrap();
    writer.write(&sighting(1000)).unwrap();
    let reader = Store::open_reader(&db).unwrap();
    assert_eq!(counts(&reader), [1]);
    writer.flush().unwrap();
    assert_eq!(counts(&reader), [1], "after the writer flushed");
    writer.write(&sighting(1001)).unwrap();
    assert_eq!(counts(&reader), [2]);
    // Closed without a flush: the next writer recovers the log into files.
    drop(writer);
    drop(Store::open(&db).unwrap());
    assert_eq!(counts(&reader), [2], "after the writer restarted");
}

#[test]
fn a_database_without_its_format_version() {
    let cfs = ["records", "rdata", "negative", "names", "spool", "nod"];
    // Our column families, nothing in them: a writer killed while creating
    // it. Readers wait for a format version (the sign that every column
    // family exists); the next writer finishes it.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        drop(rocksdb::DB::open_cf(&opts, &db, cfs).unwrap());
    }
    match Store::open_reader(&db) {
        Err(e @ StoreError::NotOurs(_)) => {
            assert!(
                e.to_string()
                    .contains("`run` or `ingest` opens and completes it")
            )
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a reader opened a database still being created"),
    }
    drop(Store::open(&db).unwrap());
    let reader = Store::open_reader(&db).unwrap();
    assert_eq!(
        reader.records(&Selector::All, &Filter::default()).count(),
        0
    );

    // Data but no version: someone else's database, refused by writers too.
    let other = dir.path().join("other");
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let raw = rocksdb::DB::open_cf(&opts, &other, cfs).unwrap();
        raw.put_cf(raw.cf_handle("records").unwrap(), b"key", b"value")
            .unwrap();
    }
    assert!(matches!(
        Store::open_reader(&other),
        Err(StoreError::NotOurs(_))
    ));
    assert!(matches!(Store::open(&other), Err(StoreError::NotOurs(_))));
}

#[test]
fn unknown_format_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    drop(Store::open(&db).unwrap());
    {
        let raw = rocksdb::DB::open_cf(
            &rocksdb::Options::default(),
            &db,
            ["records", "rdata", "negative", "names", "spool", "nod"],
        )
        .unwrap();
        raw.put(b"format_version", b"99").unwrap();
    }
    match Store::open(&db) {
        Err(StoreError::UnknownVersion { found, .. }) => assert_eq!(found, "99"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a version-99 database"),
    }
    assert!(matches!(
        Store::open_reader(&db),
        Err(StoreError::UnknownVersion { .. })
    ));
    assert!(matches!(
        Store::open_reader(&dir.path().join("nothing")),
        Err(StoreError::Missing(_))
    ));
}

#[test]
fn thread_count_does_not_change_the_result() {
    let files = common::all_pcaps();
    let one = common::ingest_with(&files, |a| a.threads = 1);
    let four = common::ingest_with(&files, |a| a.threads = 4);
    let (s1, s4) = (one.store(), four.store());
    let r1 = common::all_records(&s1);
    assert!(
        r1.len() > 2000,
        "expected thousands of records from all captures, got {}",
        r1.len()
    );
    assert_eq!(r1, common::all_records(&s4));
    assert_eq!(common::negatives(&s1), common::negatives(&s4));
    // Newly observed domains: the same domains at the same first sighting
    // (which owner is named can differ between sightings in one second).
    let nod = |s: &Store| -> Vec<(Vec<u8>, u64)> {
        s.new_domains(0, None)
            .map(|r| {
                let r = r.unwrap();
                (r.domain, r.entry.first_seen)
            })
            .collect()
    };
    assert!(!nod(&s1).is_empty());
    assert_eq!(nod(&s1), nod(&s4));
    let (t1, t4) = (&one.report.totals, &four.report.totals);
    assert_eq!(
        (t1.packets, t1.dns_responses, t1.observations),
        (t4.packets, t4.dns_responses, t4.observations)
    );
}

#[test]
fn tiny_aggregator_flushes_often_and_loses_nothing() {
    let files = [
        common::pcap("dnscap/dns.pcap"),
        common::pcap("zeek/var-services-std-ports.pcap"),
    ];
    let normal = common::ingest(&files);
    let tiny = common::ingest_with(&files, |a| a.pipeline.aggregate_entries = 1);
    assert!(tiny.report.summary.flushes > normal.report.summary.flushes + 10);
    assert_eq!(
        common::all_records(&normal.store()),
        common::all_records(&tiny.store())
    );
    assert_eq!(
        common::negatives(&normal.store()),
        common::negatives(&tiny.store())
    );
}
