//! Soak scenario: `pdns-sensor run` capturing live for a fixed time
//! (default 600 s) at a steady packet rate whose set of names keeps
//! growing, sampled every few seconds; it fails on memory beyond the
//! documented bound, on memory that keeps growing, and on any loss.
//!
//! The other scenarios measure speed over a fixed workload in seconds; a
//! sensor runs for months. What a short run cannot show is whether memory,
//! open files, compaction debt or lookup latency creep upward while the
//! store and the aggregator see ever more distinct keys. This scenario is
//! that check, sized to finish in minutes.
//!
//! **Traffic** ([`traffic`]): the live scenario's veth pair between two
//! private namespaces, but no `tcpreplay` (a pcap loops over the same
//! names): a thread of this process in the tx namespace builds and sends
//! each exchange as it goes, at `--soak-pps` frames per second (default
//! 50 000 = 25 000 exchanges/s; a 2-core VM shared with the sender takes it
//! without a drop). Half the exchanges ask a name never seen before (12 500
//! new names a second at the default rate, 7.5 M over 10 minutes), half
//! repeat an earlier one; one A record per name, so what the store must
//! hold is known exactly.
//!
//! **Sensor**: `pdns-sensor run` on the receiving end with one decoder
//! thread (`--threads 1`: the other core is the sender's and the
//! harness's), the default ring, its API on loopback inside the rx
//! namespace.
//!
//! **Samples**, every [`SAMPLE_EVERY`] (and once before the traffic and
//! once after its last flush): RSS (`VmRSS`), open files (`/proc/PID/fd`),
//! from `/metrics` the RocksDB compaction debt
//! (`pdns_rocksdb_property{property="pending_compaction_bytes"}` summed
//! over column families: RocksDB's estimate of the bytes compaction must
//! rewrite to bring every level within its target), SST and memtable
//! bytes, the shared block cache's usage, the table readers outside it,
//! what the allocator holds (`pdns_allocator_bytes`: allocated and
//! resident), frames captured (hence packets/s), ring drops and decode drops;
//! and [`LOOKUPS`] timed API lookups (half DNSDB
//! `/dnsdb/v2/lookup/rrset/name/NAME/A`, half CIRCL `/pdns/query/NAME`),
//! p50 and p99 per sample, of names sent at least [`SETTLED`] earlier, each
//! of which must be found. The series is written as CSV and JSON, and
//! plotted (`latest-soak.svg`: RSS with its bound, open files, compaction
//! debt, API latency over time).
//!
//! **Fails** (a `failed:` note on the entry, so `bench run` exits non-zero)
//! when:
//!
//! - **RSS exceeds the documented bound** at any sample ([`rss_bound_mib`],
//!   README, *Resources and sizing*): the process itself, all memtables
//!   (192 MiB), the shared block cache (64 MiB), and per decoder thread its
//!   capture ring (64 MiB, resident from the start: 64 of the 89 MiB the
//!   sensor holds idle, per `/proc/PID/smaps`) and its pre-aggregation maps
//!   with the batch being written (100 MiB) and its repeated responses
//!   (23 MiB): 483 MiB with the one thread
//!   here. (The first version of this check took the README's earlier
//!   "100 MiB plus 100 MiB per decoder thread", measured with `ingest`,
//!   which flushes its memtables early; `run` fills them to their bound
//!   over minutes, and RSS passed that figure at 293 MiB);
//! - **RSS beyond the caches keeps growing**: the least-squares slope over
//!   the second half of the traffic of RSS minus the memtables and the
//!   block cache (both read from `/metrics`; they fill up to their bounds
//!   as the data grows, in steps at flushes and compactions) is above
//!   [`LEAK_MIB_PER_MIN`] MiB a minute. Judged only when that half spans
//!   at least [`LEAK_MIN_SECS`] seconds; a shorter run's row says so. The
//!   plain RSS slope is shown beside it, and the allocator's own count of
//!   bytes in use beyond the caches: a leak grows there too, while memory
//!   the allocator keeps after it was freed (fragmentation: what glibc's
//!   malloc did here) grows RSS alone. The block cache's usage is read
//!   from the cache itself: the sensor used to report a stray 32 MiB cache
//!   of the default column family instead (4 KiB, always), so the shared
//!   cache filling up counted as growth beyond the caches;
//! - **anything is lost**: ring drops (`PACKET_STATISTICS`), any decode or
//!   extraction drop reason, corrupt stored values, an API error or a
//!   lookup that does not find its name;
//! - **the counts disagree with what was sent**: frames captured, DNS
//!   responses and record observations against frames and exchanges sent,
//!   and the records in the store after the run (`pdns-sensor dump`,
//!   counted) against the distinct names sent.
//!
//! **Not part of `--quick`**: a quick run leaves the soak out unless it is
//! named (`--scenario soak`), and then it runs [`QUICK_SECS`] seconds, so
//! `cargo xtask test` never waits ten minutes. The full `cargo xtask bench`
//! runs it for 600 s (`--soak-seconds` or `PDNS_BENCH_SOAK_SECONDS` to
//! change; `--soak-pps`, `PDNS_BENCH_SOAK_PPS` for the rate).
//!
//! Needs root and `ip`; without them the entry says "not run: …". The
//! namespaces, processes and temporary database go with their drop guards.

pub mod probe;
pub mod traffic;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use plotters::style::RGBColor;
use serde::Serialize;

