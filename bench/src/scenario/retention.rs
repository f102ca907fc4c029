//! Retention scenario: what `--retention` costs, measured in one run.
//!
//! One ingest workload (100 k names; 10 k with `--quick`), on one decoder
//! thread, each step into a fresh or the previous database:
//!
//! 1. `ingest --compact` with retention off, and with a retention under
//!    which nothing expires (a year more than the capture's age): the
//!    price of the cutoff in the write path, the merge operator, the
//!    compaction filter and the reads of the final count;
//! 2. the compacted stores compacted once more (an `ingest --compact` of
//!    an empty capture): retention off, on with nothing expired, and on
//!    with everything expired (`--retention 1`: the capture is older than
//!    a day) — the compaction filter deleting the store.
//!
//! The sensor judges by the wall clock, as in production.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::ingest::{Sweep, sweep_workload, workload_fields};
use super::{Ctx, Outcome, Scenario};
use crate::child::run_measured;
use crate::report::{Entry, SENSOR, ratio};
use crate::sensor::{ingest_command, read_report};
use crate::table::{Table, num};
use crate::workload::{Prepared, prepare};
use pdns_sensor::report::IngestReport;

pub const NAME: &str = "retention";
const DAY: u64 = 86_400;

#[derive(Clone, Debug, Default)]
pub struct Retention;

/// One step: what it runs and how it is labelled.
struct Step<'a> {
    step: &'static str,
    /// Days; `None`: off.
    retention: Option<u64>,
    expires: &'static str,
    db: &'a Path,
    pcap: &'a Path,
}

