//! Signs of life on long work, as an operator sees them: periodic progress
//! lines when stderr is not a terminal, a bar on a terminal, nothing with
//! `--quiet`; and the counters behind them for a Zeek import (bytes as
//! stored, compressed for gzip; lines).
//!
//! A long job is a slow one: the capture comes through a named pipe that
//! the test feeds in two halves a few seconds apart (as `tcpdump -w - |
//! pdns-sensor ingest /dev/stdin` would), so the job lasts as long as the
//! test says whatever the machine's speed.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pdns_sensor::source::zeek::import::{ImportConfig, Importer};
use pdns_sensor::store::Store;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The pause between the two halves of the capture.
const PAUSE: Duration = Duration::from_millis(3000);

/// A named pipe at `path`, fed with `data` in two halves `PAUSE` apart by
/// a thread.
fn slow_pipe(path: &Path, data: Vec<u8>) -> JoinHandle<()> {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo (coreutils) is needed");
    assert!(status.success());
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        // Blocks until the sensor opens the pipe.
        let mut pipe = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let half = data.len() / 2;
        pipe.write_all(&data[..half]).unwrap();
        pipe.flush().unwrap();
        std::thread::sleep(PAUSE);
        pipe.write_all(&data[half..]).unwrap();
    })
}

/// A capture of a few hundred packets (the test captures, concatenated
/// frame by frame into one pcap).
fn capture(dir: &Path) -> (Vec<u8>, u64) {
    let out = dir.join("all.pcap");
    let mut frames = 0;
    let mut data = Vec::new();
    for (i, pcap) in [
        "dnscap/dns.pcap",
        "tcpdump/dns_udp_2.pcap",
        "dnscap/dns6.pcap",
    ]
    .iter()
    .enumerate()
    {
        let part = dir.join(format!("{i}.pcap"));
        common::rewrite_pcap(&common::pcap(pcap), &part, |f| {
            frames += 1;
            f.to_vec()
        });
        let bytes = std::fs::read(&part).unwrap();
        // One header: the first part's; the others' records after it.
        data.extend_from_slice(if i == 0 { &bytes } else { &bytes[24..] });
    }
    std::fs::write(&out, &data).unwrap();
    (data, frames)
}

fn ingest_from_pipe(args: &[&str], on_a_terminal: bool) -> (Output, u64, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let (data, frames) = capture(dir.path());
    let fifo = dir.path().join("capture.pipe");
    let db = dir.path().join("db");
    let feeder = slow_pipe(&fifo, data);
    let mut full = vec!["ingest", "--db", db.to_str().unwrap()];
    full.extend_from_slice(args);
    full.push(fifo.to_str().unwrap());
    let started = Instant::now();
    let out = if on_a_terminal {
        on_terminal(&full)
    } else {
        common::sensor_command().args(&full).output().unwrap()
    };
    let took = started.elapsed();
    feeder.join().unwrap();
    (out, frames, took)
}

