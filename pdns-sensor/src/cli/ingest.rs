//! `pdns-sensor ingest FILE...`: pcap/pcapng files into the store, through
//! the same pipeline live capture uses.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

use super::DbArgs;
use crate::decode::DropReason;
use crate::pipeline::{Pipeline, Summary};
use crate::source::pcap;
use crate::store::{CF_RECORDS, Store};

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Decoder threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub pipeline: super::PipelineArgs,
    /// Compact the database after ingesting (smallest size on disk).
    #[arg(long)]
    pub compact: bool,
    /// Write the run's counters as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// No summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Capture files (pcap or pcapng).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// What an ingest run did.
#[derive(Debug, Default)]
pub struct IngestReport {
    pub summary: Summary,
    pub files_read: usize,
    pub files_failed: usize,
    pub files_truncated: usize,
    pub elapsed: Duration,
}

pub fn run(args: &IngestArgs) -> Result<IngestReport> {
    let started = Instant::now();
    let store = Arc::new(
        Store::open(&args.db.db)
            .with_context(|| format!("opening database {}", args.db.db.display()))?,
    );
    let config = args.pipeline.config(args.threads);
    let mut pipeline =
        Pipeline::new(&config, Arc::clone(&store)).context("starting the decoder threads")?;
    let mut report = IngestReport::default();
    let mut store_error = None;
    for file in &args.files {
        let result = pcap::read_file(file, |frame| {
            if store_error.is_none()
                && let Err(e) = pipeline.push(frame)
            {
                store_error = Some(e);
            }
        });
        match result {
            Ok(read) => {
                report.files_read += 1;
                if read.truncated {
                    report.files_truncated += 1;
                    tracing::warn!(
                        "{}: file is truncated; kept the {} frames before the cut",
                        file.display(),
                        read.frames
                    );
                }
                if read.unknown_interface > 0 {
                    tracing::warn!(
                        "{}: {} packets name an undescribed interface and were skipped",
                        file.display(),
                        read.unknown_interface
                    );
                }
            }
            Err(e) => {
                report.files_failed += 1;
                tracing::error!("{e}");
            }
        }
        if store_error.is_some() {
            break;
        }
    }
    let finished = pipeline.finish();
    if let Some(e) = store_error {
        return Err(e).context("writing to the database");
    }
    report.summary = finished.context("writing to the database")?;
    let flush_started = std::time::Instant::now();
    store.flush().context("flushing the database")?;
    tracing::debug!("memtables flushed in {:?}", flush_started.elapsed());
    if args.compact {
        let compact_started = std::time::Instant::now();
        store.compact();
        tracing::debug!("compacted in {:?}", compact_started.elapsed());
    }
    report.elapsed = started.elapsed();
    if let Some(path) = &args.stats_json {
        write_stats(path, &report, &store, args.compact)?;
    }
    if !args.quiet {
        eprint!("{}", render_report(&report));
    }
    if report.files_failed > 0 && report.files_read == 0 {
        anyhow::bail!("no file could be read");
    }
    Ok(report)
}

fn write_stats(path: &PathBuf, report: &IngestReport, store: &Store, exact: bool) -> Result<()> {
    let d = &report.summary.decode;
    let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), d.dropped(*r).into()))
        .collect();
    let db_records = if exact {
        store
            .records(&crate::store::Selector::All, &Default::default())
            .count() as u64
    } else {
        store.estimate_keys(CF_RECORDS)?
    };
    let stats = serde_json::json!({
        "files": report.files_read,
        "files_failed": report.files_failed,
        "files_truncated": report.files_truncated,
        "packets": d.frames,
        "bytes": d.bytes,
        "dns_queries": d.dns_queries,
        "dns_responses": d.dns_responses,
        "observations": d.observations + d.negatives,
        "record_observations": d.observations,
        "negative_observations": d.negatives,
        "records_written": report.summary.records_written,
        "negatives_written": report.summary.negatives_written,
        "flushes": report.summary.flushes,
        "elapsed_secs": report.elapsed.as_secs_f64(),
        "db_bytes": store.disk_bytes()?,
        "db_records": db_records,
        "drops": drops,
    });
    std::fs::write(path, serde_json::to_string_pretty(&stats)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// The human summary printed after an ingest.
pub fn render_report(report: &IngestReport) -> String {
    let d = &report.summary.decode;
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let mut s = format!(
        "ingested {} file(s){}{} in {:.2}s: {} frames ({:.0}/s), {} DNS responses, {} queries, \
         {} observations -> {} records, {} negative answers written\n",
        report.files_read,
        if report.files_truncated > 0 {
            format!(", {} truncated", report.files_truncated)
        } else {
            String::new()
        },
        if report.files_failed > 0 {
            format!(", {} unreadable", report.files_failed)
        } else {
            String::new()
        },
        secs,
        d.frames,
        d.frames as f64 / secs,
        d.dns_responses,
        d.dns_queries,
        d.observations + d.negatives,
        report.summary.records_written,
        report.summary.negatives_written,
    );
    let skipped = d.drops_summary();
    if !skipped.is_empty() {
        s.push_str(&format!("skipped: {skipped}\n"));
    }
    s
}