use super::live::capture::{Capture, Captured, Programs, RingSize, System};
use super::live::veth::{TX_IF, VethPair};
use super::{Ctx, Outcome, Scenario};
use crate::plot::soak::{Panel, TimeLine, render_time_panels};
use crate::report::{Entry, SENSOR};
use crate::sysinfo::Machine;
use crate::table::{Table, num};
use crate::tools;
use probe::{open_files, parse_metrics, quantile, rss_bytes, slope, sum};
use traffic::{Sender, Sent, names_in, qname};

pub const NAME: &str = "soak";
/// Seconds of traffic of a full run.
pub const DEFAULT_SECS: u64 = 600;
/// Seconds of traffic of `--quick --scenario soak`.
pub const QUICK_SECS: u64 = 20;
/// Frames per second sent by default.
pub const DEFAULT_PPS: u64 = 50_000;
/// Between two samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Timed API lookups per sample.
pub const LOOKUPS: u64 = 20;
/// A name sent this long ago must be found by the API (flush interval
/// 5 s, plus the write, plus margin).
pub const SETTLED: Duration = Duration::from_secs(20);
/// Decoder threads of the sensor.
const THREADS: u32 = 1;
/// Most RSS may grow per minute over the second half of the run.
pub const LEAK_MIB_PER_MIN: f64 = 2.0;
/// The leak check needs a second half at least this long.
pub const LEAK_MIN_SECS: f64 = 120.0;
/// Where the sensor's API listens inside the rx namespace.
const API: &str = "127.0.0.1:8081";
/// After the last exchange: one flush interval and a margin, so the last
/// sample and the counts see everything.
const DRAIN: Duration = Duration::from_secs(8);
/// Longest wait for the API to answer after the sensor started.
const API_TIMEOUT: Duration = Duration::from_secs(60);

const MIB: f64 = 1024.0 * 1024.0;

/// The documented RSS bound (README, *Resources and sizing*) for
/// `threads` decoder threads with one default ring each, in MiB: what the
/// process needs besides its caches ([`BASE_MIB`]), the rings, all
/// memtables together ([`MEMTABLES_MIB`]), the shared block cache
/// ([`BLOCK_CACHE_MIB`]) and per decoder thread its pre-aggregation maps
/// and the batch being written ([`PER_THREAD_MIB`]).
pub fn rss_bound_mib(threads: u32) -> f64 {
    let t = f64::from(threads.max(1));
    BASE_MIB
        + MEMTABLES_MIB
        + BLOCK_CACHE_MIB
        + t * (PER_THREAD_MIB + RingSize::default_ring().bytes() as f64 / MIB)
}

/// The process without caches, rings or maps: code, runtime, API, metrics,
/// RocksDB's own bookkeeping.
pub const BASE_MIB: f64 = 40.0;
/// All memtables together (`db_write_buffer_size`).
pub const MEMTABLES_MIB: f64 = 192.0;
/// The block cache every column family shares.
pub const BLOCK_CACHE_MIB: f64 = 64.0;
/// One decoder thread's two pre-aggregation maps (each flushed at 32 MiB of
/// key bytes) with their entries, and the batch its writer holds (100
/// MiB), and the responses it remembers to count their repeats (23 MiB
/// at most: 20 MiB, an index of 2 MiB and the messages held back, for a
/// thread that holds the whole default aggregator bound).
pub const PER_THREAD_MIB: f64 = 123.0;

/// `--soak-seconds` and `--soak-pps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Seconds of traffic; `None`: [`DEFAULT_SECS`], or [`QUICK_SECS`]
    /// with `--quick`.
    pub seconds: Option<u64>,
    pub pps: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seconds: None,
            pps: DEFAULT_PPS,
        }
    }
}

