//! Newly observed domains over real data: every capture of `testdata/pcap`
//! ingested on two threads, the NOD list checked against an independent
//! computation from the stored records (the public suffix list's text
//! lookup, `psl::domain_str`, on each owner's presentation form — not the
//! sensor's label-based one); re-ingest idempotent; `/nod` (auth, bad
//! parameters, cursor pages equal to one page) equal to `dump --new-since`;
//! a Zeek import keyed by the log's own times.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use pdns_sensor::cli::import_zeek;
use pdns_sensor::cli::ingest;
use pdns_sensor::serve::ServeConfig;
use pdns_sensor::serve::auth::ApiKeys;
use pdns_sensor::store::Store;
use pdns_sensor::store::nod::NodRecord;
use pdns_sensor::vocab::name;
use serde_json::Value;

/// A domain as the test computes it: first seen, and the (owner, type) of
/// the records seen then.
#[derive(Debug, Default)]
struct Expected {
    first: u64,
    firsts: BTreeSet<(String, String)>,
}

/// The registrable domain of every record owner, from the records alone.
fn expected(store: &Store) -> BTreeMap<String, Expected> {
    let mut out: BTreeMap<String, Expected> = BTreeMap::new();
    for (owner, rtype, _, _, _, first, _) in common::all_records(store) {
        let text = owner.trim_end_matches('.').to_ascii_lowercase();
        // Escaped bytes are outside what the list describes; the sensor
        // and this lookup need not agree on them, so none may occur here.
        assert!(
            !text.contains('\\'),
            "escaped owner {owner:?} in the test data"
        );
        let Some(domain) = psl::domain_str(&text) else {
            continue;
        };
        let e = out.entry(format!("{domain}.")).or_insert(Expected {
            first: u64::MAX,
            firsts: BTreeSet::new(),
        });
        if first < e.first {
            e.first = first;
            e.firsts.clear();
        }
        if first == e.first {
            e.firsts.insert((owner.clone(), rtype.clone()));
        }
    }
    out
}

fn all_nod(store: &Store) -> Vec<NodRecord> {
    store.new_domains(0, None).map(Result::unwrap).collect()
}

fn check_against_records(store: &Store) -> usize {
    let expected = expected(store);
    let got = all_nod(store);
    let got_domains: BTreeSet<String> = got.iter().map(|r| name::presentation(&r.domain)).collect();
    let want_domains: BTreeSet<String> = expected.keys().cloned().collect();
    assert_eq!(got_domains, want_domains);
    assert_eq!(got.len(), want_domains.len(), "one entry per domain");
    let start = store
        .nod_warmup_start()
        .expect("a warm-up start is recorded");
    let mut previous = (0, Vec::new());
    for r in &got {
        let d = name::presentation(&r.domain);
        let e = &expected[&d];
        assert_eq!(r.entry.first_seen, e.first, "{d}: first seen");
        let first = (
            name::presentation(&r.entry.rrname),
            pdns_sensor::vocab::render::rtype_name(r.entry.rrtype),
        );
        assert!(
            e.firsts.contains(&first),
            "{d}: {first:?} is not among the records first seen then: {:?}",
            e.firsts
        );
        assert!(!r.entry.in_rdata);
        assert_eq!(r.entry.warmup, r.entry.first_seen < start + 86_400, "{d}");
        // The feed is in (first seen, domain key) order.
        let here = (r.entry.first_seen, r.domain.clone());
        assert!(here > previous, "{d} out of order");
        previous = here;
    }
    got.len()
}

#[test]
fn real_captures_give_one_entry_per_registrable_domain_at_its_first_sighting() {
    let files = common::all_pcaps();
    let run = common::ingest_with(&files, |a| a.threads = 2);
    let store = run.store();
    let n = check_against_records(&store);
    assert!(n >= 50, "only {n} domains in the test data");
    let before = all_nod(&store);
    drop(store);

    // The same captures again, into the same database, on one thread and
    // in reverse order: nothing new, nothing moved.
    let mut again = common::args(&run.db(), &files.iter().rev().cloned().collect::<Vec<_>>());
    again.threads = 1;
    ingest::run(&again).unwrap();
    let store = run.store();
    assert_eq!(all_nod(&store), before);
}

#[test]
fn reverse_order_ingest_gives_the_same_first_sightings() {
    // Files in any order, on any number of threads: same domains, same
    // first-seen times (the earliest sighting wins, moved back if need be).
    let files = common::all_pcaps();
    let forward = common::ingest_with(&files, |a| a.threads = 1);
    let reversed: Vec<PathBuf> = files.iter().rev().cloned().collect();
    let backward = common::ingest_with(&reversed, |a| a.threads = 2);
    let firsts = |s: &Store| -> Vec<(Vec<u8>, u64)> {
        all_nod(s)
            .into_iter()
            .map(|r| (r.domain, r.entry.first_seen))
            .collect()
    };
    assert_eq!(firsts(&forward.store()), firsts(&backward.store()));
    check_against_records(&backward.store());
}

