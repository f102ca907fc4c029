//! Export scenario: what `--export-clickhouse` costs a sensor, and how
//! fast rows reach ClickHouse, measured in one run against Debian's
//! ClickHouse 18.16 on this machine (server and sensors share its cores).
//!
//! Two workloads, one decoder thread per sensor: 10 k names, where
//! aggregation leaves few rows to export, and 1 M names, where nearly every
//! answer is a new row and ClickHouse does the most work (100 k packets
//! each with `--quick`, 2 M without):
//!
//! 1. `ingest` without export, then with it (the run ends only once
//!    ClickHouse has acknowledged everything): the sensor's CPU and time
//!    with and without export — the goal is at most 15 % more CPU;
//! 2. four sensors exporting the same workload into four databases at
//!    once: rows per second into ClickHouse from all of them.
//!
//! It also reports ClickHouse's bytes on disk per stored key.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use super::ingest::{Sweep, sweep_workload, workload_fields};
use super::{Ctx, Outcome, Scenario};
use crate::child::{Measured, run_measured};
use crate::clickhouse::ClickHouse;
use crate::report::{Entry, SENSOR, ratio};
use crate::sensor::{ingest_command, read_report};
use crate::table::{Table, num};
use crate::workload::{Prepared, prepare};
use pdns_sensor::report::IngestReport;

pub const NAME: &str = "export";
const CONCURRENT: usize = 4;

#[derive(Clone, Debug, Default)]
pub struct Export;