impl Options {
    pub fn seconds(&self, quick: bool) -> u64 {
        self.seconds
            .unwrap_or(if quick { QUICK_SECS } else { DEFAULT_SECS })
            .max(1)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Soak;

/// One sample of the running sensor.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Sample {
    /// Seconds since the traffic started (negative: before it).
    pub t_secs: f64,
    /// `traffic`, `before` or `after`.
    pub phase: &'static str,
    pub exchanges_sent: u64,
    pub names_sent: u64,
    pub rss_mib: Option<f64>,
    pub open_files: Option<f64>,
    pub pending_compaction_mib: Option<f64>,
    pub sst_mib: Option<f64>,
    pub memtable_mib: Option<f64>,
    /// The shared block cache's usage (`cf="all"`).
    pub block_cache_mib: Option<f64>,
    /// Table file readers outside the block cache, all column families.
    pub table_readers_mib: Option<f64>,
    /// Bytes the program holds allocated (`pdns_allocator_bytes`, jemalloc's
    /// `stats.allocated`), RocksDB's included.
    pub allocated_mib: Option<f64>,
    /// What the allocator keeps resident (`stats.resident`).
    pub allocator_resident_mib: Option<f64>,
    pub frames: Option<f64>,
    /// Frames per second since the previous sample.
    pub captured_pps: Option<f64>,
    pub ring_drops: Option<f64>,
    pub decode_drops: Option<f64>,
    pub corrupt_values: Option<f64>,
    pub aggregator_entries: Option<f64>,
    pub api_p50_ms: Option<f64>,
    pub api_p99_ms: Option<f64>,
    pub lookups: u64,
    pub lookup_misses: u64,
    pub api_errors: u64,
}

/// What the rx-namespace thread brings back from one sample.
struct Remote {
    metrics: Result<String, String>,
    /// (surface, ms, found, must be found) per lookup, or an error.
    lookups: Vec<Result<(f64, bool, bool), String>>,
}

/// The lookups of sample `i` when `settled` names are surely stored and
/// `sent` were sent: names among the settled ones (must be found), or
/// among those sent while none has settled yet (latency only).
fn lookup_plan(i: u64, settled: u64, sent: u64) -> Vec<(String, String, bool)> {
    let (pool, must) = if settled > 0 {
        (settled, true)
    } else {
        (sent.max(1), false)
    };
    (0..LOOKUPS)
        .map(|j| {
            let id = crate::r#gen::rng::mix64(i * 1_000 + j) % pool;
            let name = qname(id);
            let path = if j % 2 == 0 {
                format!("/dnsdb/v2/lookup/rrset/name/{name}/A")
            } else {
                format!("/pdns/query/{name}")
            };
            (path, name, must)
        })
        .collect()
}

fn remote(addr: SocketAddr, plan: Vec<(String, String, bool)>) -> Remote {
    let metrics = probe::get(addr, "/metrics")
        .map_err(|e| format!("{e:#}"))
        .and_then(|(status, body)| match status {
            200 => Ok(body),
            s => Err(format!("/metrics: HTTP {s}")),
        });
    let lookups = plan
        .into_iter()
        .map(|(path, name, must)| {
            probe::timed_lookup(addr, &path, &name)
                .map(|(ms, found)| (ms, found, must))
                .map_err(|e| format!("{e:#}"))
        })
        .collect();
    Remote { metrics, lookups }
}

/// The sampler: the sensor's pid and a thread in its namespace.
struct Sampler<'a> {
    pid: u32,
    ns: crate::netns::NsThread,
    addr: SocketAddr,
    /// (t, exchanges sent) of every sample so far.
    history: Vec<(f64, u64)>,
    samples: Vec<Sample>,
    /// Every lookup's latency, all samples.
    latencies: Vec<f64>,
    errors: Vec<String>,
    start: &'a Instant,
}

impl Sampler<'_> {
    fn take(&mut self, phase: &'static str, exchanges: u64) -> Result<()> {
        let t = if phase == "before" {
            0.0
        } else {
            self.start.elapsed().as_secs_f64()
        };
        let settled_at = t - SETTLED.as_secs_f64();
        let settled = self
            .history
            .iter()
            .rev()
            .find(|(ht, _)| *ht <= settled_at && phase != "before")
            .map_or(0, |(_, x)| names_in(*x));
        let i = self.samples.len() as u64;
        let plan = lookup_plan(i, settled, names_in(exchanges));
        let addr = self.addr;
        let r = self.ns.run(move || remote(addr, plan))?;
        let mut s = Sample {
            t_secs: t,
            phase,
            exchanges_sent: exchanges,
            names_sent: names_in(exchanges),
            rss_mib: rss_bytes(self.pid).map(|b| b / MIB),
            open_files: open_files(self.pid),
            ..Sample::default()
        };
        match &r.metrics {
            Ok(text) => {
                let m = parse_metrics(text);
                let prop = |p: &'static str| {
                    sum(&m, "pdns_rocksdb_property", |x| {
                        x.label("property") == Some(p)
                    })
                    .map(|v| v / MIB)
                };
                s.pending_compaction_mib = prop("pending_compaction_bytes");
                s.sst_mib = prop("sst_bytes");
                s.memtable_mib = prop("memtable_bytes");
                s.block_cache_mib = prop("block_cache_bytes");
                s.table_readers_mib = prop("table_readers_bytes");
                let allocator = |k: &'static str| {
                    sum(&m, "pdns_allocator_bytes", |x| x.label("kind") == Some(k)).map(|v| v / MIB)
                };
                s.allocated_mib = allocator("allocated");
                s.allocator_resident_mib = allocator("resident");
                s.frames = sum(&m, "pdns_capture_packets_total", |_| true);
                s.ring_drops = sum(&m, "pdns_capture_drops_total", |_| true);
                s.decode_drops = sum(&m, "pdns_decode_drops_total", |_| true);
                s.corrupt_values = sum(&m, "pdns_store_corrupt_values_total", |_| true);
                s.aggregator_entries = sum(&m, "pdns_aggregator_entries", |_| true);
            }
            Err(e) => self.errors.push(format!("at {t:.0} s: {e}")),
        }
        if let Some(prev) = self.samples.last() {
            let dt = t - prev.t_secs;
            if let (Some(a), Some(b)) = (prev.frames, s.frames)
                && dt > 0.0
            {
                s.captured_pps = Some((b - a) / dt);
            }
        }
        let mut ms = Vec::new();
        for l in r.lookups {
            s.lookups += 1;
            match l {
                Ok((t_ms, found, must)) => {
                    ms.push(t_ms);
                    if must && !found {
                        s.lookup_misses += 1;
                    }
                }
                Err(e) => {
                    s.api_errors += 1;
                    self.errors.push(format!("at {t:.0} s: {e}"));
                }
            }
        }
        s.api_p50_ms = quantile(&ms, 0.5);
        s.api_p99_ms = quantile(&ms, 0.99);
        self.latencies.extend(ms);
        self.history.push((t, exchanges));
        self.samples.push(s);
        Ok(())
    }
}

