//! What a user reads when the store fails: the database, what was being
//! done, and the cause — whether one decoder thread or several were
//! writing — and a clear word when another process holds the database.
//!
//! The failure is real: `ingest` runs in a private mount namespace with its
//! database on a tmpfs too small for the capture, so RocksDB's write-ahead
//! log runs out of space halfway (needs root, like the live tests).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pdns_sensor::store::{Store, StoreError};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A classic pcap of `n` DNS responses, each for a name of its own, so
/// every one is a new key and the store has to grow.
fn distinct_answers(path: &Path, n: u32) {
    let mut out = Vec::with_capacity(n as usize * 110);
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..n {
        let mut dns = Vec::new();
        dns.extend_from_slice(&(i as u16).to_be_bytes());
        dns.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        let label = format!("h{i}");
        dns.push(label.len() as u8);
        dns.extend_from_slice(label.as_bytes());
        dns.extend_from_slice(b"\x04fill\x04test\x00\x00\x01\x00\x01");
        dns.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 10]);
        dns.extend_from_slice(&i.to_be_bytes()[1..]);
        let udp_len = 8 + dns.len() as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 53, 198, 51, 100, 7]);
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&[0, 53, 0x9c, 0x40]);
        frame.extend_from_slice(&udp_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&dns);
        out.extend_from_slice(&(1_700_000_000 + i / 1000).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    std::fs::write(path, out).unwrap();
}

/// `pdns-sensor ingest --threads T` with its database on a tmpfs of
/// `size`, in a mount namespace of its own.
fn ingest_on_small_tmpfs(mnt: &Path, size: &str, threads: u32, pcap: &Path) -> Output {
    assert!(
        Command::new("unshare").arg("--version").output().is_ok(),
        "unshare (util-linux) is needed"
    );
    std::fs::create_dir_all(mnt).unwrap();
    let script = format!(
        "mount -t tmpfs -o size={size} tmpfs {mnt} && exec {sensor} ingest --quiet --threads {threads} --db {mnt}/db {pcap}",
        mnt = mnt.display(),
        sensor = env!("CARGO_BIN_EXE_pdns-sensor"),
        pcap = pcap.display(),
    );
    let started = Instant::now();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env_remove("PDNS_DB")
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "ingest took {:?} to fail",
        started.elapsed()
    );
    out
}

#[test]
fn a_full_disk_is_reported_with_the_database_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("distinct.pcap");
    distinct_answers(&pcap, 200_000);
    for threads in [1, 2, 4] {
        let mnt = dir.path().join(format!("mnt-{threads}"));
        let out = ingest_on_small_tmpfs(&mnt, "8M", threads, &pcap);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{threads} threads: {err}");
        let db = format!("{}/db", mnt.display());
        for needed in [
            "writing to the database",
            &format!("database {db}: writing a batch"),
            "No space left on device",
        ] {
            assert!(
                err.contains(needed),
                "{threads} threads: {needed:?} in {err}"
            );
        }
        for wrong in ["thread stopped", "panicked", "secondary instance"] {
            assert!(
                !err.contains(wrong),
                "{threads} threads: {wrong:?} in {err}"
            );
        }
    }
}

#[test]
fn a_second_writer_is_told_the_database_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let _writer = Store::open(&db).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pdns-sensor"))
        .args(["ingest", "--db", db.to_str().unwrap()])
        .arg(common::pcap("dnscap/dns.pcap"))
        .env_remove("PDNS_DB")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "database {} is in use by another process",
            db.display()
        )),
        "{err}"
    );
    assert!(!err.contains("LOCK"), "{err}");
    // Readers still open it alongside the writer.
    assert!(Store::open_reader(&db).is_ok());
    // In-process, the error is its own variant.
    let second = std::thread::spawn(move || Store::open(&db).err())
        .join()
        .unwrap();
    assert!(matches!(second, Some(StoreError::InUse(_))), "{second:?}");
}
