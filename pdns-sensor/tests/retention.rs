//! Retention on synthetic time: what is older than the window is not
//! written, is hidden from every read surface at once (before compaction),
//! is deleted and counted by compaction, and does not lend its count to a
//! record seen again; the setting is recorded in the database and readers
//! apply it without being told.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value as Json;

use pdns_sensor::serve::ServeConfig;
use pdns_sensor::store::retention::{Clock, DAY, Retention};
use pdns_sensor::store::{Filter, Selector, Store, StoreError, StoreOptions};
use pdns_sensor::vocab::batch::Batch;
use pdns_sensor::vocab::value::{Origin, Value};
use pdns_sensor::vocab::{OptRcode, Rtype, key, name};

/// "Now" when the fixture is written.
const T0: u64 = 1_700_000_000;
const WINDOW: u32 = 30;

fn owner(text: &str) -> Vec<u8> {
    name::encode_presentation(text).unwrap()
}

fn seen(count: u64, first: u64, last: u64) -> Value {
    Value {
        count,
        first,
        last,
        ttl: 300,
        origin: Origin::WIRE,
    }
}

fn add(batch: &mut Batch, owner_name: &str, rtype: Rtype, rdata: &[u8], v: Value) {
    let mut k = Vec::new();
    key::record_key(&mut k, &owner(owner_name), rtype, rdata);
    batch.records.insert(&k, v);
}

fn add_negative(batch: &mut Batch, qname: &str, v: Value) {
    let mut k = Vec::new();
    key::negative_key(&mut k, &owner(qname), Rtype::A, OptRcode::NXDOMAIN);
    batch.negatives.insert(&k, v);
}

fn wire_name(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in text.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// Records and negative answers, "fresh" ones last seen at T0 and "aging"
/// ones 20 days before: all inside a 30-day window at T0, the aging ones
/// outside it from T0 + 10 days on.
fn fixture() -> Batch {
    let fresh = seen(5, T0 - 3600, T0);
    let aging = seen(7, T0 - 25 * DAY, T0 - 20 * DAY);
    let mut b = Batch::default();
    add(
        &mut b,
        "www.fresh.test",
        Rtype::A,
        &[198, 51, 100, 1],
        fresh,
    );
    add(&mut b, "www.old.test", Rtype::A, &[198, 51, 100, 2], aging);
    // One owner with a fresh and an aging record: its `names` entry stays.
    add(&mut b, "mixed.test", Rtype::A, &[198, 51, 100, 3], fresh);
    add(&mut b, "mixed.test", Rtype::A, &[198, 51, 100, 4], aging);
    // Two CNAMEs at the same target: the rdata name index.
    let target = wire_name("www.fresh.test");
    add(&mut b, "alias.fresh.test", Rtype::CNAME, &target, fresh);
    add(&mut b, "alias.old.test", Rtype::CNAME, &target, aging);
    add_negative(&mut b, "nx.fresh.test", fresh);
    add_negative(&mut b, "nx.old.test", aging);
    b
}

fn options(clock: &Clock, retention: Option<Retention>) -> StoreOptions {
    StoreOptions {
        retention,
        clock: clock.clone(),
        ..StoreOptions::default()
    }
}

/// Every record as `name type rdata count`, sorted.
fn rows(store: &Store) -> Vec<String> {
    common::all_records(store)
        .into_iter()
        .map(|l| format!("{} {} {} {}", l.0, l.1, l.2, l.3))
        .collect()
}

fn negative_names(store: &Store) -> Vec<String> {
    common::negatives(store).into_iter().map(|n| n.0).collect()
}

fn rdata_rows(store: &Store, selector: &str) -> Vec<String> {
    let sel = pdns_sensor::cli::dump::rdata_selector(selector).unwrap();
    common::records(store, &sel)
        .into_iter()
        .map(|l| format!("{} {}", l.0, l.2))
        .collect()
}

fn owners(store: &Store, forward_prefix: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = store
        .owners_forward(forward_prefix)
        .map(|o| name::presentation(&o.unwrap()))
        .collect();
    out.sort();
    out
}

const FRESH_ROWS: [&str; 3] = [
    "alias.fresh.test. CNAME www.fresh.test. 5",
    "mixed.test. A 198.51.100.3 5",
    "www.fresh.test. A 198.51.100.1 5",
];

#[test]
fn observations_older_than_the_window_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // At T0 + 15 days the aging half is already expired when written: a
    // backfill of old traffic.
    let clock = Clock::fixed(T0 + 15 * DAY);
    let store = Store::open_with(&db, &options(&clock, Some(Retention::Days(WINDOW)))).unwrap();
    let written = store.write(&fixture()).unwrap();
    assert_eq!((written.records, written.expired_records), (3, 3));
    assert_eq!((written.negatives, written.expired_negatives), (1, 1));
    assert_eq!(
        written.index_entries, 3,
        "A .1, A .3, the fresh CNAME's target"
    );
    let e = store.expired_here();
    assert_eq!(e.records.write, 3);
    assert_eq!(e.negative.write, 1);
    // Index entries: A .2, A .4 and the old CNAME's target name.
    assert_eq!(e.rdata.write, 3);
    // Owners with nothing fresh: www.old.test, alias.old.test.
    assert_eq!(e.names.write, 2);
    assert_eq!(e.records.compaction, 0);

    // Not there at all, whatever the clock says: a reader judging at T0
    // (nothing expired yet) sees only what was written.
    store.flush().unwrap();
    let reader = Store::open_reader_with(&db, Clock::fixed(T0)).unwrap();
    assert_eq!(rows(&reader), FRESH_ROWS);
    assert_eq!(negative_names(&reader), ["nx.fresh.test."]);
    assert_eq!(
        rdata_rows(&reader, "198.51.100.0/24"),
        ["mixed.test. 198.51.100.3", "www.fresh.test. 198.51.100.1"]
    );
    assert_eq!(
        rdata_rows(&reader, "www.fresh.test"),
        ["alias.fresh.test. www.fresh.test."]
    );
    assert_eq!(
        owners(&reader, b""),
        ["alias.fresh.test.", "mixed.test.", "www.fresh.test."]
    );
    // The database remembers what was expired (for `dump --stats`).
    assert_eq!(reader.expired(), store.expired());
}

