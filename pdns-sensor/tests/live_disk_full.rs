//! `run` on a disk that fills up and then has room again (issue 14):
//! capture goes on, one clear log line says what happens, a gauge shows it,
//! writing resumes by itself once there is space, and nothing is corrupt
//! or counted twice.
//!
//! The database lives on a tmpfs of its own; a filler file takes every
//! free byte while traffic with new names keeps arriving, and is deleted
//! later. The traffic and its expected counts come from the test's own
//! generator (`live_support::pcap::dns_traffic`), replayed with tcpreplay
//! over a veth pair.

mod live_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use live_support::*;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        run(
            Command::new("mount").args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "pdns-disk-full",
                at.to_str().unwrap(),
            ]),
            Duration::from_secs(10),
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 1 << 16];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = file.sync_all();
    written
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn wait_for(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_full_disk_holds_the_writes_and_they_resume_when_there_is_room() {
    require(&["ip", "tcpreplay", "curl", "mount"]);
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("fs"), "256m");
    let db = fs.0.join("db");
    let link = Link::new("full", false);
    let (small, once) = link.traffic_file(dir.path(), 300, 60);
    let once: BTreeMap<String, u64> = once.into_iter().collect();
    // Many new names: what the writers must put on the full disk (the
    // first 60 are the small file's, once per replay).
    let big_dir = dir.path().join("big");
    std::fs::create_dir_all(&big_dir).unwrap();
    let (big, _) = link.traffic_file(&big_dir, 40_000, 40_000);

    let mut sensor = Sensor::start_at(
        &link.b,
        &db,
        &[
            "-i",
            link.if_b,
            "--flush-interval",
            "1",
            "--listen",
            "127.0.0.1:8053",
        ],
    );
    let metrics = || {
        run(
            link.b
                .cmd("curl")
                .args(["-sS", "--max-time", "5", "http://127.0.0.1:8053/metrics"]),
            Duration::from_secs(10),
        )
    };

    // Room: the first replay is stored.
    link.replay(&small, 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(metric(&metrics(), "pdns_store_write_blocked"), 0.0);

    // No room: the next flushes fail and are held.
    let filler = fs.0.join("filler");
    let filled = fill(&filler);
    eprintln!("filler took {} MiB", filled >> 20);
    // Until the memtables are flushed to a file or a new log is started:
    // writes into the log's preallocated space still succeed.
    let mut big_replays = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !sensor.stderr().contains("store write failed") {
        assert!(
            Instant::now() < deadline,
            "the writers did not report a full disk after {big_replays} replays:\n{}",
            sensor.stderr()
        );
        link.replay(&big, 1);
        big_replays += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let text = metrics();
    assert!(metric(&text, "pdns_store_write_blocked") >= 1.0, "{text}");
    assert!(metric(&text, "pdns_store_write_failures_total") >= 1.0);
    assert!(
        sensor.stderr().contains("No space left on device"),
        "the log names the cause:\n{}",
        sensor.stderr()
    );
    // Capture goes on meanwhile (the API answers, the process lives).
    link.replay(&small, 1);
    assert!(
        sensor.proc.child.try_wait().unwrap().is_none(),
        "the sensor exited:\n{}",
        sensor.stderr()
    );

    // Room again: the held batches go in by themselves.
    std::fs::remove_file(&filler).unwrap();
    wait_for(
        "writes resume",
        Duration::from_secs(120),
        || sensor.stderr().contains("store writes resumed"),
        || sensor.stderr(),
    );
    wait_for(
        "the gauge falls back to 0",
        Duration::from_secs(30),
        || metric(&metrics(), "pdns_store_write_blocked") == 0.0,
        || sensor.stderr(),
    );
    link.replay(&small, 1);
    std::thread::sleep(Duration::from_secs(3));
    let stopped = sensor.stop();
    assert!(stopped.status.success());
    for line in stopped.stderr.lines().filter(|l| l.contains("store")) {
        eprintln!("{line}");
    }
    eprintln!("{big_replays} replays of new names until the disk was full");

    // Nothing corrupt, nothing counted twice, and what came with room to
    // spare (the first and the last replays) all there.
    let stored = dump(&db);
    let small_replays = 3;
    for (name, n) in &once {
        let count = stored
            .iter()
            .filter(|((owner, _, _), _)| owner == name)
            .map(|(_, (count, _))| *count)
            .sum::<u64>();
        assert!(
            count <= n * small_replays + big_replays,
            "{name}: {count} sightings, more than {} replayed",
            n * small_replays + big_replays
        );
        assert!(
            count >= n * 2,
            "{name}: {count} sightings; the replays before the disk filled and after it had \
             room again hold {}",
            n * 2
        );
    }
}
