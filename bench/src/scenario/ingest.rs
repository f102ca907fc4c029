//! Ingest scenario: how fast the sensor turns a pcap into a compacted store,
//! and at what memory and disk cost, across name cardinalities.
//!
//! For each workload it records a raw-read baseline (the machine's ceiling
//! for just reading the file) and a sensor run per thread setting, each
//! into a fresh database, so figures can be read as a fraction of the
//! ceiling and compared across cardinality and parallelism. Every sensor
//! row is the median of [`RUNS`] runs by packets per second (figures
//! `packets_per_sec_min` and `_max` give the spread): on the 2-core VM the
//! reference is measured on, one run of the same binary on the same file
//! came out 4.89 M or 5.24 M packets/s at 10 k names twenty minutes
//! apart, which is the size of what a change to the hot path is judged by.
//!
//! Each workload is also ingested once more, at the first thread setting,
//! with every frame wrapped in VXLAN over IPv4 (system
//! [`TUNNELLED`], ratio `packets_per_sec_vs_plain`): what tunnel
//! decapsulation costs, next to the plain run of the same workload.
//!
//! The workloads of the name-cardinality sweep are also ingested with
//! newly observed domains turned off (system [`NOD_OFF`], `--no-nod`), at
//! every thread setting, right after the run with them on (the default):
//! what recording first sightings costs in speed, memory and disk. The
//! ratios `packets_per_sec_nod_on_vs_off`, `peak_rss_nod_on_vs_off` and
//! `db_bytes_nod_on_vs_off` are on the default run's entry.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use super::{Ctx, Outcome, Scenario};
use crate::baseline::{RawRead, raw_read};
use crate::child::{dir_bytes, run_measured};
use crate::r#gen::Config;
use crate::progress;
use crate::report::{Entry, SENSOR, ratio};
use crate::sensor::{ingest_command, read_report};
use crate::table::{Table, num};
use crate::workload::{Prepared, Workload, prepare};
use pdns_sensor::report::IngestReport;

pub const NAME: &str = "ingest";
/// System name of the raw-read baseline entries.
pub const RAW_READ: &str = "raw-read";
/// System name of the runs over the VXLAN-tunnelled copy of a workload.
pub const TUNNELLED: &str = "pdns-sensor tunnelled (VXLAN)";
/// System name of the runs without newly observed domains (`--no-nod`).
pub const NOD_OFF: &str = "pdns-sensor --no-nod";

/// The ingest scenario; `workloads`/`threads` override the defaults (tests).
#[derive(Clone, Debug, Default)]
pub struct Ingest {
    pub workloads: Option<Vec<Workload>>,
    /// Thread settings passed as `--threads` (0 = all cores).
    pub threads: Option<Vec<u32>>,
    /// Whether to add the tunnelled (VXLAN) run (default: yes).
    pub tunnelled: Option<bool>,
    /// Whether to add the runs without newly observed domains for the
    /// name-cardinality sweep (default: yes).
    pub nod_off: Option<bool>,
}

/// The default sweeps: name cardinality (1 k → 1 M distinct names at 1 000
/// clients), client 5-tuples (100 → 1 M distinct client address/port pairs
/// at 10 k names) and one water-torture run. Each workload carries the
/// sweep it belongs to (workload field `sweep`), so tables and plots can
/// put it on the right axis.
pub fn default_workloads(quick: bool) -> Vec<Workload> {
    let packets = if quick { 100_000 } else { 2_000_000 };
    let mut w = Vec::new();
    let names: &[(&str, u64)] = if quick {
        &[("1k-names", 1_000), ("10k-names", 10_000)]
    } else {
        &[
            ("1k-names", 1_000),
            ("10k-names", 10_000),
            ("100k-names", 100_000),
            ("1M-names", 1_000_000),
        ]
    };
    for &(label, n) in names {
        w.push(sweep_workload(label, Sweep::Names, packets, n, 1_000));
    }
    let clients: &[(&str, u64)] = if quick {
        &[("100k-clients", 100_000)]
    } else {
        &[
            ("100-clients", 100),
            ("1k-clients", 1_000),
            ("10k-clients", 10_000),
            ("100k-clients", 100_000),
            ("1M-clients", 1_000_000),
        ]
    };
    for &(label, c) in clients {
        w.push(sweep_workload(label, Sweep::Clients, packets, 10_000, c));
    }
    if !quick {
        let mut wt = sweep_workload("water-torture", Sweep::WaterTorture, packets, 10_000, 1_000);
        wt.cfg.water_torture = true;
        w.push(wt);
    }
    w
}

/// Which axis a workload of the default sweeps varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    Names,
    Clients,
    WaterTorture,
}