/// Counts the records in the store at `db` (`pdns-sensor dump --json`,
/// one line each).
fn count_records(sensor: &Path, db: &Path) -> Result<u64> {
    let mut child = Command::new(sensor)
        .arg("dump")
        .arg("--db")
        .arg(db)
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting pdns-sensor dump")?;
    let out = child.stdout.take().context("stdout")?;
    let mut n = 0u64;
    let mut r = BufReader::with_capacity(1 << 20, out);
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        n += buf.iter().filter(|b| **b == b'\n').count() as u64;
        let len = buf.len();
        r.consume(len);
    }
    let status = child.wait()?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        bail!("pdns-sensor dump: {status}: {}", err.trim());
    }
    Ok(n)
}

/// Everything one soak run produced.
struct Run {
    sent: Sent,
    samples: Vec<Sample>,
    latencies: Vec<f64>,
    errors: Vec<String>,
    captured: Captured,
    store_records: Result<u64, String>,
}

fn soak_run(ctx: &Ctx, secs: u64, pps: u64) -> Result<Run> {
    let pair = VethPair::new().context("setting up the veth pair")?;
    let programs = Programs::new(&ctx.sensor);
    let extra: [&OsStr; 2] = [OsStr::new("--listen"), OsStr::new(API)];
    let capture = Capture::start_with(
        &pair.rx,
        &programs,
        System::Sensor,
        THREADS,
        RingSize::default_ring(),
        &extra,
    )?;
    let pid = capture.pid().context("no sensor pid")?;
    let addr: SocketAddr = API.parse()?;
    let ns = pair.rx.thread()?;
    // The API listens before capture starts, but wait for it anyway.
    let deadline = Instant::now() + API_TIMEOUT;
    loop {
        let up = ns.run(move || probe::get(addr, "/metrics").map(|(s, _)| s).ok())?;
        if up == Some(200) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the sensor's API did not answer within {API_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let start = Instant::now();
    let mut sampler = Sampler {
        pid,
        ns,
        addr,
        history: Vec::new(),
        samples: Vec::new(),
        latencies: Vec::new(),
        errors: Vec::new(),
        start: &start,
    };
    sampler.take("before", 0)?;
    let start = Instant::now();
    sampler.start = &start;
    let sender = Sender::start(pair.tx.name(), TX_IF, pps, secs as f64)?;
    let mut next = SAMPLE_EVERY;
    // A process that exited but is not reaped yet (a zombie) has no VmRSS.
    let alive = |pid: u32| rss_bytes(pid).is_some();
    while !sender.is_finished() {
        if start.elapsed() >= next {
            let done = sender.progress.load(std::sync::atomic::Ordering::Relaxed);
            sampler.take("traffic", done)?;
            let s = sampler.samples.last().expect("just taken");
            eprintln!(
                "soak: {:>4.0} s  {} names  RSS {} MiB (memtables {}, allocated {})  fds {}  \
                 debt {} MiB  API p99 {} ms  drops {}",
                s.t_secs,
                num(Some(s.names_sent as f64), 0),
                num(s.rss_mib, 1),
                num(s.memtable_mib, 1),
                num(s.allocated_mib, 1),
                num(s.open_files, 0),
                num(s.pending_compaction_mib, 1),
                num(s.api_p99_ms, 2),
                num(s.ring_drops.zip(s.decode_drops).map(|(a, b)| a + b), 0),
            );
            next += SAMPLE_EVERY;
        }
        if !alive(pid) {
            drop(sender);
            bail!("the sensor exited during the soak");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = sender.finish(false)?;
    sampler.take("traffic", sent.exchanges)?;
    std::thread::sleep(DRAIN);
    sampler.take("after", sent.exchanges)?;
    let Sampler {
        ns,
        samples,
        latencies,
        errors,
        ..
    } = sampler;
    drop(ns);
    let (captured, dir) = capture.stop_keeping()?;
    drop(pair);
    eprintln!("soak: counting the stored records ...");
    let store_records =
        count_records(&ctx.sensor, &dir.path().join("db")).map_err(|e| format!("{e:#}"));
    Ok(Run {
        sent,
        samples,
        latencies,
        errors,
        captured,
        store_records,
    })
}

/// Max of the present values.
fn peak(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    v.flatten().reduce(f64::max)
}

/// The checks of a finished run: `(what, value, verdict)` rows and the
/// failures among them.
struct Verdict {
    rows: Vec<[String; 3]>,
    failures: Vec<String>,
    notes: Vec<String>,
}

fn judge(run: &Run, secs: u64, pps: u64) -> Verdict {
    let mut v = Verdict {
        rows: Vec::new(),
        failures: Vec::new(),
        notes: Vec::new(),
    };
    let check = |v: &mut Verdict, what: &str, value: String, ok: bool, why: String| {
        v.rows.push([
            what.to_string(),
            value,
            if ok {
                "ok".into()
            } else {
                format!("FAIL: {why}")
            },
        ]);
        if !ok {
            v.failures.push(format!("{what}: {why}"));
        }
    };
    let s = &run.samples;
    let traffic: Vec<&Sample> = s.iter().filter(|x| x.phase == "traffic").collect();
    let sent = &run.sent;
    v.rows.push([
        "traffic".into(),
        format!(
            "{} s at {} frames/s ({} requested), {} exchanges, {} distinct names",
            num(Some(sent.secs), 0),
            num(Some(sent.pps()), 0),
            num(Some(pps as f64), 0),
            num(Some(sent.exchanges as f64), 0),
            num(Some(sent.names() as f64), 0)
        ),
        String::new(),
    ]);
    if sent.pps() < 0.95 * pps as f64 {
        v.notes.push(format!(
            "the sender reached {} frames/s of {pps} requested",
            num(Some(sent.pps()), 0)
        ));
    }
    // RSS.
    let bound = rss_bound_mib(THREADS);
    let rss_peak = peak(s.iter().map(|x| x.rss_mib));
    let first = s.first().and_then(|x| x.rss_mib);
    let last = traffic.last().and_then(|x| x.rss_mib);
    check(
        &mut v,
        "RSS (MiB) start / end / peak",
        format!(
            "{} / {} / {}",
            num(first, 1),
            num(last, 1),
            num(rss_peak, 1)
        ),
        rss_peak.is_some_and(|p| p <= bound),
        format!(
            "peak {} MiB above the documented bound {bound} MiB",
            num(rss_peak, 1)
        ),
    );
    let half = secs as f64 / 2.0;
    let second: Vec<(f64, f64)> = traffic
        .iter()
        .filter(|x| x.t_secs >= half)
        .filter_map(|x| Some((x.t_secs / 60.0, x.rss_mib?)))
        .collect();
    let rss_slope = slope(&second);
    // What RSS holds beyond the two caches that fill up to their bounds as
    // the data grows: a leak shows here.
    let beyond: Vec<(f64, f64)> = traffic
        .iter()
        .filter(|x| x.t_secs >= half)
        .filter_map(|x| {
            let caches = x.memtable_mib.unwrap_or(0.0) + x.block_cache_mib.unwrap_or(0.0);
            Some((x.t_secs / 60.0, x.rss_mib? - caches))
        })
        .collect();
    let beyond_slope = slope(&beyond);
    if secs as f64 - half >= LEAK_MIN_SECS {
        v.rows.push([
            "RSS slope, second half (MiB/min)".into(),
            num(rss_slope, 2),
            "memtables and block cache fill up to their bounds".into(),
        ]);
        check(
            &mut v,
            "RSS beyond memtables and block cache, slope (MiB/min)",
            num(beyond_slope, 2),
            beyond_slope.is_some_and(|x| x <= LEAK_MIB_PER_MIN),
            format!(
                "RSS beyond the caches grows {} MiB/min, limit {LEAK_MIB_PER_MIN}",
                num(beyond_slope, 2)
            ),
        );
    } else {
        v.rows.push([
            "RSS slope, second half (MiB/min)".into(),
            num(rss_slope, 2),
            format!("not judged: run under {} s", 2.0 * LEAK_MIN_SECS),
        ]);
    }
    // The allocator's view of the same: bytes the program holds beyond the
    // caches (a leak grows here; fragmentation only in RSS).
    let held: Vec<(f64, f64)> = traffic
        .iter()
        .filter(|x| x.t_secs >= half)
        .filter_map(|x| {
            let caches = x.memtable_mib.unwrap_or(0.0) + x.block_cache_mib.unwrap_or(0.0);
            Some((x.t_secs / 60.0, x.allocated_mib? - caches))
        })
        .collect();
    v.rows.push([
        "allocated beyond memtables and block cache, slope (MiB/min)".into(),
        num(slope(&held), 2),
        if secs as f64 - half >= LEAK_MIN_SECS {
            "not judged: the allocator's count of bytes in use (pdns_allocator_bytes)".into()
        } else {
            format!("not judged: run under {} s", 2.0 * LEAK_MIN_SECS)
        },
    ]);
    v.rows.push([
        "allocated / allocator resident (MiB) end".into(),
        format!(
            "{} / {}",
            num(traffic.last().and_then(|x| x.allocated_mib), 1),
            num(traffic.last().and_then(|x| x.allocator_resident_mib), 1)
        ),
        String::new(),
    ]);
    let fds = |f: fn(&Sample) -> Option<f64>, d: usize| {
        format!(
            "{} / {} / {}",
            num(s.first().and_then(f), d),
            num(traffic.last().and_then(|x| f(x)), d),
            num(peak(s.iter().map(f)), d)
        )
    };
    v.rows.push([
        "open files start / end / peak".into(),
        fds(|x| x.open_files, 0),
        String::new(),
    ]);
    v.rows.push([
        "compaction debt (MiB) start / end / peak".into(),
        fds(|x| x.pending_compaction_mib, 1),
        String::new(),
    ]);
    v.rows.push([
        "SST (MiB) start / end / peak".into(),
        fds(|x| x.sst_mib, 1),
        String::new(),
    ]);
    v.rows.push([
        "table readers (MiB) start / end / peak".into(),
        fds(|x| x.table_readers_mib, 2),
        "outside the block cache, one per open table file".into(),
    ]);
    let p50 = quantile(&run.latencies, 0.5);
    let p99 = quantile(&run.latencies, 0.99);
    let worst = peak(s.iter().map(|x| x.api_p99_ms));
    let lookups: u64 = s.iter().map(|x| x.lookups).sum();
    let misses: u64 = s.iter().map(|x| x.lookup_misses).sum();
    let api_errors: u64 = s.iter().map(|x| x.api_errors).sum();
    v.rows.push([
        "API lookups p50 / p99 / worst sample p99 (ms)".into(),
        format!("{} / {} / {}", num(p50, 2), num(p99, 2), num(worst, 2)),
        String::new(),
    ]);
    check(
        &mut v,
        "API lookups, errors, misses",
        format!("{lookups}, {api_errors}, {misses}"),
        api_errors == 0 && misses == 0 && run.errors.is_empty(),
        format!(
            "{api_errors} errors, {misses} names sent ≥ {} s earlier not found{}",
            SETTLED.as_secs(),
            run.errors
                .first()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        ),
    );
    // Loss.
    let report = run.captured.report.as_deref();
    let kernel = run.captured.drops;
    check(
        &mut v,
        "ring drops",
        num(kernel, 0),
        kernel == Some(0.0),
        format!("{} frames dropped by the kernel", num(kernel, 0)),
    );
    let decode: Option<u64> = report.map(|r| r.totals.drops.values().sum());
    let reasons: Vec<String> = report
        .map(|r| {
            r.totals
                .drops
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect()
        })
        .unwrap_or_default();
    check(
        &mut v,
        "decode and extraction drops",
        num(decode.map(|d| d as f64), 0),
        decode == Some(0),
        reasons.join(", "),
    );
    let corrupt = peak(s.iter().map(|x| x.corrupt_values));
    check(
        &mut v,
        "corrupt stored values",
        num(corrupt, 0),
        corrupt.is_none_or(|c| c == 0.0),
        format!("{} corrupt values", num(corrupt, 0)),
    );
    // Counts against what was sent.
    let count = |v: &mut Verdict, what: &str, got: Option<f64>, want: u64| {
        check(
            v,
            what,
            format!("{} of {}", num(got, 0), num(Some(want as f64), 0)),
            got == Some(want as f64),
            format!("{} recorded, {want} sent", num(got, 0)),
        );
    };
    count(&mut v, "frames captured", run.captured.frames, sent.frames);
    count(
        &mut v,
        "DNS responses",
        run.captured.dns_responses,
        sent.exchanges,
    );
    count(
        &mut v,
        "record observations",
        report.map(|r| r.totals.record_observations as f64),
        sent.exchanges,
    );
    match &run.store_records {
        Ok(n) => count(
            &mut v,
            "records in the store",
            Some(*n as f64),
            sent.names(),
        ),
        Err(e) => check(
            &mut v,
            "records in the store",
            "-".into(),
            false,
            format!("could not count: {e}"),
        ),
    }
    v
}

/// Writes the series as CSV and JSON and the plot; returns the paths.
fn write_series(dir: &Path, day: &str, samples: &[Sample], secs: u64) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut csv = String::from(
        "t_secs,phase,exchanges_sent,names_sent,rss_mib,open_files,pending_compaction_mib,\
         sst_mib,memtable_mib,block_cache_mib,table_readers_mib,allocated_mib,\
         allocator_resident_mib,frames,captured_pps,ring_drops,decode_drops,corrupt_values,\
         aggregator_entries,api_p50_ms,api_p99_ms,lookups,lookup_misses,api_errors\n",
    );
    let o = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    for s in samples {
        csv.push_str(&format!(
            "{:.2},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            s.t_secs,
            s.phase,
            s.exchanges_sent,
            s.names_sent,
            o(s.rss_mib),
            o(s.open_files),
            o(s.pending_compaction_mib),
            o(s.sst_mib),
            o(s.memtable_mib),
            o(s.block_cache_mib),
            o(s.table_readers_mib),
            o(s.allocated_mib),
            o(s.allocator_resident_mib),
            o(s.frames),
            o(s.captured_pps),
            o(s.ring_drops),
            o(s.decode_drops),
            o(s.corrupt_values),
            o(s.aggregator_entries),
            o(s.api_p50_ms),
            o(s.api_p99_ms),
            s.lookups,
            s.lookup_misses,
            s.api_errors
        ));
    }
    let json = serde_json::to_string_pretty(samples)? + "\n";
    let svg = plot(samples, secs)?;
    let mut written = Vec::new();
    for prefix in [day, "latest"] {
        for (name, body) in [
            (format!("{prefix}-soak-series.csv"), &csv),
            (format!("{prefix}-soak-series.json"), &json),
            (format!("{prefix}-soak.svg"), &svg),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))?;
            written.push(p);
        }
    }
    Ok(written)
}

