//! dnstap scenario: how fast the sensor records DNS messages that a
//! resolver hands it over dnstap, beside the pcap ingest of the same
//! traffic, and whether anything is lost on the way.
//!
//! The workloads are the ingest scenario's 10 k- and 1 M-name ones (100 k
//! packets with `--quick`, 2 M without). Every DNS response in a
//! workload's pcap (decoded by the sensor's own pcap reader and decoder)
//! becomes a dnstap `RESOLVER_RESPONSE` frame: the response's bytes, its
//! capture time as the response time, UDP or TCP, the addresses and ports
//! of the packet and identity `bench`. The frames are cached next to the
//! pcap as a Frame Streams file (`{key}.dnstap`: START, data frames, STOP),
//! which `ingest` reads as it is.
//!
//! Per workload, each into a fresh database, one decoder/worker thread:
//!
//! 1. `ingest --threads 1` of the pcap: the baseline (packets/s, DNS
//!    responses/s) and the reference store;
//! 2. `ingest --threads 1` of the Frame Streams file;
//! 3. `run --dnstap unix:SOCK --no-api` fed by 1 and by 8 concurrent
//!    senders (threads of the harness): each connects, does the
//!    bidirectional handshake (READY → ACCEPT → START), writes its share of
//!    the frames in 1 MiB writes, sends STOP and waits for FINISH; then the
//!    sensor gets SIGTERM and is waited for.
//!
//! Messages per second are messages ÷ wall time: the process's whole life
//! for the ingests, from the first byte sent to the sensor's exit for the
//! socket runs (`stop s` in the table: from SIGTERM to the exit, the
//! part spent recording what was still queued, flushing and shutting
//! down). CPU seconds are the sensor process's (`wait4` rusage), so
//! messages per CPU-second is the rate one core sustains (the goal is
//! ≥ 1 M messages/s per core).
//!
//! Zero loss is checked, not assumed: the sensor's report must count every
//! message sent as recorded, and `dump --json` of each dnstap store
//! (records and negative answers) must equal the pcap ingest's on (rrname,
//! rrtype, rdata or rcode, count). Anything else marks the run failed,
//! which makes `bench run` exit non-zero once the results are written.
//! First/last-seen times are compared too and reported as a note.

use std::collections::HashSet;
use std::fs::{self, File};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ingest::{Sweep, sweep_workload, workload_fields};
use super::{Ctx, Outcome, Scenario};
use crate::child::{Measured, run_measured, spawn_measured};
use crate::progress;
use crate::report::{Entry, SENSOR, ratio};
use crate::sensor::{ingest_command, read_report};
use crate::table::{Table, num};
use crate::workload::{Prepared, Workload, prepare};
use pdns_sensor::decode::{DecodeConfig, Decoder};
use pdns_sensor::report::{DnstapReport, IngestReport, RunReport};
use pdns_sensor::source::dnstap::frame_streams::{
    CONTENT_TYPE, ControlType, encode_control, encode_data,
};
use pdns_sensor::source::dnstap::proto;
use pdns_sensor::vocab::packet::{DnsMessage, Frame, LinkType, Transport};

pub const NAME: &str = "dnstap";
/// Concurrent senders of the socket runs.
const SENDERS: [usize; 2] = [1, 8];
/// Bytes per `write` of a sender.
const WRITE_SIZE: usize = 1 << 20;
/// Longest a sender waits for a reply (FINISH comes once the sensor has
/// read everything sent before STOP), or for a write to be taken.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest the sensor may take to start listening, and to exit after
/// SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(300);
const FRAMES_FORMAT: &str = "pdns-bench-dnstap";
const FRAMES_VERSION: u32 = 1;

/// The dnstap scenario; `workloads`/`senders` override the defaults (tests).
#[derive(Clone, Debug, Default)]
pub struct Dnstap {
    pub workloads: Option<Vec<Workload>>,
    pub senders: Option<Vec<usize>>,
}

/// The ingest scenario's 10 k- and 1 M-name workloads.
pub fn default_workloads(quick: bool) -> Vec<Workload> {
    let packets = if quick { 100_000 } else { 2_000_000 };
    vec![
        sweep_workload("10k-names", Sweep::Names, packets, 10_000, 1_000),
        sweep_workload("1M-names", Sweep::Names, packets, 1_000_000, 1_000),
    ]
}