impl Scenario for Export {
    fn name(&self) -> &'static str {
        NAME
    }

    fn title(&self) -> &'static str {
        "Export to ClickHouse (one core per sensor; server on the same machine)"
    }

    fn run(&self, ctx: &Ctx) -> Result<Outcome> {
        let packets = if ctx.quick { 100_000 } else { 2_000_000 };
        let workloads = [
            sweep_workload("10k-names", Sweep::Names, packets, 10_000, 1_000),
            sweep_workload("1M-names", Sweep::Names, packets, 1_000_000, 1_000),
        ];
        let ch = ClickHouse::start()?;
        let schema = Command::new(&ctx.sensor)
            .args(["clickhouse-schema", "--apply", &ch.url("pdns")])
            .output()?;
        if !schema.status.success() {
            bail!(
                "clickhouse-schema: {}",
                String::from_utf8_lossy(&schema.stderr)
            );
        }
        let tmp = tempfile::Builder::new()
            .prefix("pdns-bench-export-")
            .tempdir()?;
        let mut out = Outcome {
            entries: Vec::new(),
            table: Table::new(&[
                "workload",
                "step",
                "sensors",
                "export",
                "sensor s",
                "CPU s",
                "pkt/s",
                "rows exported",
                "rows/s",
                "CPU vs off",
                "s vs off",
            ]),
        };
        let url = ch.url("pdns");
        let steps: [(&str, usize, Option<&str>); 3] = [
            ("ingest", 1, None),
            ("ingest", 1, Some(url.as_str())),
            ("concurrent", CONCURRENT, Some(url.as_str())),
        ];
        let mut i = 0;
        for w in workloads {
            let p = prepare(&ctx.cache_dir, &w)?;
            let first = out.entries.len();
            for (step, sensors, export) in steps {
                i += 1;
                let run = tmp.path().join(format!("step-{i}"));
                std::fs::create_dir(&run)?;
                let progress = crate::progress::step(format!(
                    "{} {step}: {sensors} sensor(s), export {}",
                    p.workload.label,
                    if export.is_some() { "on" } else { "off" }
                ));
                let runs: Vec<Result<(Measured, Result<IngestReport, String>)>> =
                    std::thread::scope(|scope| {
                        let handles: Vec<_> = (0..sensors)
                            .map(|n| {
                                let run = run.join(format!("sensor-{n}"));
                                let p = &p;
                                scope.spawn(move || one(ctx, p, &run, n, export))
                            })
                            .collect();
                        handles
                            .into_iter()
                            .map(|h| h.join().expect("a measuring thread panicked"))
                            .collect()
                    });
                drop(progress);
                let mut e = Entry::new(NAME, SENSOR);
                workload_fields(&mut e, &p);
                e.set_workload(
                    "label",
                    format!("{} {step} x{sensors}", p.workload.label).as_str(),
                );
                e.set_workload("step", step);
                e.set_workload("sensors", sensors as u64);
                e.set_workload("export", if export.is_some() { "on" } else { "off" });
                e.set_workload("threads", 1);
                let (mut cpu, mut elapsed, mut wall, mut rows, mut packets) =
                    (0.0, 0.0f64, 0.0f64, 0, 0);
                for r in runs {
                    let (m, report) = r?;
                    if !m.success() {
                        e.notes.push(format!("failed: {}", m.describe_failure()));
                    }
                    cpu += m.user_secs + m.sys_secs;
                    wall = wall.max(m.wall.as_secs_f64());
                    match report {
                        Ok(r) => {
                            elapsed = elapsed.max(r.elapsed_secs);
                            packets += r.totals.packets;
                            if let Some(x) = &r.export {
                                rows += x.sent_rows;
                                if x.remaining.entries > 0 {
                                    e.notes.push(format!(
                                        "failed: {} batches left in the spool: {:?}",
                                        x.remaining.entries, x.reason
                                    ));
                                }
                            } else if export.is_some() {
                                e.notes.push("failed: no export in the report".into());
                            }
                        }
                        Err(problem) => e.notes.push(problem),
                    }
                }
                e.set_figure("cpu_secs", Some(cpu / sensors as f64));
                e.set_figure("elapsed_secs", Some(elapsed));
                e.set_figure("wall_secs", Some(wall));
                e.set_figure(
                    "packets_per_sec",
                    ratio(Some(packets as f64), Some(elapsed)),
                );
                if export.is_some() {
                    e.set_figure("rows_exported", Some(rows as f64));
                    e.set_figure("rows_per_sec", ratio(Some(rows as f64), Some(elapsed)));
                }
                let off = out.entries[first..]
                    .iter()
                    .find(|o| o.workload.get("export").and_then(|v| v.as_str()) == Some("off"));
                if let (Some(off), Some(_)) = (off, export) {
                    for (k, figure) in [
                        ("cpu_vs_off", "cpu_secs"),
                        ("elapsed_vs_off", "elapsed_secs"),
                    ] {
                        if let Some(v) = ratio(e.figure(figure), off.figure(figure)) {
                            e.ratios.insert(k.into(), v);
                        }
                    }
                }
                out.table.row(vec![
                    p.workload.label.clone(),
                    step.to_string(),
                    sensors.to_string(),
                    if export.is_some() { "on" } else { "off" }.to_string(),
                    num(e.figure("elapsed_secs"), 3),
                    num(e.figure("cpu_secs"), 3),
                    num(e.figure("packets_per_sec"), 0),
                    num(e.figure("rows_exported"), 0),
                    num(e.figure("rows_per_sec"), 0),
                    num(e.ratios.get("cpu_vs_off").copied(), 3),
                    num(e.ratios.get("elapsed_vs_off").copied(), 3),
                ]);
                out.entries.push(e);
            }
        }
        // What ClickHouse keeps per key, once its parts are merged.
        let _ = ch.query("OPTIMIZE TABLE pdns.pdns_records FINAL");
        let keys: Option<f64> = ch
            .query("SELECT count() FROM pdns.pdns_records")
            .ok()
            .and_then(|t| t.trim().parse().ok());
        let bytes: u64 = ["pdns_records", "pdns_rdata", "pdns_names", "pdns_negative"]
            .iter()
            .filter_map(|t| ch.table_bytes("pdns", t))
            .sum();
        if let Some(last) = out.entries.last_mut() {
            last.set_figure("clickhouse_bytes", Some(bytes as f64));
            last.set_figure(
                "clickhouse_bytes_per_record",
                ratio(Some(bytes as f64), keys),
            );
            if let Some(per) = last.figure("clickhouse_bytes_per_record") {
                last.notes.push(format!(
                    "ClickHouse holds {bytes} bytes for {} record keys ({per:.1} B per record, \
                     every history table)",
                    keys.unwrap_or(0.0)
                ));
            }
        }
        Ok(out)
    }
}

/// One sensor's `ingest`, exporting if `export` says where.
fn one(
    ctx: &Ctx,
    p: &Prepared,
    run: &Path,
    n: usize,
    export: Option<&str>,
) -> Result<(Measured, Result<IngestReport, String>)> {
    std::fs::create_dir_all(run)?;
    let stats = run.join("stats.json");
    let mut cmd = ingest_command(&ctx.sensor, &run.join("db"), 1, false, &stats, &p.pcap);
    if let Some(url) = export {
        cmd.args(["--export-clickhouse", url, "--sensor-id"])
            .arg(format!("bench-{n}"));
    }
    let m = run_measured(cmd, run)?;
    Ok((m, read_report(&stats)))
}
