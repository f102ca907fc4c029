//! Peers scenario: other DNS tools on the same input in the same run, with
//! the ratio ours/theirs beside each figure.
//!
//! For every workload the sensor ingests the pcap first (one thread, whole
//! process wall time — the clock the decoders get — until everything is
//! flushed and queryable; no final compaction, which balboa does not do
//! before answering either),
//! then each peer present on the machine runs on the very same file:
//!
//! - decoders ([`crate::peers::decoders`]: tshark, dnscap, passivedns) —
//!   packets/s, the rate at which each turns the file into decoded DNS;
//! - balboa ([`crate::peers::balboa`]), the storage peer — observations/s
//!   from the sensor's own extraction of the file, fed as gamelinux lines,
//!   until the last one is queryable (compared with the sensor's positive
//!   observations over its own ingest clock, which includes decoding the
//!   pcap and flushing the store); then lookup latency with `wrk` on
//!   balboa's GraphQL and on our DNSDB API with the same names over a store
//!   of the same file.
//!
//! Workloads are the names and client sweeps of the ingest scenario at a
//! smaller packet count (the decoders are 10–100× slower than the sensor,
//! so 2 M-packet files would make this scenario dominate the benchmark).
//! A peer not present is reported once as missing, never estimated.

use std::fs;
use std::path::Path;

use anyhow::Result;

use super::ingest::{Sweep, sweep_workload, workload_fields};
use super::{Ctx, Outcome, Scenario};
use crate::child::run_measured;
use crate::peers::balboa;
use crate::peers::decoders::Decoder;
use crate::progress;
use crate::report::{Entry, SENSOR, ratio};
use crate::sensor::{ingest_command, read_report};
use crate::table::{Table, num};
use crate::workload::{Prepared, Workload, prepare};
use crate::wrk::WrkResult;
use pdns_sensor::report::IngestReport;

pub const NAME: &str = "peers";

/// System name of the storage peer.
pub const BALBOA: &str = "balboa";

#[derive(Clone, Debug, Default)]
pub struct Peers;

/// Observations fed to balboa at most (it ingests ~30 k/s).
fn balboa_cap(quick: bool) -> u64 {
    if quick { 20_000 } else { 1_000_000 }
}

/// Seconds of `wrk` per lookup measurement.
fn lookup_secs(quick: bool) -> u64 {
    if quick { 1 } else { 5 }
}

pub fn workloads(quick: bool) -> Vec<Workload> {
    if quick {
        return vec![sweep_workload(
            "10k-names",
            Sweep::Names,
            20_000,
            10_000,
            1_000,
        )];
    }
    let packets = 500_000;
    let mut w: Vec<Workload> = [
        ("1k-names", 1_000),
        ("10k-names", 10_000),
        ("100k-names", 100_000),
        ("1M-names", 1_000_000),
    ]
    .into_iter()
    .map(|(l, n)| sweep_workload(l, Sweep::Names, packets, n, 1_000))
    .collect();
    w.extend(
        [
            ("100-clients", 100),
            ("10k-clients", 10_000),
            ("1M-clients", 1_000_000),
        ]
        .into_iter()
        .map(|(l, c)| sweep_workload(l, Sweep::Clients, packets, 10_000, c)),
    );
    w
}

impl Scenario for Peers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn title(&self) -> &'static str {
        "Peers on the same input (ours/theirs: rate ratio, or latency speed-up)"
    }

    fn run(&self, ctx: &Ctx) -> Result<Outcome> {
        let mut out = Outcome {
            entries: Vec::new(),
            table: Table::new(&[
                "workload",
                "system",
                "measures",
                "packets",
                "wall s",
                "pkt/s",
                "obs/s",
                "lookup p50 ms",
                "lookup p99 ms",
                "RSS MiB",
                "ours/theirs",
            ]),
        };
        let mut present = Vec::new();
        for d in Decoder::ALL {
            match d.missing() {
                None => present.push(d),
                Some(why) => out.entries.push(missing_entry(d.name(), why)),
            }
        }
        let balboa_missing = balboa::missing();
        if let Some(why) = &balboa_missing {
            out.entries.push(missing_entry(BALBOA, why.clone()));
        }

        for w in workloads(ctx.quick) {
            let p = prepare(&ctx.cache_dir, &w)?;
            let tmp = tempfile::Builder::new().prefix("pdns-peers-").tempdir()?;
            let step = progress::step(format!("peers {}: pdns-sensor ingest", w.label));
            let (mut ours, db) = sensor_entry(ctx, &p, tmp.path())?;
            drop(step);
            let mut theirs = Vec::new();
            for &d in &present {
                let _step = progress::step(format!("peers {}: {}", w.label, d.name()));
                theirs.push(decoder_entry(d, &p, tmp.path(), &mut ours)?);
            }
            let with_balboa = ctx.quick || w.sweep == Some(Sweep::Names.as_str());
            if balboa_missing.is_none() && with_balboa && !ours.failed() {
                let _step = progress::step(format!("peers {}: balboa", w.label));
                theirs.push(balboa_entry(ctx, &p, &db, tmp.path(), &mut ours));
            }
            table_row(&mut out.table, &ours, "decode+store", None);
            out.entries.push(ours);
            for e in theirs {
                let what = if e.system == BALBOA {
                    "store"
                } else {
                    "decode"
                };
                let ratio = e.ratios.get(OURS_VS_THIS).copied();
                table_row(&mut out.table, &e, what, ratio);
                out.entries.push(e);
            }
        }
        for e in out.entries.iter().filter(|e| e.label() == "all") {
            table_row(&mut out.table, e, "missing", None);
        }
        Ok(out)
    }
}