impl Scenario for Dnstap {
    fn name(&self) -> &'static str {
        NAME
    }

    fn title(&self) -> &'static str {
        "dnstap (Frame Streams → store, one worker thread; beside the pcap ingest)"
    }

    fn run(&self, ctx: &Ctx) -> Result<Outcome> {
        let workloads = self
            .workloads
            .clone()
            .unwrap_or_else(|| default_workloads(ctx.quick));
        let senders = self.senders.clone().unwrap_or_else(|| SENDERS.to_vec());
        let tmp = tempfile::Builder::new()
            .prefix("pdns-bench-dnstap-")
            .tempdir()?;
        let mut out = Outcome {
            entries: Vec::new(),
            table: Table::new(&[
                "workload",
                "input",
                "senders",
                "messages",
                "wall s",
                "stop s",
                "msg/s",
                "pkt/s",
                "CPU s",
                "msg/CPU-s",
                "RSS MiB",
                "vs pcap",
                "recorded",
                "store",
            ]),
        };
        for w in &workloads {
            let p = prepare(&ctx.cache_dir, w)?;
            let frames = prepare_frames(&p)?;
            let base = tmp.path().join(&w.label);

            // The baseline, and the store everything else must equal.
            let dir = base.join("pcap");
            fs::create_dir_all(&dir)?;
            let step = progress::step(format!("dnstap {}: pcap ingest --threads 1", w.label));
            let (mut pcap, reference) = ingest_run(ctx, &p, &dir, &p.pcap, Input::Pcap)?;
            drop(step);
            let Some(reference) = reference else {
                // No reference store: the dnstap runs cannot be checked.
                table_row(&mut out.table, &pcap);
                out.entries.push(pcap);
                continue;
            };
            pcap.set_figure("db_records", Some(reference.records.len() as f64));
            pcap.set_figure("db_negatives", Some(reference.negatives.len() as f64));
            table_row(&mut out.table, &pcap);
            let pcap_rate = pcap.figure("messages_per_sec");
            let pcap_cpu = pcap.figure("cpu_secs");
            out.entries.push(pcap);
            fs::remove_dir_all(&dir).ok();

            let mut runs = Vec::new();
            let dir = base.join("file");
            fs::create_dir_all(&dir)?;
            let step = progress::step(format!("dnstap {}: Frame Streams file ingest", w.label));
            let (mut e, _) = ingest_run(ctx, &p, &dir, &frames.path, Input::File)?;
            drop(step);
            check(ctx, &mut e, frames.messages, &dir.join("db"), &reference)?;
            fs::remove_dir_all(&dir).ok();
            runs.push(e);

            let loaded = Loaded::read(&frames.path)?;
            ensure!(
                loaded.starts.len() as u64 == frames.messages,
                "{}: {} frames, its manifest says {}",
                frames.path.display(),
                loaded.starts.len(),
                frames.messages
            );
            for &n in &senders {
                let dir = base.join(format!("socket-{n}"));
                fs::create_dir_all(&dir)?;
                let step = progress::step(format!(
                    "dnstap {}: run --dnstap unix:…, {n} sender(s)",
                    w.label
                ));
                let mut e = socket_run(ctx, &p, &dir, &loaded, n)?;
                drop(step);
                check(ctx, &mut e, frames.messages, &dir.join("db"), &reference)?;
                fs::remove_dir_all(&dir).ok();
                runs.push(e);
            }
            for mut e in runs {
                for (k, v) in [
                    (
                        "messages_per_sec_vs_pcap",
                        ratio(e.figure("messages_per_sec"), pcap_rate),
                    ),
                    ("cpu_vs_pcap", ratio(e.figure("cpu_secs"), pcap_cpu)),
                ] {
                    if let Some(v) = v {
                        e.ratios.insert(k.into(), v);
                    }
                }
                table_row(&mut out.table, &e);
                out.entries.push(e);
            }
        }
        Ok(out)
    }
}

/// What a run read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    Pcap,
    File,
    Socket,
}

impl Input {
    fn as_str(self) -> &'static str {
        match self {
            Input::Pcap => "pcap-ingest",
            Input::File => "file-ingest",
            Input::Socket => "socket",
        }
    }
}