impl Sweep {
    pub fn as_str(self) -> &'static str {
        match self {
            Sweep::Names => "names",
            Sweep::Clients => "clients",
            Sweep::WaterTorture => "water-torture",
        }
    }
}

/// A workload of `packets` over `names` distinct names and `clients`
/// distinct client 5-tuples, tagged with its sweep.
pub fn sweep_workload(
    label: &str,
    sweep: Sweep,
    packets: u64,
    names: u64,
    clients: u64,
) -> Workload {
    let mut w = Workload::new(
        label,
        Config {
            packets,
            names,
            clients,
            ..Config::default()
        },
    );
    w.sweep = Some(sweep.as_str());
    w
}

impl Scenario for Ingest {
    fn name(&self) -> &'static str {
        NAME
    }

    fn title(&self) -> &'static str {
        "Ingest (pcap → compacted store)"
    }

    fn run(&self, ctx: &Ctx) -> Result<Outcome> {
        let workloads = self
            .workloads
            .clone()
            .unwrap_or_else(|| default_workloads(ctx.quick));
        let threads = self.threads.clone().unwrap_or_else(|| vec![1, 0]);
        let mut out = Outcome {
            entries: Vec::new(),
            table: Table::new(&[
                "workload",
                "system",
                "threads",
                "packets",
                "wall s",
                "pkt/s",
                "pkt/s wall",
                "obs/s",
                "B/record",
                "RSS MiB",
                "repeats %",
                "store wait %",
                "vs raw",
            ]),
        };
        for w in &workloads {
            let p = prepare(&ctx.cache_dir, w)?;
            let raw = raw_read(&p.pcap)?;
            let base = raw_entry(&p, &raw);
            table_row(&mut out.table, &base);
            out.entries.push(base);
            for (i, &t) in threads.iter().enumerate() {
                let step = progress::step(format!("ingest {} --threads {t}", w.label));
                let mut e = sensor_run(ctx, &p, &p.pcap, SENSOR, t, &raw, &[])?;
                drop(step);
                let off = if w.sweep == Some(Sweep::Names.as_str()) && self.nod_off.unwrap_or(true)
                {
                    let step = progress::step(format!("ingest {} --threads {t} --no-nod", w.label));
                    let off = sensor_run(ctx, &p, &p.pcap, NOD_OFF, t, &raw, &["--no-nod"])?;
                    drop(step);
                    for (name, figure) in [
                        ("packets_per_sec_nod_on_vs_off", "packets_per_sec"),
                        ("peak_rss_nod_on_vs_off", "peak_rss_mib"),
                        ("db_bytes_nod_on_vs_off", "db_bytes"),
                    ] {
                        if let Some(r) =
                            ratio(e.figure(figure), off.figure(figure)).filter(|r| r.is_finite())
                        {
                            e.ratios.insert(name.into(), r);
                        }
                    }
                    Some(off)
                } else {
                    None
                };
                table_row(&mut out.table, &e);
                let plain_pps = e.figure("packets_per_sec");
                out.entries.push(e);
                if let Some(off) = off {
                    table_row(&mut out.table, &off);
                    out.entries.push(off);
                }
                if i == 0 && self.tunnelled.unwrap_or(true) {
                    let vxlan = vxlan_copy(&p)?;
                    // Read once untimed, as raw-read reads the plain
                    // capture before its runs: a copy no longer in the
                    // page cache (400 MB each, seven of them) was timed
                    // at the disk's speed (the 1 k-name row at 1.45 M
                    // packets/s, 7 M warm).
                    raw_read(&vxlan)?;
                    let step = progress::step(format!("ingest {} (VXLAN) --threads {t}", w.label));
                    let mut e = sensor_run(ctx, &p, &vxlan, TUNNELLED, t, &raw, &[])?;
                    drop(step);
                    e.set_workload("encap", "vxlan");
                    if let Some(r) =
                        ratio(e.figure("packets_per_sec"), plain_pps).filter(|r| r.is_finite())
                    {
                        e.ratios.insert("packets_per_sec_vs_plain".into(), r);
                    }
                    table_row(&mut out.table, &e);
                    out.entries.push(e);
                }
            }
        }
        Ok(out)
    }
}

pub fn workload_fields(e: &mut Entry, p: &Prepared) {
    let c = &p.workload.cfg;
    e.set_workload("label", p.workload.label.as_str());
    if let Some(sweep) = p.workload.sweep {
        e.set_workload("sweep", sweep);
    }
    e.set_workload("packets", c.packets);
    e.set_workload("names", c.names);
    e.set_workload("zipf", c.zipf);
    e.set_workload("nxdomain", c.nxdomain);
    e.set_workload("tcp_share", c.tcp_share);
    e.set_workload("ipv6_share", c.ipv6_share);
    e.set_workload("clients", c.clients);
    e.set_workload("large_share", c.large_share);
    e.set_workload("water_torture", c.water_torture);
    e.set_workload("seed", c.seed);
    e.set_workload("pcap_bytes", p.summary.bytes);
    e.set_workload("expected_answer_records", p.summary.counts.answer_records);
    e.set_workload("expected_nxdomain_pairs", p.summary.counts.nxdomain_pairs);
}