/// Ratio key on a peer's entry: our figure over theirs (rates), or their
/// latency over ours (lookups), so > 1 always means we are faster.
pub const OURS_VS_THIS: &str = "pdns_sensor_vs_this";

fn missing_entry(system: &str, why: String) -> Entry {
    let mut e = Entry::new(NAME, system);
    e.set_workload("label", "all");
    e.notes.push(format!("missing: {why}"));
    e
}

/// `pdns-sensor ingest --threads 1` of the workload into `dir/db`.
fn sensor_entry(ctx: &Ctx, p: &Prepared, dir: &Path) -> Result<(Entry, std::path::PathBuf)> {
    let db = dir.join("db");
    fs::create_dir_all(&db)?;
    let log = dir.join("sensor");
    fs::create_dir_all(&log)?;
    let stats_path = log.join("stats.json");
    let m = run_measured(
        ingest_command(&ctx.sensor, &db, 1, false, &stats_path, &p.pcap),
        &log,
    )?;
    let report: Result<IngestReport, String> = read_report(&stats_path);
    let mut e = Entry::new(NAME, SENSOR);
    if let Err(problem) = &report {
        e.notes.push(problem.clone());
    }
    let report = report.ok();
    workload_fields(&mut e, p);
    e.set_workload("threads", 1);
    if !m.success() {
        e.notes.push(format!(
            "failed: pdns-sensor ingest: {}",
            m.describe_failure()
        ));
    }
    let wall = m.wall.as_secs_f64();
    let packets = p.summary.packets as f64;
    e.set_figure("packets", Some(packets));
    e.set_figure("wall_secs", Some(wall));
    e.set_figure("packets_per_sec", ratio(Some(packets), Some(wall)));
    // Positive observations (what balboa is fed) over the sensor's own
    // ingest time — read, decode, store, flush — which, like
    // balboa's clock, leaves out process start-up.
    let positive = report.as_ref().map(|r| r.totals.record_observations as f64);
    let elapsed = report.as_ref().map(|r| r.elapsed_secs);
    e.set_figure(
        "observations",
        report.as_ref().map(|r| r.totals.observations as f64),
    );
    e.set_figure("record_observations", positive);
    e.set_figure("elapsed_secs", elapsed);
    e.set_figure("observations_per_sec", ratio(positive, elapsed));
    e.set_figure("peak_rss_mib", Some(m.max_rss_kib as f64 / 1024.0));
    Ok((e, db))
}

fn decoder_entry(d: Decoder, p: &Prepared, dir: &Path, ours: &mut Entry) -> Result<Entry> {
    let log = dir.join(d.name());
    fs::create_dir_all(&log)?;
    let run = d.run(&p.pcap, &p.summary, &log)?;
    // Output files can be large (dnscap prints ~6 lines per message).
    for f in ["stdout.log", "stderr.log", "passivedns.log", "nxdomain.log"] {
        let _ = fs::remove_file(log.join(f));
    }
    let mut e = Entry::new(NAME, d.name());
    workload_fields(&mut e, p);
    if !run.measured.success() {
        e.notes.push(format!(
            "failed: {} {}",
            d.name(),
            run.measured.describe_failure()
        ));
    } else if let Some(problem) = &run.problem {
        e.notes.push(format!("failed: {problem}"));
    }
    let wall = run.measured.wall.as_secs_f64();
    let packets = p.summary.packets as f64;
    let pps = ratio(Some(packets), Some(wall));
    e.set_figure("packets", Some(packets));
    e.set_figure("wall_secs", Some(wall));
    e.set_figure("packets_per_sec", pps);
    e.set_figure(
        &format!("decoded_{}", run.decoded_what),
        Some(run.decoded as f64),
    );
    e.set_figure(
        "peak_rss_mib",
        Some(run.measured.max_rss_kib as f64 / 1024.0),
    );
    e.set_figure("cpu_user_secs", Some(run.measured.user_secs));
    e.set_figure("cpu_sys_secs", Some(run.measured.sys_secs));
    if !e.failed() {
        let r = ratio(ours.figure("packets_per_sec"), pps);
        if let Some(r) = r {
            e.ratios.insert(OURS_VS_THIS.into(), r);
            ours.ratios
                .insert(format!("packets_per_sec_vs_{}", d.name()), r);
        }
    }
    Ok(e)
}