/// An entry for one run of `input` over `p`'s workload.
fn new_entry(p: &Prepared, input: Input, senders: Option<usize>) -> Entry {
    let mut e = Entry::new(NAME, SENSOR);
    workload_fields(&mut e, p);
    let label = match senders {
        Some(n) => format!("{} {} x{n}", p.workload.label, input.as_str()),
        None => format!("{} {}", p.workload.label, input.as_str()),
    };
    e.set_workload("label", label.as_str());
    e.set_workload("workload", p.workload.label.as_str());
    e.set_workload("input", input.as_str());
    if let Some(n) = senders {
        e.set_workload("senders", n as u64);
    }
    e.set_workload("threads", 1);
    e
}

/// The process's CPU, memory and wall figures; `wall` is the time the
/// rate is taken over.
fn process_figures(e: &mut Entry, m: &Measured, wall: f64, messages: Option<f64>) {
    if !m.success() {
        e.notes.push(format!("failed: {}", m.describe_failure()));
    }
    let cpu = m.user_secs + m.sys_secs;
    e.set_figure("messages", messages);
    e.set_figure("wall_secs", Some(wall));
    e.set_figure("process_wall_secs", Some(m.wall.as_secs_f64()));
    e.set_figure("messages_per_sec", ratio(messages, Some(wall)));
    e.set_figure("cpu_user_secs", Some(m.user_secs));
    e.set_figure("cpu_sys_secs", Some(m.sys_secs));
    e.set_figure("cpu_secs", Some(cpu));
    e.set_figure("messages_per_cpu_sec", ratio(messages, Some(cpu)));
    e.set_figure("cpu_utilisation", ratio(Some(cpu), Some(wall)));
    e.set_figure("peak_rss_mib", Some(m.max_rss_kib as f64 / 1024.0));
}

/// The dnstap counters of a report as figures.
fn dnstap_figures(e: &mut Entry, d: &DnstapReport) {
    e.set_figure("frames", Some(d.frames as f64));
    e.set_figure("frame_bytes", Some(d.bytes as f64));
    e.set_figure("recorded", Some(d.recorded as f64));
    for (k, n) in &d.messages {
        e.set_figure(&format!("sensor.dnstap.messages.{k}"), Some(*n as f64));
    }
    for (k, n) in &d.discarded {
        e.set_figure(&format!("sensor.dnstap.discarded.{k}"), Some(*n as f64));
    }
    if let Some(c) = &d.connections {
        for (k, n) in [
            ("accepted", c.accepted),
            ("refused", c.refused),
            ("finished", c.finished),
            ("closed", c.closed),
            ("truncated", c.truncated),
            ("protocol_errors", c.protocol_errors),
            ("io_errors", c.io_errors),
            ("shutdown", c.shutdown),
        ] {
            e.set_figure(&format!("sensor.dnstap.connections.{k}"), Some(n as f64));
        }
    }
}

/// One `ingest --threads 1` of `file` (the pcap or the Frame Streams
/// file) into `dir/db`; for the pcap, also the store's digest.
fn ingest_run(
    ctx: &Ctx,
    p: &Prepared,
    dir: &Path,
    file: &Path,
    input: Input,
) -> Result<(Entry, Option<Digest>)> {
    let db = dir.join("db");
    fs::create_dir_all(&db)?;
    let stats = dir.join("stats.json");
    let cmd = ingest_command(&ctx.sensor, &db, 1, false, &stats, file);
    let m = run_measured(cmd, dir)?;
    let report: Result<IngestReport, String> = read_report(&stats);
    let mut e = new_entry(p, input, None);
    let wall = m.wall.as_secs_f64();
    let messages = match (&report, input) {
        (Ok(r), Input::Pcap) => Some(r.totals.dns_responses as f64),
        (Ok(r), _) => r.dnstap.as_ref().map(|d| d.frames as f64),
        (Err(_), _) => None,
    };
    process_figures(&mut e, &m, wall, messages);
    match &report {
        Ok(r) => {
            e.set_figure("elapsed_secs", Some(r.elapsed_secs));
            e.set_figure("observations", Some(r.totals.observations as f64));
            e.set_figure("records_written", Some(r.totals.records_written as f64));
            e.set_figure("negatives_written", Some(r.totals.negatives_written as f64));
            if input == Input::Pcap {
                let packets = Some(r.totals.packets as f64);
                e.set_figure("packets", packets);
                e.set_figure("packets_per_sec", ratio(packets, Some(wall)));
                e.set_figure("dns_responses", Some(r.totals.dns_responses as f64));
            } else if let Some(d) = &r.dnstap {
                dnstap_figures(&mut e, d);
            } else {
                e.notes
                    .push("failed: no dnstap section in the report".into());
            }
        }
        Err(problem) => e.notes.push(format!("failed: {problem}")),
    }
    let digest = if input == Input::Pcap && m.success() {
        Some(Digest::of(&ctx.sensor, &db)?)
    } else {
        None
    };
    Ok((e, digest))
}