/// The four panels: RSS with its bound, open files, compaction debt (and
/// SST bytes), API latency.
fn plot(samples: &[Sample], secs: u64) -> Result<String> {
    let blue = RGBColor(0x1f, 0x77, 0xb4);
    let orange = RGBColor(0xff, 0x7f, 0x0e);
    let grey = RGBColor(0x7f, 0x7f, 0x7f);
    let line = |name: &str, color, f: fn(&Sample) -> Option<f64>| TimeLine {
        name: name.into(),
        color,
        points: samples
            .iter()
            .filter_map(|s| Some((s.t_secs, f(s)?)))
            .collect(),
    };
    let panels = [
        Panel {
            y_desc: "RSS (MiB)".into(),
            lines: vec![line("RSS", blue, |s| s.rss_mib)],
            limit: Some((
                format!("bound {} MiB", rss_bound_mib(THREADS)),
                rss_bound_mib(THREADS),
            )),
        },
        Panel {
            y_desc: "open files".into(),
            lines: vec![line("open files", blue, |s| s.open_files)],
            limit: None,
        },
        Panel {
            y_desc: "MiB".into(),
            lines: vec![
                line("compaction debt", blue, |s| s.pending_compaction_mib),
                line("SST bytes", grey, |s| s.sst_mib),
            ],
            limit: None,
        },
        Panel {
            y_desc: "API lookup (ms)".into(),
            lines: vec![
                line("p50", blue, |s| s.api_p50_ms),
                line("p99", orange, |s| s.api_p99_ms),
            ],
            limit: None,
        },
    ];
    render_time_panels(
        &format!("Soak: {secs} s of live capture, names growing"),
        &panels,
    )
}