fn balboa_entry(ctx: &Ctx, p: &Prepared, db: &Path, dir: &Path, ours: &mut Entry) -> Entry {
    let mut e = Entry::new(NAME, BALBOA);
    workload_fields(&mut e, p);
    let work = dir.join("balboa");
    let run = fs::create_dir_all(&work)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            balboa::run(
                &ctx.sensor,
                &p.pcap,
                db,
                &work,
                balboa_cap(ctx.quick),
                lookup_secs(ctx.quick),
            )
        });
    let r = match run {
        Ok(r) => r,
        Err(err) => {
            e.notes.push(format!("failed: balboa: {err:#}"));
            return e;
        }
    };
    e.set_workload("observations_fed", r.observations_fed);
    e.set_workload("names_queried", r.names_queried as u64);
    e.set_figure("observations", Some(r.observations_fed as f64));
    e.set_figure("ingest_secs", Some(r.ingest_secs));
    e.set_figure("observations_per_sec", Some(r.observations_per_sec));
    e.set_figure("peak_rss_mib", r.peak_rss_mib);
    e.set_figure("db_dir_bytes", Some(r.db_dir_bytes as f64));
    set_latency(&mut e, &r.balboa_lookup);
    set_latency(ours, &r.sensor_lookup);
    e.notes.push(format!("check: {}", r.check));

    let ingest = ratio(
        ours.figure("observations_per_sec"),
        Some(r.observations_per_sec),
    );
    if let Some(x) = ingest {
        e.ratios.insert(OURS_VS_THIS.into(), x);
        ours.ratios
            .insert("observations_per_sec_vs_balboa".into(), x);
    }
    for (k, ours_ms, theirs_ms) in [
        ("lookup_p50", r.sensor_lookup.p50, r.balboa_lookup.p50),
        ("lookup_p99", r.sensor_lookup.p99, r.balboa_lookup.p99),
    ] {
        if let Some(x) = ratio(theirs_ms, ours_ms) {
            e.ratios.insert(format!("{k}_speedup"), x);
            ours.ratios.insert(format!("{k}_speedup_vs_balboa"), x);
        }
    }
    e
}

fn set_latency(e: &mut Entry, l: &WrkResult) {
    e.set_figure("lookup_p50_ms", l.p50);
    e.set_figure("lookup_p90_ms", l.p90);
    e.set_figure("lookup_p99_ms", l.p99);
    e.set_figure("lookup_requests_per_sec", l.rps);
    if l.errors > 0 {
        e.notes
            .push(format!("{} lookups answered non-2xx", l.errors));
    }
}

fn table_row(t: &mut Table, e: &Entry, what: &str, ours_vs_theirs: Option<f64>) {
    let f = |k: &str| e.figure(k);
    let system = if e.failed() {
        format!("{} (FAILED)", e.system)
    } else {
        e.system.clone()
    };
    let ratio = match (ours_vs_theirs, e.ratios.get("lookup_p99_speedup")) {
        (Some(r), Some(l)) => format!("{r:.1}× ingest, {l:.1}× p99"),
        (Some(r), None) => format!("{r:.1}×"),
        _ => "-".into(),
    };
    t.row(vec![
        e.label().to_string(),
        system,
        what.to_string(),
        num(f("packets"), 0),
        num(f("wall_secs").or(f("ingest_secs")), 2),
        num(f("packets_per_sec"), 0),
        num(f("observations_per_sec"), 0),
        num(f("lookup_p50_ms"), 3),
        num(f("lookup_p99_ms"), 3),
        num(f("peak_rss_mib"), 1),
        ratio,
    ]);
}