/// `run --dnstap unix:dir/dnstap.sock` fed by `senders` concurrent
/// senders, SIGTERM once all have their FINISH.
fn socket_run(
    ctx: &Ctx,
    p: &Prepared,
    dir: &Path,
    frames: &Loaded,
    senders: usize,
) -> Result<Entry> {
    let db = dir.join("db");
    let sock = dir.join("dnstap.sock");
    let stats = dir.join("stats.json");
    let mut cmd = Command::new(&ctx.sensor);
    cmd.arg("run")
        .arg("--db")
        .arg(&db)
        .arg("--dnstap")
        .arg(format!("unix:{}", sock.display()))
        .args([
            "--dnstap-threads",
            "1",
            "--no-api",
            "--quiet",
            "--stats-json",
        ])
        .arg(&stats);
    let mut child = spawn_measured(cmd, dir)?;
    let deadline = Instant::now() + START_TIMEOUT;
    while !sock.exists() {
        if !alive(child.pid()) {
            bail!(
                "pdns-sensor run exited before listening: {}",
                child.stderr_tail()
            );
        }
        if Instant::now() > deadline {
            bail!("pdns-sensor run did not create {}", sock.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let shares = frames.shares(senders);
    let started = Instant::now();
    let sent: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| {
                let sock = &sock;
                scope.spawn(move || send(sock, share))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a sender thread panicked"))
            .collect()
    });
    let send_secs = started.elapsed().as_secs_f64();
    let stopping = Instant::now();
    child.signal(libc::SIGTERM)?;
    let m = child.wait_within(EXIT_TIMEOUT)?;
    let stop_secs = stopping.elapsed().as_secs_f64();
    let wall = started.elapsed().as_secs_f64();
    let report: Result<RunReport, String> = read_report(&stats);

    let mut e = new_entry(p, Input::Socket, Some(senders));
    e.set_workload("dnstap_threads", 1);
    let messages = frames.starts.len() as f64;
    process_figures(&mut e, &m, wall, Some(messages));
    e.set_figure("send_secs", Some(send_secs));
    e.set_figure("stop_secs", Some(stop_secs));
    for (i, r) in sent.iter().enumerate() {
        if let Err(err) = r {
            e.notes.push(format!("failed: sender {i}: {err:#}"));
        }
    }
    match &report {
        Ok(r) => {
            e.set_figure("elapsed_secs", Some(r.elapsed_secs));
            e.set_figure("observations", Some(r.totals.observations as f64));
            e.set_figure("records_written", Some(r.totals.records_written as f64));
            e.set_figure("negatives_written", Some(r.totals.negatives_written as f64));
            match &r.dnstap {
                Some(d) => {
                    dnstap_figures(&mut e, d);
                    let finished = d.connections.map_or(0, |c| c.finished);
                    if finished != senders as u64 {
                        e.notes.push(format!(
                            "failed: {finished} of {senders} sender connections ended with STOP"
                        ));
                    }
                }
                None => e
                    .notes
                    .push("failed: no dnstap section in the report".into()),
            }
        }
        Err(problem) => e.notes.push(format!("failed: {problem}")),
    }
    Ok(e)
}

/// Whether process `pid` is running (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// One sender: handshake, its frames, STOP, FINISH.
fn send(sock: &Path, frames: &[u8]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match UnixStream::connect(sock) {
            Ok(s) => break s,
            Err(e)
                if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context("connecting"),
        }
    };
    s.set_read_timeout(Some(REPLY_TIMEOUT))?;
    s.set_write_timeout(Some(REPLY_TIMEOUT))?;
    s.write_all(&encode_control(ControlType::Ready, Some(CONTENT_TYPE)))?;
    expect_control(&mut s, ControlType::Accept).context("waiting for ACCEPT")?;
    s.write_all(&encode_control(ControlType::Start, Some(CONTENT_TYPE)))?;
    for chunk in frames.chunks(WRITE_SIZE) {
        s.write_all(chunk).context("sending frames")?;
    }
    s.write_all(&encode_control(ControlType::Stop, None))?;
    expect_control(&mut s, ControlType::Finish).context("waiting for FINISH")?;
    Ok(())
}

/// Reads one control frame and checks that it is `kind`.
fn expect_control(s: &mut UnixStream, kind: ControlType) -> Result<()> {
    let mut head = [0u8; 8];
    s.read_exact(&mut head)?;
    ensure!(head[..4] == [0; 4], "a data frame instead of {kind:?}");
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    ensure!((4..=4096).contains(&len), "control frame of {len} bytes");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    // The type's number, as the sensor's own encoder writes it.
    let want = &encode_control(kind, None)[8..12];
    ensure!(
        body[..4] == *want,
        "control type {:?} instead of {kind:?}",
        &body[..4]
    );
    Ok(())
}

/// Checks a dnstap run against what was sent and the pcap ingest's store.
fn check(ctx: &Ctx, e: &mut Entry, sent: u64, db: &Path, reference: &Digest) -> Result<()> {
    match e.figure("recorded") {
        Some(r) if r as u64 == sent => {}
        Some(r) => e.notes.push(format!(
            "failed: recorded {} of {sent} messages sent",
            r as u64
        )),
        None => {}
    }
    if !db.exists() {
        e.notes.push("failed: no database".into());
        return Ok(());
    }
    let digest = Digest::of(&ctx.sensor, db)?;
    let (only_ref, only_here) = differ(&reference.records, &digest.records);
    let (neg_ref, neg_here) = differ(&reference.negatives, &digest.negatives);
    let (time_ref, time_here) = differ(&reference.timed, &digest.timed);
    let differences = only_ref.len() + only_here.len() + neg_ref.len() + neg_here.len();
    e.set_figure("db_records", Some(digest.records.len() as f64));
    e.set_figure("db_negatives", Some(digest.negatives.len() as f64));
    e.set_figure("store_differences", Some(differences as f64));
    e.set_figure(
        "store_time_differences",
        Some((time_ref.len() + time_here.len()) as f64),
    );
    if differences > 0 {
        let wanted: HashSet<u64> = only_ref
            .iter()
            .chain(&only_here)
            .chain(&neg_ref)
            .chain(&neg_here)
            .copied()
            .collect();
        let mut examples = Vec::new();
        for (side, dbdir) in [("pcap", reference.db.as_path()), ("dnstap", db)] {
            for line in Digest::examples(&ctx.sensor, dbdir, &wanted, 3)? {
                examples.push(format!("only in {side}'s: {line}"));
            }
        }
        e.notes.push(format!(
            "failed: store differs from the pcap ingest's: {} record and {} negative keys \
             only in the pcap's, {} and {} only in this one; {}",
            only_ref.len(),
            neg_ref.len(),
            only_here.len(),
            neg_here.len(),
            examples.join("; ")
        ));
    } else if !time_ref.is_empty() || !time_here.is_empty() {
        e.notes.push(format!(
            "first/last-seen times differ from the pcap ingest's for {} records",
            time_ref.len().max(time_here.len())
        ));
    }
    Ok(())
}

/// Sorted hashes of a store's contents, as `dump --json` prints them.
#[derive(Debug)]
struct Digest {
    db: PathBuf,
    /// (rrname, rrtype, rdata, count) of each record.
    records: Vec<u64>,
    /// The same with time_first and time_last.
    timed: Vec<u64>,
    /// (rrname, rrtype, rcode, count) of each negative answer.
    negatives: Vec<u64>,
}

impl Digest {
    fn of(sensor: &Path, db: &Path) -> Result<Digest> {
        let mut d = Digest {
            db: db.to_path_buf(),
            records: Vec::new(),
            timed: Vec::new(),
            negatives: Vec::new(),
        };
        dump(sensor, db, false, |_, key, timed| {
            d.records.push(key);
            d.timed.push(timed);
        })?;
        dump(sensor, db, true, |_, key, timed| {
            d.negatives.push(key);
            d.timed.push(timed);
        })?;
        d.records.sort_unstable();
        d.timed.sort_unstable();
        d.negatives.sort_unstable();
        Ok(d)
    }

    /// Up to `most` dump lines of `db` whose key is in `wanted`.
    fn examples(
        sensor: &Path,
        db: &Path,
        wanted: &HashSet<u64>,
        most: usize,
    ) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for negative in [false, true] {
            dump(sensor, db, negative, |line, key, _| {
                if found.len() < most && wanted.contains(&key) {
                    found.push(line.chars().take(300).collect());
                }
            })?;
        }
        Ok(found)
    }
}