fn entry(secs: u64, pps: u64) -> Entry {
    let mut e = Entry::new(NAME, SENSOR);
    e.set_workload("label", "growing-names");
    e.set_workload("threads", THREADS);
    e.set_workload("pps", pps);
    e.set_workload("seconds", secs);
    e
}

impl Scenario for Soak {
    fn name(&self) -> &'static str {
        NAME
    }

    fn title(&self) -> &'static str {
        "Soak (live capture at a steady rate, names growing; RSS, files, compaction debt, API latency)"
    }

    fn run(&self, ctx: &Ctx) -> Result<Outcome> {
        let secs = ctx.soak.seconds(ctx.quick);
        let pps = ctx.soak.pps.max(2);
        let mut out = Outcome {
            entries: Vec::new(),
            table: Table::new(&["check", "value", "verdict"]),
        };
        let mut e = entry(secs, pps);
        if !tools::is_root() {
            e.notes
                .push("not run: needs root (network namespaces, AF_PACKET, eBPF)".into());
            out.entries.push(e);
            return Ok(out);
        }
        if !tools::have("ip") {
            e.notes
                .push("not run: ip not installed (cargo xtask setup)".into());
            out.entries.push(e);
            return Ok(out);
        }
        eprintln!(
            "soak: {secs} s at {pps} frames/s, one sample every {} s",
            SAMPLE_EVERY.as_secs()
        );
        let run = match soak_run(ctx, secs, pps) {
            Ok(r) => r,
            Err(err) => {
                e.notes.push(format!("failed: {err:#}"));
                out.entries.push(e);
                return Ok(out);
            }
        };
        let verdict = judge(&run, secs, pps);
        for r in &verdict.rows {
            out.table.row(r.to_vec());
        }
        let s = &run.samples;
        let traffic: Vec<&Sample> = s.iter().filter(|x| x.phase == "traffic").collect();
        let sent = &run.sent;
        e.set_figure("duration_secs", Some(sent.secs));
        e.set_figure("offered_pps", Some(sent.pps()));
        e.set_figure("sent_frames", Some(sent.frames as f64));
        e.set_figure("sent_exchanges", Some(sent.exchanges as f64));
        e.set_figure("sent_names", Some(sent.names() as f64));
        e.set_figure("sender_retries", Some(sent.retries as f64));
        e.set_figure("captured_frames", run.captured.frames);
        e.set_figure("dns_responses", run.captured.dns_responses);
        e.set_figure("kernel_drops", run.captured.drops);
        e.set_figure(
            "decode_drops",
            run.captured
                .report
                .as_ref()
                .map(|r| r.totals.drops.values().sum::<u64>() as f64),
        );
        e.set_figure(
            "store_records",
            run.store_records.as_ref().ok().map(|n| *n as f64),
        );
        e.set_figure("sensor_cpu_secs", Some(run.captured.cpu_secs));
        e.set_figure("rss_bound_mib", Some(rss_bound_mib(THREADS)));
        e.set_figure("rss_start_mib", s.first().and_then(|x| x.rss_mib));
        e.set_figure("rss_end_mib", traffic.last().and_then(|x| x.rss_mib));
        e.set_figure("rss_peak_mib", peak(s.iter().map(|x| x.rss_mib)));
        let half = secs as f64 / 2.0;
        let second: Vec<(f64, f64)> = traffic
            .iter()
            .filter(|x| x.t_secs >= half)
            .filter_map(|x| Some((x.t_secs / 60.0, x.rss_mib?)))
            .collect();
        e.set_figure("rss_slope_second_half_mib_per_min", slope(&second));
        e.set_figure("open_files_start", s.first().and_then(|x| x.open_files));
        e.set_figure("open_files_end", traffic.last().and_then(|x| x.open_files));
        e.set_figure("open_files_peak", peak(s.iter().map(|x| x.open_files)));
        e.set_figure(
            "pending_compaction_peak_mib",
            peak(s.iter().map(|x| x.pending_compaction_mib)),
        );
        e.set_figure(
            "pending_compaction_end_mib",
            traffic.last().and_then(|x| x.pending_compaction_mib),
        );
        e.set_figure("sst_end_mib", traffic.last().and_then(|x| x.sst_mib));
        e.set_figure("api_p50_ms", quantile(&run.latencies, 0.5));
        e.set_figure("api_p99_ms", quantile(&run.latencies, 0.99));
        e.set_figure(
            "api_worst_sample_p99_ms",
            peak(s.iter().map(|x| x.api_p99_ms)),
        );
        e.set_figure(
            "lookups",
            Some(s.iter().map(|x| x.lookups).sum::<u64>() as f64),
        );
        e.set_figure(
            "lookup_misses",
            Some(s.iter().map(|x| x.lookup_misses).sum::<u64>() as f64),
        );
        e.notes.extend(verdict.notes);
        let day = Machine::probe().day;
        match write_series(&ctx.results_dir, &day, s, secs) {
            Ok(paths) => {
                for p in &paths {
                    eprintln!("wrote {}", p.display());
                }
                e.notes.push(format!(
                    "time series and plot: {day}-soak-series.csv, {day}-soak-series.json, {day}-soak.svg (and latest-*)"
                ));
            }
            Err(err) => e.notes.push(format!("writing the time series: {err:#}")),
        }
        for f in verdict.failures {
            e.notes.push(format!("failed: {f}"));
        }
        out.entries.push(e);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_bound() {
        assert_eq!(Options::default().seconds(false), 600);
        assert_eq!(Options::default().seconds(true), 20);
        let o = Options {
            seconds: Some(60),
            pps: 1000,
        };
        assert_eq!(o.seconds(true), 60);
        assert_eq!(rss_bound_mib(1), 483.0);
        assert_eq!(rss_bound_mib(2), 670.0);
    }

    #[test]
    fn lookups_ask_settled_names_once_there_are_some() {
        let early = lookup_plan(0, 0, 10);
        assert_eq!(early.len() as u64, LOOKUPS);
        assert!(early.iter().all(|(_, _, must)| !must));
        let later = lookup_plan(3, 1000, 5000);
        assert!(later.iter().all(|(_, _, must)| *must));
        assert!(later[0].0.starts_with("/dnsdb/v2/lookup/rrset/name/h"));
        assert!(later[1].0.starts_with("/pdns/query/h"));
        for (path, name, _) in &later {
            let id: u64 = name[1..name.find('.').unwrap()].parse().unwrap();
            assert!(id < 1000);
            assert!(path.contains(name.as_str()));
        }
    }

    fn sample(t: f64, rss: f64) -> Sample {
        Sample {
            t_secs: t,
            phase: "traffic",
            rss_mib: Some(rss),
            open_files: Some(40.0),
            lookups: 2,
            ..Sample::default()
        }
    }

    fn clean_run(rss: impl Fn(f64) -> f64) -> Run {
        let sent = Sent {
            exchanges: 10,
            frames: 20,
            retries: 0,
            secs: 600.0,
        };
        let mut report = pdns_sensor::report::RunReport::default();
        report.totals.record_observations = 10;
        report.totals.drops.insert("tcp_gap".into(), 0);
        Run {
            sent,
            samples: (0..=120)
                .map(|i| sample(i as f64 * 5.0, rss(i as f64 * 5.0)))
                .collect(),
            latencies: vec![0.1, 0.2],
            errors: Vec::new(),
            captured: Captured {
                frames: Some(20.0),
                drops: Some(0.0),
                dns_responses: Some(10.0),
                cpu_secs: 1.0,
                report: Some(Box::new(report)),
            },
            store_records: Ok(5),
        }
    }

    #[test]
    fn a_clean_run_passes_and_each_fault_fails() {
        let ok = judge(&clean_run(|_| 120.0), 600, 20);
        assert!(ok.failures.is_empty(), "{:?}", ok.failures);
        let fat = judge(&clean_run(|_| 490.0), 600, 20);
        assert_eq!(fat.failures.len(), 1);
        assert!(
            fat.failures[0].contains("bound 483 MiB"),
            "{:?}",
            fat.failures
        );
        // 3 MiB a minute: within the bound, but a leak.
        let leak = judge(&clean_run(|t| 100.0 + t / 20.0), 600, 20);
        assert_eq!(leak.failures.len(), 1);
        assert!(
            leak.failures[0].starts_with("RSS beyond"),
            "{:?}",
            leak.failures
        );
        // The same growth, all of it memtables and block cache filling up:
        // no leak.
        let mut filling = clean_run(|t| 100.0 + t / 20.0);
        for s in &mut filling.samples {
            s.memtable_mib = Some(s.t_secs / 40.0);
            s.block_cache_mib = Some(s.t_secs / 40.0);
        }
        let f = judge(&filling, 600, 20).failures;
        assert!(f.is_empty(), "{f:?}");
        let mut lost = clean_run(|_| 120.0);
        lost.captured.drops = Some(3.0);
        lost.store_records = Ok(4);
        lost.samples[7].lookup_misses = 1;
        let f = judge(&lost, 600, 20).failures;
        assert_eq!(f.len(), 3, "{f:?}");
        // A short run is not judged for leaks.
        let short = judge(&clean_run(|t| 100.0 + t / 10.0), 60, 20);
        assert!(short.failures.is_empty(), "{:?}", short.failures);
    }

    #[test]
    fn series_files_and_plot_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let run = clean_run(|t| 100.0 + t / 100.0);
        let paths = write_series(dir.path(), "2026-12-05", &run.samples, 600).unwrap();
        assert_eq!(paths.len(), 6);
        let csv = std::fs::read_to_string(dir.path().join("latest-soak-series.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + run.samples.len());
        assert!(csv.starts_with("t_secs,phase,"));
        let svg = std::fs::read_to_string(dir.path().join("2026-12-05-soak.svg")).unwrap();
        assert!(svg.contains("RSS (MiB)") && svg.contains("bound 483 MiB"));
    }
}
