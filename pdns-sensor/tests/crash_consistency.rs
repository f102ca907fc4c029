//! Crash consistency, proven repeatedly: `import-zeek` killed with SIGKILL
//! at fifty random points, over one file (which a later run resumes) and
//! while following a live log that is being written and rotated; `ingest`
//! killed at fifty points (it does not resume: each kill leaves a store
//! that must open and hold no more than the file does). `run` has its
//! own harness in `live_crash.rs`.
//!
//! After every kill the database must open, and no name may have a count
//! above the truth of the lines written so far (a line counted twice
//! across a kill would show as one); at the end, one run to completion
//! must give exactly the truth: every line counted once, however many
//! times its import was cut. The truth is computed here from the lines
//! this test writes (one A answer per line), not by the sensor.
//!
//! The points are random; the seed is printed, and `PDNS_CRASH_SEED`
//! replays a run.

mod kill_points;
#[path = "live_support/pcap.rs"]
#[allow(dead_code)]
mod pcap;
#[path = "../../bench/src/zeeklog.rs"]
mod zeeklog;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kill_points::Rng;
use pdns_sensor::store::{Filter, Selector, Store};

const KILLS: usize = 50;
const TS: u64 = 1_700_000_000;
/// Distinct names: line `i` asks for `q{i % NAMES}`.
const NAMES: u32 = 3_000;

fn name(i: u32) -> String {
    format!("q{}.crash.test.", i % NAMES)
}

fn line(i: u32) -> String {
    let n = i % NAMES;
    let mut out = Vec::new();
    zeeklog::line(
        &mut out,
        TS + u64::from(i),
        name(i).trim_end_matches('.'),
        (1, "A"),
        (0, "NOERROR"),
        &[format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255)],
        &[60],
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

fn truth(lines: std::ops::Range<u32>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for i in lines {
        *out.entry(name(i)).or_default() += 1;
    }
    out
}

/// Name → count as stored; the database must open.
fn stored(db: &Path) -> BTreeMap<String, u64> {
    let store = Store::open_reader(db).unwrap_or_else(|e| panic!("the store does not open: {e}"));
    counts(&store)
}

/// Name → count as stored, opening the database as the next run does (for
/// writing): a kill while the database was being created can leave it
/// without all its column families, which a reader refuses and a writer
/// completes.
fn stored_for_writing(db: &Path) -> BTreeMap<String, u64> {
    let store = Store::open(db).unwrap_or_else(|e| panic!("the store does not open: {e}"));
    counts(&store)
}

fn counts(store: &Store) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in store.records(&Selector::All, &Filter::default()) {
        let r = r.expect("a readable record");
        let row = pdns_sensor::dump::Row::record(&r);
        *out.entry(row.name).or_default() += r.value.count;
    }
    out
}

/// Every stored count at most the truth's (and nothing the truth lacks).
fn assert_within(stored: &BTreeMap<String, u64>, truth: &BTreeMap<String, u64>, when: &str) {
    for (name, count) in stored {
        let most = truth.get(name).copied().unwrap_or(0);
        assert!(
            *count <= most,
            "{when}: {name} counted {count} times, but only {most} lines hold it"
        );
    }
}

fn sensor() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pdns-sensor"));
    c.env_remove("PDNS_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn kill(child: &mut Child) -> bool {
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    running
}

#[test]
fn import_zeek_killed_at_fifty_points_counts_each_line_once() {
    let mut rng = Rng::seeded();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("dns.log");
    const LINES: u32 = 200_000;
    let mut text = zeeklog::HEADER.to_string();
    for i in 0..LINES {
        text.push_str(&line(i));
    }
    std::fs::write(&log, text).unwrap();
    let want = truth(0..LINES);
    let db = tmp.path().join("db");

    // One key per batch: slow enough that every kill lands mid-file.
    let mut interrupted = 0;
    for k in 0..KILLS {
        let mut child = sensor()
            .args(["import-zeek", "--quiet", "--aggregate-entries", "1", "--db"])
            .arg(&db)
            .arg(&log)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(30 + rng.below(120)));
        if kill(&mut child) {
            interrupted += 1;
        }
        assert_within(&stored(&db), &want, &format!("after kill {k}"));
    }
    assert!(
        interrupted >= KILLS * 9 / 10,
        "only {interrupted} of {KILLS} kills landed mid-import: make the file longer"
    );
    let status = sensor()
        .args(["import-zeek", "--quiet", "--db"])
        .arg(&db)
        .arg(&log)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        stored(&db),
        want,
        "every line once after {interrupted} kills"
    );
}