/// Runs `dump --json [--negative]` on `db`, calling `each` with every line
/// and the hashes of its key with and without the times.
fn dump(
    sensor: &Path,
    db: &Path,
    negative: bool,
    mut each: impl FnMut(&str, u64, u64),
) -> Result<()> {
    let mut cmd = Command::new(sensor);
    cmd.arg("dump").arg("--db").arg(db).arg("--json");
    if negative {
        cmd.arg("--negative");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting pdns-sensor dump")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let value_field = if negative { "rcode" } else { "rdata" };
    let mut problem = None;
    for line in BufReader::with_capacity(1 << 20, stdout).lines() {
        let line = line?;
        let v: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                problem.get_or_insert(format!("unparsable dump line ({e}): {line}"));
                continue;
            }
        };
        let key = [&v["rrname"], &v["rrtype"], &v[value_field], &v["count"]];
        let mut h = DefaultHasher::new();
        negative.hash(&mut h);
        for k in key {
            k.to_string().hash(&mut h);
        }
        let plain = h.finish();
        v["time_first"].to_string().hash(&mut h);
        v["time_last"].to_string().hash(&mut h);
        each(&line, plain, h.finish());
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "pdns-sensor dump --db {}: {}: {}",
            db.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if let Some(p) = problem {
        bail!("pdns-sensor dump --db {}: {p}", db.display());
    }
    Ok(())
}