fn raw_entry(p: &Prepared, raw: &RawRead) -> Entry {
    let mut e = Entry::new(NAME, RAW_READ);
    workload_fields(&mut e, p);
    let secs = raw.elapsed.as_secs_f64();
    e.set_figure("packets", Some(raw.packets as f64));
    e.set_figure("wall_secs", Some(secs));
    e.set_figure("packets_per_sec", Some(raw.packets_per_sec()));
    e.set_figure("packets_per_sec_wall", Some(raw.packets_per_sec()));
    e.set_figure("payload_bytes", Some(raw.payload_bytes as f64));
    e.set_figure(
        "mib_per_sec",
        Some(p.summary.bytes as f64 / 1_048_576.0 / secs.max(1e-9)),
    );
    e
}

/// The VXLAN-tunnelled copy of a workload's pcap, cached beside it.
fn vxlan_copy(p: &Prepared) -> Result<PathBuf> {
    let path = p.pcap.with_extension("vxlan.pcap");
    let fresh = |q: &Path| -> Option<bool> {
        Some(
            fs::metadata(q).ok()?.modified().ok()?
                >= fs::metadata(&p.pcap).ok()?.modified().ok()?,
        )
    };
    if fresh(&path) != Some(true) {
        let tmp = p.pcap.with_extension("vxlan.pcap.tmp");
        crate::r#gen::tunnel::vxlan_pcap(&p.pcap, &tmp, 4242)?;
        fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// Sensor runs behind every row (see the module docs).
const RUNS: usize = 3;

/// [`RUNS`] sensor runs of `pcap`, each into a fresh database: the median
/// one by packets per second, with the spread of all of them (or the first
/// that failed).
fn sensor_run(
    ctx: &Ctx,
    p: &Prepared,
    pcap: &Path,
    system: &str,
    threads: u32,
    raw: &RawRead,
    extra: &[&str],
) -> Result<Entry> {
    let mut runs = (0..RUNS)
        .map(|_| sensor_run_once(ctx, p, pcap, system, threads, raw, extra))
        .collect::<Result<Vec<_>>>()?;
    // A failed run is the row: the median of the others must not hide it.
    if let Some(at) = runs
        .iter()
        .position(|e| e.notes.iter().any(|n| n.starts_with("failed")))
    {
        return Ok(runs.swap_remove(at));
    }
    let rate = |e: &Entry| e.figure("packets_per_sec").unwrap_or(0.0);
    runs.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    let (min, max) = (rate(&runs[0]), rate(&runs[RUNS - 1]));
    let mut median = runs.swap_remove(RUNS / 2);
    median.set_figure("runs", Some(RUNS as f64));
    median.set_figure("packets_per_sec_min", Some(min));
    median.set_figure("packets_per_sec_max", Some(max));
    Ok(median)
}

/// One sensor `ingest` run of `pcap` (the workload's, or a copy of it)
/// into a fresh database.
fn sensor_run_once(
    ctx: &Ctx,
    p: &Prepared,
    pcap: &Path,
    system: &str,
    threads: u32,
    raw: &RawRead,
    extra: &[&str],
) -> Result<Entry> {
    let tmp = tempfile::Builder::new().prefix("pdns-bench-").tempdir()?;
    let db = tmp.path().join("db");
    fs::create_dir(&db)?;
    let stats_path = tmp.path().join("stats.json");
    let mut cmd = ingest_command(&ctx.sensor, &db, threads, true, &stats_path, pcap);
    cmd.args(extra);
    let m = run_measured(cmd, tmp.path())?;
    let report: Result<IngestReport, String> = read_report(&stats_path);

    let mut e = Entry::new(NAME, system);
    workload_fields(&mut e, p);
    e.set_workload("threads", threads);
    if !m.success() {
        e.notes.push(format!("failed: {}", m.describe_failure()));
    }
    if let Err(problem) = &report {
        e.notes.push(problem.clone());
    }
    let report = report.ok();
    let figure = |f: fn(&IngestReport) -> f64| report.as_ref().map(f);

    let wall = m.wall.as_secs_f64();
    let elapsed = figure(|r| r.elapsed_secs).filter(|s| *s > 0.0);
    let packets = figure(|r| r.totals.packets as f64);
    let observations = figure(|r| r.totals.observations as f64);
    let db_dir = dir_bytes(&db) as f64;
    let db_bytes = figure(|r| r.db_bytes as f64);
    let db_records = figure(|r| r.db_records as f64);
    let pps_wall = ratio(
        Some(packets.unwrap_or(p.summary.packets as f64)),
        Some(wall),
    );
    let pps = ratio(packets, elapsed);

    e.set_figure("wall_secs", Some(wall));
    e.set_figure("elapsed_secs", elapsed);
    e.set_figure("packets", packets);
    e.set_figure("dns_responses", figure(|r| r.totals.dns_responses as f64));
    e.set_figure(
        "repeated_responses",
        figure(|r| r.totals.repeated_responses as f64),
    );
    // The share of the run the decoder threads spent waiting for their
    // store writers (summed over threads): near 1 × threads, the store is
    // what limits the rate.
    e.set_figure(
        "writer_wait_share",
        ratio(figure(|r| r.totals.writer_wait_secs), elapsed),
    );
    e.set_figure("observations", observations);
    e.set_figure("db_bytes", db_bytes);
    e.set_figure("db_records", db_records);
    e.set_figure("db_dir_bytes", Some(db_dir));
    e.set_figure("packets_per_sec", pps);
    e.set_figure("packets_per_sec_wall", pps_wall);
    e.set_figure("observations_per_sec", ratio(observations, elapsed));
    e.set_figure(
        "bytes_per_record",
        ratio(db_bytes.or(Some(db_dir)), db_records),
    );
    e.set_figure("peak_rss_mib", Some(m.max_rss_kib as f64 / 1024.0));
    e.set_figure("cpu_user_secs", Some(m.user_secs));
    e.set_figure("cpu_sys_secs", Some(m.sys_secs));
    e.set_figure(
        "cpu_utilisation",
        ratio(Some(m.user_secs + m.sys_secs), Some(wall)),
    );
    if let Some(r) = &report {
        let t = &r.totals;
        for (k, v) in [
            ("bytes", t.bytes),
            ("dns_queries", t.dns_queries),
            ("record_observations", t.record_observations),
            ("negative_observations", t.negative_observations),
            ("records_written", t.records_written),
            ("negatives_written", t.negatives_written),
            ("flushes", t.flushes),
        ] {
            e.set_figure(&format!("sensor.{k}"), Some(v as f64));
        }
        for (reason, n) in &t.drops {
            e.set_figure(&format!("sensor.drops.{reason}"), Some(*n as f64));
        }
        if system == TUNNELLED {
            // Frames the decoder opened: every frame when decapsulation
            // works (`decapsulated` of the ingest report).
            let decapsulated = serde_json::to_value(r).ok().and_then(|v| {
                v.get("decapsulated")?
                    .as_object()
                    .map(|m| m.values().filter_map(Value::as_u64).sum::<u64>())
            });
            e.set_figure("sensor.decapsulated", decapsulated.map(|n| n as f64));
        }
    }

    let raw_pps = Some(raw.packets_per_sec());
    e.ratios.extend(
        [
            ("packets_per_sec_vs_raw_read", ratio(pps, raw_pps)),
            ("packets_per_sec_wall_vs_raw_read", ratio(pps_wall, raw_pps)),
            (
                "packets_seen_vs_written",
                ratio(packets, Some(p.summary.packets as f64)),
            ),
            (
                "db_records_vs_manifest_answer_records",
                ratio(db_records, Some(p.summary.counts.answer_records as f64)),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| v.is_finite()).map(|v| (k.to_string(), v))),
    );
    Ok(e)
}

fn table_row(t: &mut Table, e: &Entry) {
    let threads = match e.workload.get("threads").and_then(Value::as_u64) {
        None => "-".to_string(),
        Some(0) => "all".to_string(),
        Some(n) => n.to_string(),
    };
    let f = |k: &str| e.figure(k);
    let system = if e.failed() {
        format!("{} (FAILED)", e.system)
    } else {
        e.system.clone()
    };
    t.row(vec![
        e.label().to_string(),
        system,
        threads,
        num(f("packets"), 0),
        num(f("wall_secs"), 3),
        num(f("packets_per_sec"), 0),
        num(f("packets_per_sec_wall"), 0),
        num(f("observations_per_sec"), 0),
        num(f("bytes_per_record"), 1),
        num(f("peak_rss_mib"), 1),
        num(
            ratio(f("repeated_responses"), f("dns_responses")).map(|r| r * 100.0),
            0,
        ),
        num(f("writer_wait_share").map(|r| r * 100.0), 0),
        num(e.ratios.get("packets_per_sec_wall_vs_raw_read").copied(), 3),
    ]);
}