impl Scenario for Retention {
    fn name(&self) -> &'static str {
        NAME
    }

    fn title(&self) -> &'static str {
        "Retention (ingest and compaction, off vs on)"
    }

    fn run(&self, ctx: &Ctx) -> Result<Outcome> {
        let w = if ctx.quick {
            sweep_workload("10k-names", Sweep::Names, 100_000, 10_000, 1_000)
        } else {
            sweep_workload("100k-names", Sweep::Names, 2_000_000, 100_000, 1_000)
        };
        let p = prepare(&ctx.cache_dir, &w)?;
        let tmp = tempfile::Builder::new()
            .prefix("pdns-bench-retention-")
            .tempdir()?;
        let empty = tmp.path().join("empty.pcap");
        std::fs::write(&empty, empty_pcap())?;
        let (off_db, on_db) = (tmp.path().join("off"), tmp.path().join("on"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let keep_all = Some(now.saturating_sub(p.workload.cfg.start_time) / DAY + 365);
        let steps = [
            Step {
                step: "ingest",
                retention: None,
                expires: "-",
                db: &off_db,
                pcap: &p.pcap,
            },
            Step {
                step: "ingest",
                retention: keep_all,
                expires: "nothing",
                db: &on_db,
                pcap: &p.pcap,
            },
            Step {
                step: "recompact",
                retention: None,
                expires: "-",
                db: &off_db,
                pcap: &empty,
            },
            Step {
                step: "recompact",
                retention: keep_all,
                expires: "nothing",
                db: &on_db,
                pcap: &empty,
            },
            Step {
                step: "recompact",
                retention: Some(1),
                expires: "everything",
                db: &on_db,
                pcap: &empty,
            },
        ];
        let mut out = Outcome {
            entries: Vec::new(),
            table: Table::new(&[
                "step",
                "retention",
                "expires",
                "sensor s",
                "wall s",
                "CPU s",
                "pkt/s",
                "DB MiB",
                "deleted",
                "s vs off",
                "CPU vs off",
            ]),
        };
        for (i, s) in steps.iter().enumerate() {
            let run = tmp.path().join(format!("step-{i}"));
            std::fs::create_dir(&run)?;
            let label = format!(
                "{} {} retention={}",
                p.workload.label,
                s.step,
                if s.retention.is_some() { "on" } else { "off" }
            );
            let step = crate::progress::step(format!("{label}, expires {}", s.expires));
            let mut e = measure(ctx, &p, s, &run)?;
            drop(step);
            // The same step with retention off, run before.
            let off = out.entries.iter().find(|o| {
                o.workload.get("step").and_then(|v| v.as_str()) == Some(s.step)
                    && o.workload.get("retention").and_then(|v| v.as_str()) == Some("off")
            });
            if let (Some(off), Some(_)) = (off, s.retention) {
                for (k, figure) in [
                    ("elapsed_vs_off", "elapsed_secs"),
                    ("cpu_vs_off", "cpu_secs"),
                ] {
                    if let Some(v) = ratio(e.figure(figure), off.figure(figure)) {
                        e.ratios.insert(k.into(), v);
                    }
                }
            }
            out.table.row(vec![
                s.step.to_string(),
                match s.retention {
                    Some(days) => format!("{days} days"),
                    None => "off".to_string(),
                },
                s.expires.to_string(),
                num(e.figure("elapsed_secs"), 3),
                num(e.figure("wall_secs"), 3),
                num(e.figure("cpu_secs"), 3),
                num(e.figure("packets_per_sec"), 0),
                num(e.figure("db_bytes").map(|b| b / 1_048_576.0), 1),
                num(e.figure("expired_by_compaction"), 0),
                num(e.ratios.get("elapsed_vs_off").copied(), 3),
                num(e.ratios.get("cpu_vs_off").copied(), 3),
            ]);
            out.entries.push(e);
        }
        Ok(out)
    }
}

/// One sensor `ingest --compact` run of a step.
fn measure(ctx: &Ctx, p: &Prepared, s: &Step<'_>, run: &Path) -> Result<Entry> {
    let stats = run.join("stats.json");
    let mut cmd: Command = ingest_command(&ctx.sensor, s.db, 1, true, &stats, s.pcap);
    cmd.env_remove("PDNS_SENSOR_TEST_NOW");
    if let Some(days) = s.retention {
        cmd.arg("--retention").arg(days.to_string());
    }
    let m = run_measured(cmd, run)?;
    let mut e = Entry::new(NAME, SENSOR);
    workload_fields(&mut e, p);
    e.set_workload("label", format!("{} {}", p.workload.label, s.step).as_str());
    e.set_workload("step", s.step);
    e.set_workload(
        "retention",
        if s.retention.is_some() { "on" } else { "off" },
    );
    e.set_workload("retention_days", s.retention.unwrap_or(0));
    e.set_workload("expires", s.expires);
    e.set_workload("threads", 1);
    if !m.success() {
        e.notes.push(format!("failed: {}", m.describe_failure()));
    }
    let report: Result<IngestReport, String> = read_report(&stats);
    if let Err(problem) = &report {
        e.notes.push(problem.clone());
    }
    let wall = m.wall.as_secs_f64();
    e.set_figure("wall_secs", Some(wall));
    e.set_figure("peak_rss_mib", Some(m.max_rss_kib as f64 / 1024.0));
    e.set_figure("cpu_secs", Some(m.user_secs + m.sys_secs));
    if let Ok(r) = &report {
        e.set_figure("elapsed_secs", Some(r.elapsed_secs));
        e.set_figure("db_bytes", Some(r.db_bytes as f64));
        e.set_figure("db_records", Some(r.db_records as f64));
        if r.totals.packets > 0 {
            e.set_figure("packets", Some(r.totals.packets as f64));
            e.set_figure(
                "packets_per_sec",
                ratio(Some(r.totals.packets as f64), Some(r.elapsed_secs)),
            );
        }
        let x = &r.retention.expired;
        let deleted: u64 = x.by_cf().iter().map(|(_, c)| c.compaction).sum();
        let dropped: u64 = x.by_cf().iter().map(|(_, c)| c.write).sum();
        e.set_figure("expired_by_compaction", Some(deleted as f64));
        e.set_figure("expired_at_write", Some(dropped as f64));
        if s.expires == "nothing" && deleted + dropped > 0 {
            e.notes.push(format!(
                "failed: {} entries expired where nothing should",
                deleted + dropped
            ));
        }
    }
    Ok(e)
}

/// A classic pcap with no packet (Ethernet, microseconds).
fn empty_pcap() -> Vec<u8> {
    let mut b = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65_535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b
}