/// What is only in `a` and only in `b`, two sorted multisets.
fn differ(a: &[u64], b: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                only_a.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                only_b.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    only_a.extend_from_slice(&a[i..]);
    only_b.extend_from_slice(&b[j..]);
    (only_a, only_b)
}

/// A workload's responses as a cached Frame Streams file.
#[derive(Clone, Debug)]
pub struct Frames {
    pub path: PathBuf,
    /// Data frames (DNS responses) in it.
    pub messages: u64,
}

/// What is kept beside a cached Frame Streams file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct FramesManifest {
    format: String,
    version: u32,
    /// Size of the pcap the frames were made from.
    pcap_bytes: u64,
    messages: u64,
    udp: u64,
    tcp: u64,
    /// Size of the Frame Streams file.
    bytes: u64,
}

/// The cached Frame Streams file of `p`'s responses (`{key}.dnstap` next to
/// the pcap), made first if needed.
pub fn prepare_frames(p: &Prepared) -> Result<Frames> {
    let path = p.pcap.with_extension("dnstap");
    let manifest = p.pcap.with_extension("dnstap.json");
    let cached = fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<FramesManifest>(&t).ok())
        .filter(|m| {
            m.format == FRAMES_FORMAT
                && m.version == FRAMES_VERSION
                && m.pcap_bytes == p.summary.bytes
                && fs::metadata(&path).is_ok_and(|f| f.len() == m.bytes)
        });
    if let Some(m) = cached {
        return Ok(Frames {
            path,
            messages: m.messages,
        });
    }
    eprintln!(
        "encoding the responses of {} as dnstap into {}",
        p.workload.label,
        path.display()
    );
    let tmp = p.pcap.with_extension("dnstap.tmp");
    let mut enc = Encoder {
        out: BufWriter::with_capacity(1 << 20, File::create(&tmp)?),
        error: None,
        messages: 0,
        udp: 0,
        tcp: 0,
    };
    enc.write(&encode_control(ControlType::Start, Some(CONTENT_TYPE)));
    let mut decoder = Decoder::new(&DecodeConfig::default());
    pdns_sensor::source::pcap::read_file(&p.pcap, |frame| {
        let peer = Peer::of(frame);
        decoder.decode(frame, &mut |m| enc.response(&m, peer.as_ref()));
    })?;
    decoder.finish(&mut |m| enc.response(&m, None));
    enc.write(&encode_control(ControlType::Stop, None));
    if let Some(e) = enc.error {
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    let file = enc.out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let m = FramesManifest {
        format: FRAMES_FORMAT.into(),
        version: FRAMES_VERSION,
        pcap_bytes: p.summary.bytes,
        messages: enc.messages,
        udp: enc.udp,
        tcp: enc.tcp,
        bytes: file.metadata()?.len(),
    };
    fs::rename(&tmp, &path)?;
    fs::write(&manifest, serde_json::to_string_pretty(&m)? + "\n")?;
    Ok(Frames {
        path,
        messages: m.messages,
    })
}

