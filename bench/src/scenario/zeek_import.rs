//! Zeek import scenario: `pdns-sensor import-zeek` on a generated TSV
//! dns.log, lines per second on one core (target ≥ 500 000 with names
//! repeating as on a resolver), plus a high-cardinality store stress case.

use std::fs::File;
use std::io::BufWriter;
use std::process::Command;

use anyhow::Result;

use super::{Ctx, Outcome, Scenario};
use crate::child::run_measured;
use crate::report::{Entry, SENSOR};
use crate::sensor::read_report;
use crate::table::{Table, num};
use crate::zeeklog;
use pdns_sensor::report::ImportZeekReport;

pub const NAME: &str = "zeek-import";

#[derive(Clone, Debug, Default)]
pub struct ZeekImport;

impl Scenario for ZeekImport {
    fn name(&self) -> &'static str {
        NAME
    }

    fn title(&self) -> &'static str {
        "Zeek dns.log import (TSV, uncompressed)"
    }

    fn run(&self, ctx: &Ctx) -> Result<Outcome> {
        let cases: Vec<(&str, u64, u64)> = if ctx.quick {
            vec![("20k-names", 200_000, 20_000)]
        } else {
            vec![
                ("20k-names", 2_000_000, 20_000),
                ("500k-names", 2_000_000, 500_000),
            ]
        };
        let mut out = Outcome {
            entries: Vec::new(),
            table: Table::new(&[
                "workload", "lines", "MB", "wall s", "lines/s", "MB/s", "records", "RSS MiB",
            ]),
        };
        std::fs::create_dir_all(&ctx.cache_dir)?;
        for (label, lines, names) in cases {
            let log = ctx.cache_dir.join(format!("zeek-{lines}-{names}.log"));
            if !log.exists() {
                let tmp = log.with_extension("tmp");
                let mut w = BufWriter::new(File::create(&tmp)?);
                zeeklog::generate(&mut w, lines, names, 1_700_000_000)?;
                drop(w);
                std::fs::rename(&tmp, &log)?;
            }
            let bytes = std::fs::metadata(&log)?.len();
            let dir = tempfile::tempdir()?;
            let stats = dir.path().join("stats.json");
            let mut cmd = Command::new(&ctx.sensor);
            cmd.args(["import-zeek", "--quiet", "--db"])
                .arg(dir.path().join("db"))
                .arg("--stats-json")
                .arg(&stats)
                .arg(&log);
            let step = crate::progress::step(format!("import-zeek {label}"));
            let m = run_measured(cmd, dir.path())?;
            drop(step);
            let mut e = Entry::new(NAME, SENSOR);
            e.set_workload("label", label);
            e.set_workload("lines", lines);
            e.set_workload("names", names);
            e.set_workload("bytes", bytes);
            if !m.success() {
                e.notes.push(format!("failed: {}", m.describe_failure()));
            }
            let report: Result<ImportZeekReport, String> = read_report(&stats);
            if let Err(problem) = &report {
                e.notes.push(problem.clone());
            }
            let report = report.ok();
            let secs = report
                .as_ref()
                .map_or(m.wall.as_secs_f64(), |r| r.import.elapsed_secs);
            let records = report.as_ref().map(|r| r.import.records_written as f64);
            e.set_figure("elapsed_secs", Some(secs));
            e.set_figure("wall_secs", Some(m.wall.as_secs_f64()));
            e.set_figure("lines_per_sec", Some(lines as f64 / secs.max(1e-9)));
            e.set_figure("mb_per_sec", Some(bytes as f64 / 1e6 / secs.max(1e-9)));
            e.set_figure("records_written", records);
            e.set_figure("peak_rss_mib", Some(m.max_rss_kib as f64 / 1024.0));
            e.set_figure("target_lines_per_sec", Some(500_000.0));
            out.table.row(vec![
                label.to_string(),
                lines.to_string(),
                num(Some(bytes as f64 / 1e6), 1),
                num(Some(secs), 2),
                num(e.figure("lines_per_sec"), 0),
                num(e.figure("mb_per_sec"), 1),
                num(records, 0),
                num(e.figure("peak_rss_mib"), 1),
            ]);
            out.entries.push(e);
        }
        Ok(out)
    }
}