/// Appends lines to a live log, rotating it now and then, as Zeek does.
struct Writer {
    written: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(dir: PathBuf, rotate_every: u32) -> Writer {
        let written = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (written, stop) = (Arc::clone(&written), Arc::clone(&stop));
            std::thread::spawn(move || {
                let log = dir.join("dns.log");
                let mut file = std::fs::File::create(&log).unwrap();
                file.write_all(zeeklog::HEADER.as_bytes()).unwrap();
                let mut i = 0u32;
                let mut rotations = 0;
                while !stop.load(Ordering::Relaxed) {
                    let chunk: String = (i..i + 20).map(line).collect();
                    file.write_all(chunk.as_bytes()).unwrap();
                    i += 20;
                    written.store(i, Ordering::SeqCst);
                    if i.is_multiple_of(rotate_every) {
                        rotations += 1;
                        std::fs::rename(&log, dir.join(format!("dns.{rotations:04}.log"))).unwrap();
                        file = std::fs::File::create(&log).unwrap();
                        file.write_all(zeeklog::HEADER.as_bytes()).unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Writer {
            written,
            stop,
            thread: Some(thread),
        }
    }

    fn written(&self) -> u32 {
        self.written.load(Ordering::SeqCst)
    }

    fn finish(mut self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.written()
    }
}

#[test]
fn follow_killed_at_fifty_points_counts_each_line_once() {
    let mut rng = Rng::seeded();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let db = tmp.path().join("db");
    // A rotation every 10 000 lines (about 5 s), a write every second, a
    // kill 0.3 to 1.8 s after each start: many runs commit nothing, so
    // several rotations can fall between two commits, and the files in
    // between must be found (see `source::zeek::follow`).
    let writer = Writer::start(logs.clone(), 10_000);
    let follow = || {
        sensor()
            .args(["import-zeek", "--flush-interval", "1", "--db"])
            .arg(&db)
            .arg("--follow")
            .arg(logs.join("dns.log"))
            .spawn()
            .unwrap()
    };
    while writer.written() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The first run lives until it committed: a follower without a saved
    // position starts at the current file, and files rotated before its
    // first commit are history for `import-zeek`, not for it.
    let mut child = follow();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Store::open_reader(&db).map_or(true, |s| counts(&s).is_empty()) {
        assert!(Instant::now() < deadline, "the first run never committed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(kill(&mut child), "the follower exited by itself");
    for k in 0..KILLS {
        let mut child = follow();
        std::thread::sleep(Duration::from_millis(300 + rng.below(1_500)));
        assert!(kill(&mut child), "the follower exited by itself");
        let stored = stored(&db);
        // Read after the store: nothing stored can be newer than this.
        let written = writer.written();
        assert_within(&stored, &truth(0..written), &format!("after kill {k}"));
    }
    let written = writer.finish();
    let want = truth(0..written);
    let mut child = follow();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = stored(&db);
        assert_within(&now, &want, "catching up");
        if now == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {KILLS} kills the follower never caught up: {} of {} names right",
            want.iter().filter(|(n, c)| now.get(*n) == Some(c)).count(),
            want.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    kill(&mut child);
    assert!(
        written > 50_000,
        "only {written} lines written: no rotations"
    );
}

#[test]
fn ingest_killed_at_fifty_points_leaves_a_store_within_the_file() {
    let mut rng = Rng::seeded();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("traffic.pcap");
    let (packets, expected) = pcap::dns_traffic(150_000, 5_000);
    pcap::write(&file, &packets);
    let want: BTreeMap<String, u64> = expected.into_iter().collect();
    let ingest = |db: &Path| {
        let mut c = sensor();
        c.args(["ingest", "--quiet", "--aggregate-entries", "200", "--db"])
            .arg(db)
            .arg(&file);
        c
    };
    // The whole file once, for the time it takes and as a check of the
    // generator's counts.
    let clean = tmp.path().join("clean");
    let started = Instant::now();
    assert!(ingest(&clean).status().unwrap().success());
    let full = started.elapsed();
    assert_eq!(stored(&clean), want, "an uninterrupted ingest");

    let mut interrupted = 0;
    let mut partial = 0;
    for k in 0..KILLS {
        let db = tmp.path().join(format!("db{k}"));
        let mut child = ingest(&db).spawn().unwrap();
        let at = full.as_micros() as u64 * 9 / 10;
        std::thread::sleep(Duration::from_micros(rng.below(at.max(1))));
        if kill(&mut child) {
            interrupted += 1;
        }
        if db.exists() {
            let now = stored_for_writing(&db);
            assert_within(&now, &want, &format!("after kill {k}"));
            if !now.is_empty() && now != want {
                partial += 1;
            }
        }
        let _ = std::fs::remove_dir_all(&db);
    }
    assert!(
        interrupted >= KILLS * 8 / 10,
        "only {interrupted} of {KILLS} kills landed mid-ingest (a full ingest takes {full:?})"
    );
    eprintln!("{interrupted} kills mid-ingest, {partial} left part of the file stored");
}