/// Writes DNS responses as dnstap frames.
struct Encoder {
    out: BufWriter<File>,
    error: Option<std::io::Error>,
    messages: u64,
    udp: u64,
    tcp: u64,
}

impl Encoder {
    fn write(&mut self, bytes: &[u8]) {
        if self.error.is_none()
            && let Err(e) = self.out.write_all(bytes)
        {
            self.error = Some(e);
        }
    }

    /// A `RESOLVER_RESPONSE` for `m` if it is a response (QR set).
    fn response(&mut self, m: &DnsMessage<'_>, peer: Option<&Peer>) {
        if m.data.len() < 12 || m.data[2] & 0x80 == 0 {
            return;
        }
        let protocol = match m.transport {
            Transport::Udp => {
                self.udp += 1;
                proto::SocketProtocol::Udp
            }
            Transport::Tcp => {
                self.tcp += 1;
                proto::SocketProtocol::Tcp
            }
        };
        // The resolver asked (the packet's destination), the server
        // answered (its source).
        let message = proto::Message {
            r#type: proto::message::Type::ResolverResponse as i32,
            socket_family: peer.map(|p| p.family as i32),
            socket_protocol: Some(protocol as i32),
            query_address: peer.map(|p| Bytes::copy_from_slice(p.dst())),
            response_address: peer.map(|p| Bytes::copy_from_slice(p.src())),
            query_port: peer.and_then(|p| p.ports).map(|(_, d)| u32::from(d)),
            response_port: peer.and_then(|p| p.ports).map(|(s, _)| u32::from(s)),
            response_time_sec: Some(m.ts.secs),
            response_time_nsec: Some(m.ts.nanos),
            response_message: Some(Bytes::copy_from_slice(m.data)),
            ..Default::default()
        };
        let dnstap = proto::Dnstap {
            identity: Some(Bytes::from_static(b"bench")),
            r#type: proto::dnstap::Type::Message as i32,
            message: Some(message),
            ..Default::default()
        };
        let mut frame = Vec::with_capacity(dnstap.encoded_len() + 4);
        encode_data(&dnstap.encode_to_vec(), &mut frame);
        self.write(&frame);
        self.messages += 1;
    }
}

/// Addresses and ports of an Ethernet frame's IP packet.
#[derive(Clone, Copy, Debug)]
struct Peer {
    family: proto::SocketFamily,
    addrs: [u8; 32],
    /// Bytes per address: 4 or 16.
    len: usize,
    /// (source, destination), unless this is a later fragment.
    ports: Option<(u16, u16)>,
}

impl Peer {
    fn of(frame: &Frame<'_>) -> Option<Peer> {
        if frame.link != LinkType::Ethernet || frame.data.len() < 14 {
            return None;
        }
        let ip = &frame.data[14..];
        let ports = |l4: &[u8], protocol: u8| {
            (matches!(protocol, 6 | 17) && l4.len() >= 4).then(|| {
                (
                    u16::from_be_bytes([l4[0], l4[1]]),
                    u16::from_be_bytes([l4[2], l4[3]]),
                )
            })
        };
        let mut addrs = [0u8; 32];
        match u16::from_be_bytes([frame.data[12], frame.data[13]]) {
            0x0800 if ip.len() >= 20 => {
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                addrs[..4].copy_from_slice(&ip[12..16]);
                addrs[16..20].copy_from_slice(&ip[16..20]);
                let offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
                Some(Peer {
                    family: proto::SocketFamily::Inet,
                    addrs,
                    len: 4,
                    ports: (offset == 0)
                        .then(|| ports(ip.get(ihl..).unwrap_or_default(), ip[9]))
                        .flatten(),
                })
            }
            0x86dd if ip.len() >= 40 => {
                addrs[..16].copy_from_slice(&ip[8..24]);
                addrs[16..].copy_from_slice(&ip[24..40]);
                Some(Peer {
                    family: proto::SocketFamily::Inet6,
                    addrs,
                    len: 16,
                    ports: ports(&ip[40..], ip[6]),
                })
            }
            _ => None,
        }
    }

    fn src(&self) -> &[u8] {
        &self.addrs[..self.len]
    }