#[test]
fn without_nod_nothing_is_recorded() {
    let files = common::all_pcaps();
    let run = common::ingest_with(&files[..20], |a| a.nod.no_nod = true);
    assert!(all_nod(&run.store()).is_empty());
    assert!(run.store().nod_warmup_start().is_none());
}

const KEY: (&str, &str) = ("X-API-Key", "testkey");

fn api(db: &Path) -> common::Server {
    let store = Arc::new(Store::open_reader(db).unwrap());
    store.catch_up().unwrap();
    common::serve(
        store,
        ServeConfig {
            keys: Some(ApiKeys::parse("testkey\nuser:pass\n").unwrap()),
            ..ServeConfig::default()
        },
    )
}

/// The entries of an answer and its closing cursor line.
fn page(body: &common::Response) -> (Vec<Value>, Value) {
    let mut lines = body.lines();
    let last = lines.pop().expect("a closing cursor line");
    assert!(last.get("cursor").is_some_and(Value::is_string), "{last}");
    (lines, last)
}

#[test]
fn the_api_pages_with_cursors_and_agrees_with_dump() {
    let files = common::all_pcaps();
    let run = common::ingest_with(&files, |a| a.threads = 2);
    let server = api(&run.db());
    let all = all_nod(&run.store());
    let since = all[all.len() / 3].entry.first_seen;

    // Authentication as on the other surfaces (the same answers as the
    // negative-answer endpoint's): either kind of credential.
    let basic = format!("Basic {}", base64_encode(b"user:pass"));
    let bad_basic = format!("Basic {}", base64_encode(b"user:wrong"));
    for (headers, ok) in [
        (vec![], false),
        (vec![("X-API-Key", "wrong")], false),
        (vec![("Authorization", bad_basic.as_str())], false),
        (vec![KEY], true),
        (vec![("Authorization", basic.as_str())], true),
    ] {
        let nod = common::get(server.addr, "/nod?limit=1", &headers);
        let negative = common::get(server.addr, "/negative/example.com?limit=1", &headers);
        assert_eq!(nod.status, negative.status, "{headers:?}");
        assert_eq!(nod.status == 200, ok, "{headers:?}: {}", nod.status);
    }

    // Bad parameters: 400 with the API's error body.
    for bad in [
        "/nod?since=yesterday",
        "/nod?since=2024-13-01",
        "/nod?limit=-1",
        "/nod?cursor=xyz",
        "/nod?cursor=00",
    ] {
        let r = common::get(server.addr, bad, &[KEY]);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert!(body["error"].is_string(), "{bad}: {body}");
    }

    // One big page.
    let r = common::get(server.addr, &format!("/nod?since={since}&limit=0"), &[KEY]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let (one, end) = page(&r);
    assert_eq!(end["more"], false);
    let want: Vec<Value> = all
        .iter()
        .filter(|r| r.entry.first_seen >= since)
        .map(NodRecord::to_json)
        .collect();
    assert_eq!(one, want);
    assert!(one.len() > 20);
    for l in &one {
        assert!(l["first_seen"].as_u64().unwrap() >= since);
        for k in ["domain", "rrname", "rrtype"] {
            assert!(l[k].is_string(), "{l}");
        }
        assert!(l["warmup"].is_boolean());
    }

    // The same through pages of 7, following the cursors.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let path = if cursor.is_empty() {
            format!("/nod?since={since}&limit=7")
        } else {
            format!("/nod?since={since}&limit=7&cursor={cursor}")
        };
        let r = common::get(server.addr, &path, &[KEY]);
        assert_eq!(r.status, 200, "{}", r.body);
        let (lines, end) = page(&r);
        assert!(lines.len() <= 7);
        pages += 1;
        paged.extend(lines);
        cursor = end["cursor"].as_str().unwrap().to_string();
        if end["more"] == false {
            break;
        }
    }
    assert_eq!(paged, one);
    // A full last page with nothing after it says so (no empty page).
    assert_eq!(pages, one.len().div_ceil(7));
    // Polling on from the last cursor: nothing new yet.
    let r = common::get(server.addr, &format!("/nod?cursor={cursor}"), &[KEY]);
    let (rest, end) = page(&r);
    assert!(rest.is_empty());
    assert_eq!(end["cursor"].as_str(), Some(cursor.as_str()));

    // The counter: every domain this process recorded (other tests of this
    // binary ingest too, so at least this database's).
    let metrics = common::get(server.addr, "/metrics", &[]).body;
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("pdns_new_domains_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(counted >= all.len() as f64, "{counted} < {}", all.len());
    assert!(metrics.contains("pdns_new_domains_total{warmup=\"false\"}"));

    // dump --new-since gives the same entries, in JSON and as a table.
    let out = common::sensor_command()
        .args(["dump", "--db"])
        .arg(run.db())
        .args(["--new-since", &since.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dumped: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dumped, one);
    let rfc3339 = pdns_sensor::vocab::time::format_rfc3339(since);
    let out = common::sensor_command()
        .args(["dump", "--db"])
        .arg(run.db())
        .args(["--new-since", &rfc3339, "--limit", "5"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 6, "{text}");
    assert!(rows[0].starts_with("first_seen"));
    for (row, want) in rows[1..].iter().zip(&one) {
        assert!(row.contains(want["domain"].as_str().unwrap()), "{row}");
    }
}

fn base64_encode(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The Zeek baselines with their masked `ts` replaced by `ts`.
fn zeek_logs(dir: &Path, ts: u64) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(common::testdata().join("zeek-dnslog")).unwrap() {
        let Ok(files) = std::fs::read_dir(entry.unwrap().path()) else {
            continue;
        };
        for file in files {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
            let unmasked: String = text
                .lines()
                .map(|l| match l.strip_prefix("XXXXXXXXXX.XXXXXX") {
                    Some(rest) => format!("{ts}.000000{rest}\n"),
                    None => format!("{l}\n"),
                })
                .collect();
            let path = dir.join(format!("{}.log", out.len()));
            std::fs::write(&path, unmasked).unwrap();
            out.push(path);
        }
    }
    assert!(out.len() >= 29);
    out
}

fn subdir(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(name);
    std::fs::create_dir(&d).unwrap();
    d
}

fn import(db: &Path, paths: &[PathBuf]) {
    import_zeek::run_with_stop(
        &common::import_zeek_args(db, paths),
        &AtomicBool::new(false),
    )
    .unwrap();
}

#[test]
fn zeek_imports_use_the_log_times_and_backfills_move_domains_earlier() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // A log of 2020 first.
    let logs_2020 = zeek_logs(&subdir(dir.path(), "2020"), 1_600_000_000);
    import(&db, &logs_2020);
    let store = Store::open_reader(&db).unwrap();
    let first = all_nod(&store);
    assert!(first.len() >= 5, "{} domains: {first:?}", first.len());
    assert!(first.iter().all(|r| r.entry.first_seen == 1_600_000_000));
    assert!(first.iter().all(|r| r.entry.warmup));
    assert_eq!(store.nod_warmup_start(), Some(1_600_000_000));
    check_against_records(&store);
    drop(store);

    // The same logs again (the importer knows their content and skips
    // them; the pcap test above re-ingests for real): nothing changes.
    import(&db, &logs_2020);
    assert_eq!(all_nod(&Store::open_reader(&db).unwrap()), first);

    // The same traffic logged in 2014, imported later: every domain moves
    // back to 2014 (still one entry each), the warm-up start stays.
    let logs_2014 = zeek_logs(&subdir(dir.path(), "2014"), 1_400_000_000);
    import(&db, &logs_2014);
    let store = Store::open_reader(&db).unwrap();
    let moved = all_nod(&store);
    assert_eq!(moved.len(), first.len());
    assert!(moved.iter().all(|r| r.entry.first_seen == 1_400_000_000));
    assert_eq!(store.nod_warmup_start(), Some(1_600_000_000));
    check_against_records(&store);
    assert_eq!(store.new_domains(1_400_000_001, None).count(), 0);
}

#[test]
fn over_clickhouse_the_endpoint_says_it_is_not_there() {
    use pdns_sensor::clickhouse::client::{Client, ClientOptions, Target};
    use pdns_sensor::clickhouse::reader::Reader;
    // Nothing listens there: the answer must not need ClickHouse at all.
    let target = Target::parse("http://127.0.0.1:9/pdns", None).unwrap();
    let client = Client::new(target, &ClientOptions::default()).unwrap();
    let backend = pdns_sensor::serve::Backend::ClickHouse(Arc::new(Reader::new(
        client,
        std::time::Duration::from_secs(1),
    )));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(pdns_sensor::serve::AppState {
        backend,
        config: ServeConfig::default(),
    });
    runtime.spawn(async move {
        axum::serve(listener, pdns_sensor::serve::router(state))
            .await
            .unwrap();
    });
    let r = common::get(addr, "/nod?since=2024-01-01", &[]);
    assert_eq!(r.status, 501, "{}", r.body);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("local database"),
        "{body}"
    );
    // Bad parameters are still a 400 first.
    assert_eq!(common::get(addr, "/nod?since=soon", &[]).status, 400);
}