/// DNSDB NDJSON objects of a response.
fn objs(r: &common::Response) -> Vec<Json> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.lines()
        .into_iter()
        .filter_map(|l| l.get("obj").cloned())
        .collect()
}

fn field(v: &[Json], f: &str) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|o| o[f].to_string()).collect();
    out.sort();
    out
}

#[test]
fn readers_hide_expired_rows_on_every_surface_before_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let clock = Clock::fixed(T0);
    let writer = Store::open_with(&db, &options(&clock, Some(Retention::Days(WINDOW)))).unwrap();
    assert_eq!(writer.write(&fixture()).unwrap().expired_records, 0);
    writer.flush().unwrap();

    // Ten days on, the aging half is out of the window. A reader that was
    // told nothing takes the recorded setting and judges by its clock.
    clock.set(T0 + 10 * DAY + 1);
    let reader = Arc::new(Store::open_reader_with(&db, clock.clone()).unwrap());
    assert_eq!(reader.retention(), Retention::Days(WINDOW));
    // Nothing was deleted: a reader judging at T0 still sees everything.
    let then = Store::open_reader_with(&db, Clock::fixed(T0)).unwrap();
    assert_eq!(rows(&then).len(), 6);
    assert_eq!(writer.expired_here().records.compaction, 0);

    // The store's read path (what `dump` prints).
    assert_eq!(rows(&reader), FRESH_ROWS);
    assert_eq!(negative_names(&reader), ["nx.fresh.test."]);
    assert_eq!(
        rdata_rows(&reader, "198.51.100.0/24"),
        ["mixed.test. 198.51.100.3", "www.fresh.test. 198.51.100.1"]
    );
    assert_eq!(
        rdata_rows(&reader, "www.fresh.test"),
        ["alias.fresh.test. www.fresh.test."]
    );
    // `www.*`: the forward encoding of `www` without its root byte.
    let mut www = Vec::new();
    name::forward(&owner("www"), &mut www);
    www.pop();
    assert_eq!(owners(&reader, &www), ["www.fresh.test."]);

    // Every HTTP surface.
    let server = common::serve(Arc::clone(&reader), ServeConfig::default());
    let get = |path: &str| common::get(server.addr, path, &[("Accept", "application/x-ndjson")]);
    assert!(objs(&get("/dnsdb/v2/lookup/rrset/name/www.old.test")).is_empty());
    assert_eq!(
        field(
            &objs(&get("/dnsdb/v2/lookup/rrset/name/mixed.test")),
            "rdata"
        ),
        [r#"["198.51.100.3"]"#]
    );
    assert_eq!(
        field(&objs(&get("/dnsdb/v2/lookup/rrset/name/*.test")), "rrname"),
        [
            r#""alias.fresh.test.""#,
            r#""mixed.test.""#,
            r#""www.fresh.test.""#
        ]
    );
    // Right-hand wildcards list owners from the `names` column family.
    assert_eq!(
        field(&objs(&get("/dnsdb/v2/lookup/rrset/name/www.*")), "rrname"),
        [r#""www.fresh.test.""#]
    );
    assert!(objs(&get("/dnsdb/v2/lookup/rrset/name/alias.old.*")).is_empty());
    assert_eq!(
        field(
            &objs(&get("/dnsdb/v2/lookup/rdata/ip/198.51.100.0,24")),
            "rdata"
        ),
        [r#"["198.51.100.1"]"#, r#"["198.51.100.3"]"#]
    );
    assert_eq!(
        field(
            &objs(&get("/dnsdb/v2/lookup/rdata/name/www.fresh.test")),
            "rrname"
        ),
        [r#""alias.fresh.test.""#]
    );
    // Summaries count what is shown, nothing more.
    let summary = objs(&get("/dnsdb/v2/summarize/rrset/name/mixed.test"));
    assert_eq!(summary.len(), 1);
    assert_eq!(
        (&summary[0]["count"], &summary[0]["num_results"]),
        (&Json::from(5), &Json::from(1))
    );
    assert_eq!(
        summary[0]["time_first"],
        Json::from(T0 - 3600),
        "first seen of the fresh record only"
    );
    // DNSDB v1: nothing found is a 404.
    assert_eq!(
        common::get(server.addr, "/lookup/rrset/name/www.old.test", &[]).status,
        404
    );
    assert_eq!(
        common::get(server.addr, "/lookup/rdata/ip/198.51.100.2", &[]).status,
        404
    );
    // CIRCL: forward and inverse.
    assert!(get("/pdns/query/www.old.test").lines().is_empty());
    assert!(get("/pdns/query/198.51.100.2").lines().is_empty());
    let circl = get("/pdns/query/www.fresh.test").lines();
    assert_eq!(
        field(&circl, "rrname"),
        [r#""alias.fresh.test""#, r#""www.fresh.test""#]
    );
    // bro-pdns, both flavours.
    let bro: Json = serde_json::from_str(&get("/dns/mixed.test").body).unwrap();
    assert_eq!(bro["records"].as_array().unwrap().len(), 1);
    assert_eq!(get("/dns/find/tuples/198.51.100.4").body, "[]\n");
    let like: Json = serde_json::from_str(&get("/dns/like/tuples/test").body).unwrap();
    assert_eq!(like.as_array().unwrap().len(), 3);
    // Negative answers.
    assert!(get("/negative/nx.old.test").lines().is_empty());
    assert_eq!(
        field(&get("/negative/*.test").lines(), "rrname"),
        [r#""nx.fresh.test.""#]
    );
}

#[test]
fn an_expired_base_gives_nothing_to_a_fresh_operand() {
    for retention in [Retention::Days(WINDOW), Retention::Off] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let clock = Clock::fixed(T0);
        let store = Store::open_with(&db, &options(&clock, Some(retention))).unwrap();
        let mut old = Batch::default();
        add(
            &mut old,
            "again.test",
            Rtype::A,
            &[198, 51, 100, 9],
            seen(40, T0 - 2 * DAY, T0 - DAY),
        );
        add_negative(&mut old, "nx.again.test", seen(40, T0 - 2 * DAY, T0 - DAY));
        store.write(&old).unwrap();
        // Folded into base values in the bottommost files, where the
        // compaction filter would see them only at the next compaction.
        store.compact().unwrap();

        // Forty days on the base is expired; the record is seen again.
        clock.set(T0 + 40 * DAY);
        let now = T0 + 40 * DAY;
        let mut new = Batch::default();
        add(
            &mut new,
            "again.test",
            Rtype::A,
            &[198, 51, 100, 9],
            seen(2, now - 60, now),
        );
        add_negative(&mut new, "nx.again.test", seen(2, now - 60, now));
        store.write(&new).unwrap();

        let check = |store: &Store, when: &str| {
            let records: Vec<_> = store
                .records(&Selector::All, &Filter::default())
                .map(Result::unwrap)
                .collect();
            let index: Vec<_> = store
                .records(
                    &pdns_sensor::store::address_selector("198.51.100.9").unwrap(),
                    &Filter::default(),
                )
                .map(Result::unwrap)
                .collect();
            let negatives: Vec<_> = store
                .negatives(&Selector::All, &Filter::default())
                .map(Result::unwrap)
                .collect();
            let want = match retention {
                // The fresh sightings alone: count 2, first seen now - 60.
                Retention::Days(_) => seen(2, now - 60, now),
                Retention::Off => seen(42, T0 - 2 * DAY, now),
            };
            assert_eq!(records.len(), 1, "{when}");
            assert_eq!(records[0].value, want, "{retention} {when}: records");
            assert_eq!(index[0].value, want, "{retention} {when}: rdata index");
            assert_eq!(negatives[0].value, want, "{retention} {when}: negative");
        };
        check(&store, "merged on read");
        store.compact().unwrap();
        check(&store, "after compaction");
        store.flush().unwrap();
        drop(store);
        let reader = Store::open_reader_with(&db, clock.clone()).unwrap();
        check(&reader, "in a reader");
    }
}

#[test]
fn compaction_deletes_expired_entries_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let clock = Clock::fixed(T0);
    let store = Store::open_with(&db, &options(&clock, Some(Retention::Days(WINDOW)))).unwrap();
    store.write(&fixture()).unwrap();
    store.compact().unwrap();
    assert_eq!(store.expired_here(), Default::default());

    clock.set(T0 + 10 * DAY + 1);
    store.compact().unwrap();
    let e = store.expired_here();
    assert_eq!(e.records.compaction, 3, "{e:?}");
    assert_eq!(e.rdata.compaction, 3, "{e:?}");
    assert_eq!(e.negative.compaction, 1, "{e:?}");
    assert_eq!(e.names.compaction, 2, "{e:?}");
    assert_eq!(e.records.write, 0);

    // Gone for good: a reader judging at T0, when they were all fresh,
    // finds only the fresh ones.
    let then = Store::open_reader_with(&db, Clock::fixed(T0)).unwrap();
    assert_eq!(rows(&then), FRESH_ROWS);
    assert_eq!(negative_names(&then), ["nx.fresh.test."]);
    assert_eq!(rdata_rows(&then, "198.51.100.0/24").len(), 2);
    assert_eq!(owners(&then, b"").len(), 3);
    // And the counts are in the database, for readers.
    assert_eq!(then.expired(), e);

    // Counted across processes: a later writer adds to them.
    drop(then);
    drop(store);
    clock.set(T0 + 30 * DAY + 1);
    let store = Store::open_with(&db, &options(&clock, None)).unwrap();
    assert_eq!(store.retention(), Retention::Days(WINDOW), "recorded");
    store.compact().unwrap();
    let total = store.expired();
    assert_eq!(total.records.compaction, 6, "{total:?}");
    assert_eq!(total.negative.compaction, 2, "{total:?}");
    assert!(rows(&store).is_empty());
}

#[test]
fn the_setting_is_recorded_kept_changed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let clock = Clock::fixed(T0);
    let open = |r: Option<Retention>| Store::open_with(&db, &options(&clock, r)).unwrap();
    assert_eq!(open(None).retention(), Retention::Off, "off by default");
    let reader = Store::open_reader_with(&db, clock.clone()).unwrap();
    assert_eq!(reader.retention(), Retention::Off);

    assert_eq!(
        open(Some(Retention::Days(90))).retention(),
        Retention::Days(90)
    );
    // A reader that was open all along follows at its next catch-up.
    reader.catch_up().unwrap();
    assert_eq!(reader.retention(), Retention::Days(90));
    assert_eq!(reader.retention_cutoff(), T0 - 90 * DAY);
    // A writer without the option keeps it.
    assert_eq!(open(None).retention(), Retention::Days(90));
    // Another number replaces it.
    assert_eq!(
        open(Some(Retention::Days(7))).retention(),
        Retention::Days(7)
    );
    assert_eq!(open(None).retention(), Retention::Days(7));
    // `off` removes it.
    assert_eq!(open(Some(Retention::Off)).retention(), Retention::Off);
    assert_eq!(open(None).retention(), Retention::Off);
    reader.catch_up().unwrap();
    assert_eq!(reader.retention(), Retention::Off);
    assert_eq!(reader.retention_cutoff(), 0);
}

#[test]
fn a_damaged_recorded_setting_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let store = Store::open(&db).unwrap();
    let mut b = Batch::default();
    b.checkpoints
        .push((b"retention".to_vec(), b"a fortnight".to_vec()));
    store.write(&b).unwrap();
    drop(store);
    for err in [
        Store::open_reader(&db).err().unwrap(),
        Store::open(&db).err().unwrap(),
    ] {
        assert!(matches!(err, StoreError::BadRetention { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("retention setting \"a fortnight\"") && text.contains("--retention"),
            "{text}"
        );
    }
    // Setting it again repairs the database.
    let fixed = StoreOptions {
        retention: Some(Retention::Days(10)),
        ..StoreOptions::default()
    };
    assert_eq!(
        Store::open_with(&db, &fixed).unwrap().retention(),
        Retention::Days(10)
    );
}

// The binary: the option's values, the recorded setting as `dump` sees it,
// and a backfill of old captures.

fn sensor(args: &[&str], now: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pdns-sensor"));
    c.args(args).env_remove("PDNS_DB");
    match now {
        Some(t) => c.env("PDNS_SENSOR_TEST_NOW", t),
        None => c.env_remove("PDNS_SENSOR_TEST_NOW"),
    };
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

fn dump_lines(db: &Path, now: &str) -> usize {
    let out = ok(sensor(
        &["dump", "--json", "--db", db.to_str().unwrap()],
        Some(now),
    ));
    text(&out.stdout).lines().count()
}

fn stats(db: &Path, now: &str) -> Json {
    let out = ok(sensor(
        &["dump", "--stats", "--json", "--db", db.to_str().unwrap()],
        Some(now),
    ));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bad_values_are_refused_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let pcap = common::pcap("dnscap/dns.pcap");
    let pcap = pcap.to_str().unwrap();
    for (value, says) in [
        ("0", "0 days would expire everything"),
        ("-5", "-5 is negative"),
        ("thirty", "\"thirty\" is not a number of days"),
        ("36501", "more than a hundred years"),
        ("", "\"\" is not a number of days"),
    ] {
        let retention = format!("--retention={value}");
        for args in [
            vec!["ingest", "--db", db, retention.as_str(), pcap],
            vec!["import-zeek", "--db", db, retention.as_str(), pcap],
            vec!["run", "--db", db, retention.as_str()],
        ] {
            let out = sensor(&args, None);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains("--retention <DAYS|off>") && err.contains(says),
                "{args:?}: {err}"
            );
        }
    }
    // The separate form too, negative numbers included.
    let out = sensor(&["ingest", "--db", db, "--retention", "-5", pcap], None);
    assert!(text(&out.stderr).contains("-5 is negative"));
    assert!(!Path::new(db).exists(), "nothing created on a bad value");
    // A bad test clock is an error too, not the wall clock.
    let out = sensor(&["ingest", "--db", db, pcap], Some("yesterday"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("PDNS_SENSOR_TEST_NOW"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn dump_applies_the_recorded_setting_and_stats_show_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_s = db.to_str().unwrap();
    // dns.pcap was captured on 2016-10-20, 15:23-15:24 UTC.
    let pcap = common::pcap("dnscap/dns.pcap");
    let pcap = pcap.to_str().unwrap();
    let (day_after, later) = ("2016-10-21T00:00:00Z", "2016-12-01T00:00:00Z");
    let out = ok(sensor(
        &["ingest", "--db", db_s, "--retention", "30", pcap],
        Some(day_after),
    ));
    assert!(
        text(&out.stderr).contains("retention 30 day(s): of these, 0 records"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(dump_lines(&db, day_after), 3);
    // Forty days on, `dump` (told nothing) hides them all.
    assert_eq!(dump_lines(&db, later), 0);
    let s = stats(&db, later);
    assert_eq!(s["retention_days"], 30);
    assert_eq!(
        s["retention_cutoff"],
        pdns_sensor::vocab::time::parse(later).unwrap() - 30 * DAY
    );
    assert_eq!(s["periodic_compaction_secs"], 30 * DAY / 8);
    let cfs = s["column_families"].as_array().unwrap();
    assert_eq!(
        cfs.iter().map(|c| c["name"].clone()).collect::<Vec<_>>(),
        ["records", "rdata", "negative", "names", "nod"]
    );
    assert!(cfs[0]["estimated_keys"].is_u64());
    assert!(cfs[0]["sst_bytes"].as_u64().unwrap() > 0);

    // Ingesting again without the option keeps it; compacting then, in
    // the later "now", deletes and counts.
    let out = ok(sensor(
        &["ingest", "--db", db_s, "--compact", "-q", pcap],
        Some(later),
    ));
    assert!(text(&out.stderr).contains("retention 30 days (recorded in the database)"));
    let s = stats(&db, later);
    assert_eq!(s["column_families"][0]["expired"]["write"], 3);
    assert_eq!(s["column_families"][0]["expired"]["compaction"], 3);
    assert_eq!(dump_lines(&db, day_after), 0, "deleted, not just hidden");
    let table = text(&ok(sensor(&["dump", "--stats", "--db", db_s], Some(later))).stdout);
    assert!(
        table.contains("retention 30 day(s): records last seen before 2016-11-01 00:00:00 UTC"),
        "{table}"
    );
    assert!(table.contains("EXPIRED BY COMPACTION"), "{table}");

    // A different number replaces it, with a warning; `off` removes it.
    let out = ok(sensor(
        &["ingest", "--db", db_s, "--retention", "365", "-q", pcap],
        Some(later),
    ));
    assert!(text(&out.stderr).contains("retention changed from 30 days to 365 days"));
    assert_eq!(dump_lines(&db, later), 3);
    assert_eq!(stats(&db, later)["retention_days"], 365);
    let out = ok(sensor(
        &["ingest", "--db", db_s, "--retention", "off", "-q", pcap],
        Some(later),
    ));
    assert!(text(&out.stderr).contains("retention 365 days removed"));
    assert_eq!(stats(&db, later)["retention_days"], Json::Null);
    assert_eq!(dump_lines(&db, "2030-01-01"), 3);
}

#[test]
fn a_backfill_older_than_the_window_is_counted_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_s = db.to_str().unwrap();
    let pcap = common::pcap("dnscap/dns.pcap");
    // The wall clock: 2016's capture is long out of a year's window.
    let out = ok(sensor(
        &[
            "ingest",
            "--db",
            db_s,
            "--retention",
            "365",
            pcap.to_str().unwrap(),
        ],
        None,
    ));
    let err = text(&out.stderr);
    assert!(
        err.contains("retention 365 day(s): of these, 3 records and 0 negative answers"),
        "{err}"
    );
    let out = ok(sensor(&["dump", "--db", db_s, "--json"], None));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    // The writer stored nothing: even judged in 2016, there is nothing.
    assert_eq!(dump_lines(&db, "2016-10-21"), 0);
}

fn metric(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?} in {:?}", scrape.samples);
    found[0]
}

#[test]
fn expiry_is_counted_in_prometheus_by_column_family() {
    // The only test here that scrapes `/metrics`: the registry is the
    // process's, and each store publishes its own increase.
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::fixed(T0 + 15 * DAY);
    let store = Arc::new(
        Store::open_with(
            &dir.path().join("db"),
            &options(&clock, Some(Retention::Days(WINDOW))),
        )
        .unwrap(),
    );
    store.write(&fixture()).unwrap();
    let server = common::serve(Arc::clone(&store), ServeConfig::default());
    let scrape = || {
        let body = common::get(server.addr, "/metrics", &[]).body;
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
    };
    let expired = |s: &prometheus_parse::Scrape, cf, at| {
        metric(s, "pdns_retention_expired_total", &[("cf", cf), ("at", at)])
    };
    let at_write = [
        ("records", 3.0),
        ("rdata", 3.0),
        ("negative", 1.0),
        ("names", 2.0),
    ];
    let s = scrape();
    assert_eq!(metric(&s, "pdns_retention_days", &[]), 30.0);
    for (cf, n) in at_write {
        assert_eq!(expired(&s, cf, "write"), n, "{cf}");
        assert_eq!(expired(&s, cf, "compaction"), 0.0, "{cf}");
    }
    // A month on, compaction deletes the rest (the fresh half, merged into
    // values that are expired as a whole, then deleted by a second pass).
    clock.set(T0 + 31 * DAY);
    store.compact().unwrap();
    let s = scrape();
    for (cf, n) in [
        ("records", 3.0),
        ("rdata", 3.0),
        ("negative", 1.0),
        ("names", 3.0),
    ] {
        assert_eq!(expired(&s, cf, "compaction"), n, "{cf}");
    }
    for (cf, n) in at_write {
        assert_eq!(expired(&s, cf, "write"), n, "{cf}: unchanged");
    }
    assert!(rows(&store).is_empty());
}