    fn dst(&self) -> &[u8] {
        &self.addrs[16..16 + self.len]
    }
}

/// A Frame Streams file in memory, its data frames located.
struct Loaded {
    data: Vec<u8>,
    /// Offset of each data frame.
    starts: Vec<usize>,
    /// Offset of what follows the last data frame (STOP).
    end: usize,
}

impl Loaded {
    fn read(path: &Path) -> Result<Loaded> {
        let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let be = |at: usize| -> Option<usize> {
            data.get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        ensure!(
            be(0) == Some(0),
            "{}: not a Frame Streams file",
            path.display()
        );
        let mut pos = 8 + be(4).context("short file")?;
        let mut starts = Vec::new();
        loop {
            match be(pos) {
                Some(0) | None => break,
                Some(len) => {
                    ensure!(pos + 4 + len <= data.len(), "{}: cut short", path.display());
                    starts.push(pos);
                    pos += 4 + len;
                }
            }
        }
        Ok(Loaded {
            data,
            starts,
            end: pos,
        })
    }

    /// The data frames split into `n` contiguous runs of whole frames, of
    /// (nearly) equal counts.
    fn shares(&self, n: usize) -> Vec<&[u8]> {
        let total = self.starts.len();
        let at = |i: usize| self.starts.get(i * total / n).copied().unwrap_or(self.end);
        (0..n)
            .map(|i| {
                let hi = if i + 1 == n { self.end } else { at(i + 1) };
                &self.data[at(i)..hi]
            })
            .collect()
    }
}

fn table_row(t: &mut Table, e: &Entry) {
    let f = |k: &str| e.figure(k);
    let input = e
        .workload
        .get("input")
        .and_then(Value::as_str)
        .unwrap_or("");
    let input = if e.failed() {
        format!("{input} (FAILED)")
    } else {
        input.to_string()
    };
    let senders = e
        .workload
        .get("senders")
        .and_then(Value::as_u64)
        .map_or("-".to_string(), |n| n.to_string());
    let recorded = match (f("recorded"), f("messages")) {
        (Some(r), Some(m)) if r == m => "all".to_string(),
        (Some(r), _) => num(Some(r), 0),
        _ => "-".to_string(),
    };
    let store = if e.workload.get("input").and_then(Value::as_str) == Some("pcap-ingest") {
        "reference".to_string()
    } else {
        match f("store_differences") {
            Some(0.0) => "equal".to_string(),
            Some(n) => format!("{n:.0} differ"),
            None => "-".to_string(),
        }
    };
    t.row(vec![
        e.workload
            .get("workload")
            .and_then(Value::as_str)
            .unwrap_or(e.label())
            .to_string(),
        input,
        senders,
        num(f("messages"), 0),
        num(f("wall_secs"), 3),
        num(f("stop_secs"), 3),
        num(f("messages_per_sec"), 0),
        num(f("packets_per_sec"), 0),
        num(f("cpu_secs"), 3),
        num(f("messages_per_cpu_sec"), 0),
        num(f("peak_rss_mib"), 1),
        num(e.ratios.get("messages_per_sec_vs_pcap").copied(), 3),
        recorded,
        store,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiset_difference() {
        let (a, b) = differ(&[1, 2, 2, 5], &[2, 3, 5, 5]);
        assert_eq!(a, vec![1, 2]);
        assert_eq!(b, vec![3, 5]);
        assert_eq!(differ(&[], &[]), (vec![], vec![]));
    }

    #[test]
    fn shares_are_whole_frames() {
        let mut data = encode_control(ControlType::Start, Some(CONTENT_TYPE));
        for i in 0..10u8 {
            encode_data(&vec![i; usize::from(i) + 1], &mut data);
        }
        data.extend(encode_control(ControlType::Stop, None));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.dnstap");
        fs::write(&path, &data).unwrap();
        let loaded = Loaded::read(&path).unwrap();
        assert_eq!(loaded.starts.len(), 10);
        for n in [1, 3, 8, 12] {
            let shares = loaded.shares(n);
            assert_eq!(shares.len(), n);
            let joined: Vec<u8> = shares.concat();
            assert_eq!(&joined[..], &data[loaded.starts[0]..loaded.end]);
            for s in shares.iter().filter(|s| !s.is_empty()) {
                // Each share starts with a frame's length.
                let len = u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
                assert!((1..=10).contains(&len));
            }
        }
    }
}
