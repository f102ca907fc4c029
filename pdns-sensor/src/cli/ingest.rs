//! `pdns-sensor ingest FILE...`: pcap/pcapng files into the store, through
//! the same pipeline live capture uses, and dnstap Frame Streams files
//! (recognised by their content) through the same worker at the extraction
//! step, with a progress bar on a terminal and periodic progress lines
//! otherwise (see [`super::progress`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use super::DbArgs;
use super::progress::{Display, Job, Reporter};
use crate::pipeline::{Pipeline, PipelineConfig, Summary, Worker};
use crate::report::{DnstapReport, IngestReport, PipelineTotals, RetentionSummary};
use crate::source::dnstap::{self, DnstapStats};
use crate::source::pcap;
use crate::source::progress::ReadProgress;
use crate::store::{CF_RECORDS, Selector, Store, StoreOptions};

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Decoder threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub pipeline: super::PipelineArgs,
    #[command(flatten)]
    pub retention: super::RetentionArgs,
    #[command(flatten)]
    pub nod: super::NodArgs,
    #[command(flatten)]
    pub export: super::export::ExportArgs,
    #[command(flatten)]
    pub dnstap: super::dnstap::DnstapReadArgs,
    /// Compact the database after ingesting (smallest size on disk).
    #[arg(long)]
    pub compact: bool,
    /// Write the run's counters as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// No progress and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Seconds between progress lines on stderr when it is not a terminal
    /// (a terminal gets a progress bar).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub status_interval: u64,
    /// Capture files (pcap or pcapng) or dnstap Frame Streams files (as
    /// written by fstrm_capture or BIND's dnstap-output file).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub fn run(args: &IngestArgs) -> Result<IngestReport> {
    let started = Instant::now();
    let export = args.export.prepare()?;
    // A bulk writer: compactions may take every core.
    let options = StoreOptions {
        split_compactions: true,
        ..args.nod.apply(args.retention.store_options()?)
    };
    let mut store = Store::open_with(&args.db.db, &options)?;
    super::export::attach(export.as_ref(), &mut store)?;
    let store = Arc::new(store);
    let export = export.map(|e| e.start(&store)).transpose()?;
    let config = args.pipeline.config(args.threads);
    let mut pipeline = Pipeline::new(&config, Arc::clone(&store))?;
    let mut report = IngestReport::default();
    let mut stopped = false;
    let progress = Arc::new(ReadProgress::default());
    // A pipe or a device has no size: no total, no ETA.
    let sizes: Vec<Option<u64>> = args
        .files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len())
        })
        .collect();
    let reporter = Reporter::start(
        Job {
            what: "ingest",
            unit: "packets",
            total: sizes.iter().copied().sum(),
            progress: Arc::clone(&progress),
        },
        Display::choose(args.quiet, args.status_interval),
    );
    let mut dnstap_input = DnstapInput::default();
    for (file, size) in args.files.iter().zip(&sizes) {
        let start = progress.bytes();
        if dnstap::file::detect(file).unwrap_or(false) {
            let result = dnstap_input.read(file, args, &config, &store, &progress);
            progress.finish_file(start, size.unwrap_or(0));
            match result {
                Ok(truncated) => {
                    report.files += 1;
                    report.files_truncated += usize::from(truncated);
                }
                Err(e) => {
                    report.files_failed += 1;
                    tracing::error!("{e:#}");
                }
            }
            if dnstap_input.failed {
                break;
            }
            continue;
        }
        let result = pcap::read_file_counted(file, &progress, |frame| {
            stopped = stopped || pipeline.push(frame).is_err();
        });
        progress.finish_file(start, size.unwrap_or(0));
        match result {
            Ok(read) => {
                report.files += 1;
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
        if stopped {
            break;
        }
    }
    reporter.finish();
    // A worker that stopped says why here.
    report.summary = pipeline.finish().context("writing to the database")?;
    if let Some(summary) = dnstap_input.finish()? {
        report.summary.add(&summary);
    }
    if dnstap_input.files > 0 {
        report.dnstap = Some(DnstapReport::from_stats(&dnstap_input.stats, None));
    }
    report.totals = PipelineTotals::from_summary(&report.summary);
    // Everything is written (and spooled): wait for ClickHouse.
    report.export = export.map(|e| e.finish());
    if args.compact {
        // Flushes too, with automatic compactions held off.
        let compact_started = Instant::now();
        store.compact()?;
        tracing::debug!("flushed and compacted in {:?}", compact_started.elapsed());
    } else {
        let flush_started = Instant::now();
        store.flush()?;
        tracing::debug!("memtables flushed in {:?}", flush_started.elapsed());
    }
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.db_bytes = store.disk_bytes()?;
    report.retention = RetentionSummary::of(&store);
    if let Some(path) = &args.stats_json {
        // Counting every record is exact after a compaction (and costs a
        // full scan, so only when asked for); otherwise RocksDB estimates.
        report.db_records = if args.compact {
            store.records(&Selector::All, &Default::default()).count() as u64
        } else {
            store.estimate_keys(CF_RECORDS)?
        };
        super::write_json(path, &report)?;
    }
    if !args.quiet {
        eprint!("{}", render_report(&report));
    }
    if report.files_failed > 0 && report.files == 0 {
        anyhow::bail!("no file could be read");
    }
    Ok(report)
}

/// The human summary printed after an ingest.
pub fn render_report(report: &IngestReport) -> String {
    let t = &report.totals;
    let secs = report.elapsed_secs.max(1e-9);
    let mut s = format!(
        "ingested {} file(s){}{} in {:.2}s: {} frames ({:.0}/s), {} DNS responses, {} queries, \
         {} observations -> {} records, {} negative answers written\n",
        report.files,
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
        t.packets,
        t.packets as f64 / secs,
        t.dns_responses,
        t.dns_queries,
        t.observations,
        t.records_written,
        t.negatives_written,
    );
    if let Some(dnstap) = &report.dnstap {
        s.push_str(&dnstap.render());
    }
    let skipped = t.drops_summary();
    if !skipped.is_empty() {
        s.push_str(&format!("skipped: {skipped}\n"));
    }
    s.push_str(&report.retention.render());
    if let Some(export) = &report.export {
        s.push_str(&export.render());
    }
    s
}

/// The dnstap files of an ingest: read in this thread into one worker of
/// their own (its records marked as dnstap's), made at the first such file.
#[derive(Default)]
struct DnstapInput {
    worker: Option<Worker>,
    stats: DnstapStats,
    files: usize,
    /// The worker stopped (the store failed): `finish` says why.
    failed: bool,
    error: Option<crate::pipeline::PipelineError>,
}

impl DnstapInput {
    /// Reads one Frame Streams file; true if it was cut short.
    fn read(
        &mut self,
        file: &std::path::Path,
        args: &IngestArgs,
        config: &PipelineConfig,
        store: &Arc<Store>,
        progress: &ReadProgress,
    ) -> Result<bool> {
        let worker = match &mut self.worker {
            Some(w) => w,
            None => {
                let config = PipelineConfig {
                    origin: crate::vocab::value::Origin::DNSTAP,
                    ..config.clone()
                };
                self.worker.insert(Worker::new(
                    &config,
                    Arc::clone(store),
                    "pdns-store-dnstap",
                )?)
            }
        };
        let dnstap = args.dnstap.config();
        let mut error = None;
        let mut pending = 0u64;
        let read = dnstap::file::read_file(
            file,
            dnstap.max_frame,
            dnstap.selection,
            |n| progress.add_bytes(n),
            |response| {
                if error.is_some() {
                    return;
                }
                pending += 1;
                if pending == 4096 {
                    progress.add_items(pending);
                    pending = 0;
                }
                let message = crate::vocab::packet::DnsMessage {
                    ts: response.ts,
                    transport: response.transport,
                    data: &response.dns,
                };
                if let Err(e) = worker.message(&message) {
                    error = Some(e);
                }
            },
        )
        .with_context(|| format!("reading {}", file.display()))?;
        progress.add_items(pending);
        self.files += 1;
        self.stats.add(&read.stats);
        if let Some(e) = error {
            self.failed = true;
            self.error = Some(e);
        }
        use dnstap::receiver::Ending;
        Ok(match read.ending {
            Ending::Finished | Ending::Closed => false,
            Ending::Truncated => {
                tracing::warn!(
                    "{}: file is truncated; kept the {} frames before the cut",
                    file.display(),
                    read.stats.frames
                );
                true
            }
            Ending::Protocol(e) => {
                tracing::warn!(
                    "{}: not read past a Frame Streams error ({e}); kept the {} frames before it",
                    file.display(),
                    read.stats.frames
                );
                true
            }
        })
    }

    /// Flushes the worker; its totals, or the error it stopped at.
    fn finish(&mut self) -> Result<Option<Summary>> {
        if let Some(e) = self.error.take() {
            return Err(anyhow::Error::new(e).context("writing to the database"));
        }
        match self.worker.take() {
            Some(w) => Ok(Some(w.finish().context("writing to the database")?)),
            None => Ok(None),
        }
    }
}