/// Runs the sensor under a pseudo-terminal (util-linux `script`); its
/// stdout is everything the sensor wrote to the terminal.
fn on_terminal(args: &[&str]) -> Output {
    let command = std::iter::once(env!("CARGO_BIN_EXE_pdns-sensor"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    common::hermetic(&mut script)
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .output()
        .expect("script (util-linux) is needed")
}

#[test]
fn a_slow_ingest_logs_progress_lines_when_stderr_is_not_a_terminal() {
    let (out, frames, took) = ingest_from_pipe(&["--status-interval", "1"], false);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(took >= PAUSE, "{took:?}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(" ingest: ")).collect();
    // One a second during the pause: at least two, and each a log line
    // (level, then the numbers). A pipe has no size: bytes read, no ETA.
    assert!(lines.len() >= 2, "{err}");
    for line in &lines {
        assert!(line.contains("INFO"), "{line}");
        assert!(
            line.contains(" read, ") && line.contains(" packets/s"),
            "{line}"
        );
        assert!(!line.contains("ETA"), "{line}");
    }
    // During the pause, the first half is counted (a packet batch is
    // published at the end of a file, so packets may show only then).
    let first = lines[0];
    assert!(!first.contains("ingest: 0 B read"), "{first}");
    assert!(
        err.contains(&format!("{frames} frames")),
        "summary after the lines: {err}"
    );
    // No bar, no cursor movement, on a pipe.
    assert!(!err.contains('\u{1b}'), "{err:?}");
    // --quiet: no progress either.
    let (out, _, _) = ingest_from_pipe(&["--status-interval", "1", "--quiet"], false);
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn a_slow_ingest_draws_a_bar_on_a_terminal() {
    let (out, frames, took) = ingest_from_pipe(&["--status-interval", "1"], true);
    let tty = text(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(took >= PAUSE, "{took:?}");
    // The bar (a spinner: a pipe has no size) with what was read and how
    // fast, redrawn in place, then cleared before the summary.
    assert!(tty.contains(" ingest 00:00:0"), "{tty:?}");
    assert!(tty.contains(" read ("), "{tty:?}");
    assert!(tty.contains(" packets/s"), "{tty:?}");
    assert!(
        tty.contains("\u{1b}[2K"),
        "the bar is redrawn in place: {tty:?}"
    );
    // Not the lines meant for logs.
    assert!(!tty.contains("INFO"), "{tty:?}");
    let summary = tty.rfind("ingested 1 file(s)").expect("summary");
    assert!(
        tty[summary..].contains(&format!("{frames} frames")),
        "{tty:?}"
    );
    assert!(
        !tty[summary..].contains(" ingest 00:"),
        "bar after the summary: {tty:?}"
    );

    // --quiet: nothing at all.
    let (out, _, _) = ingest_from_pipe(&["--quiet"], true);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn a_quick_ingest_on_a_terminal_draws_no_bar() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let pcap = common::pcap("dnscap/dns.pcap");
    let out = on_terminal(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]);
    let tty = text(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(tty.starts_with("ingested 1 file(s)"), "{tty:?}");
}

/// A Zeek TSV log of `n` lines answering A queries.
fn zeek_log(n: usize) -> String {
    let mut s = String::from(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n\
         #fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\t\
         qclass\tqclass_name\tqtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected\n\
         #types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount\tinterval\tstring\tcount\tstring\t\
         count\tstring\tcount\tstring\tbool\tbool\tbool\tbool\tcount\tvector[string]\tvector[interval]\tbool\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "1600000000.000000\tC{i}\t10.0.0.1\t5353\t10.0.0.2\t53\tudp\t{i}\t0.01\thost{i}.example.com\t\
             1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\tF\tT\tT\t0\t192.0.2.{}\t60.000000\tF\n",
            i % 250
        ));
    }
    s
}

#[test]
fn a_zeek_import_counts_stored_bytes_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let log = zeek_log(n);
    let plain = dir.path().join("dns.log");
    std::fs::write(&plain, &log).unwrap();
    let gz = dir.path().join("dns.1.log.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(zeek_log(n / 2).as_bytes()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let sizes = std::fs::metadata(&plain).unwrap().len() + std::fs::metadata(&gz).unwrap().len();

    let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
    let mut importer = Importer::new(Arc::clone(&store), ImportConfig::default(), |_| {}).unwrap();
    let progress = importer.read_progress();
    importer.import_file(&plain).unwrap();
    assert_eq!(progress.bytes(), log.len() as u64);
    importer.import_file(&gz).unwrap();
    // Gzip: the compressed bytes, the file's size on disk.
    assert_eq!(progress.bytes(), sizes);
    let header_lines = 7;
    assert_eq!(progress.items(), (n + n / 2 + 2 * header_lines) as u64);
    // A file already imported is skipped, and counted as done.
    importer.import_file(&plain).unwrap();
    assert_eq!(progress.bytes(), sizes + log.len() as u64);
    let report = importer.finish().unwrap();
    assert_eq!(report.files_already_imported, 1);
    assert_eq!(report.stats.lines_imported, (n + n / 2) as u64);
}
