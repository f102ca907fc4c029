//! `pdns-sensor import-zeek [PATH...] [--follow FILE]`: Zeek dns.log files
//! into the store, or a live one followed across rotations.
//!
//! Files and directories are imported first (idempotently: a file whose
//! content was imported before is skipped and reported), then, with
//! `--follow`, the live log is tailed until SIGINT or SIGTERM, after which
//! it writes what it read and exits. See [`crate::source::zeek`] for the
//! format handling and the reconstruction rules. The file import shows its
//! progress (see [`super::progress`]); following has no end to show.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::DbArgs;
use super::progress::{Display, Job, Reporter};
use crate::metrics;
use crate::report::{ImportZeekReport, RetentionSummary};
use crate::source::zeek::ZeekStats;
use crate::source::zeek::follow::{self, FollowConfig, FollowReport};
use crate::source::zeek::import::{ImportConfig, ImportReport, Importer, dns_logs, file_id};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ImportZeekArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub retention: super::RetentionArgs,
    #[command(flatten)]
    pub nod: super::NodArgs,
    #[command(flatten)]
    pub export: super::export::ExportArgs,
    /// Follow this live dns.log (across rotations) after importing PATHs,
    /// until SIGINT/SIGTERM.
    #[arg(long, value_name = "FILE")]
    pub follow: Option<PathBuf>,
    /// Pre-aggregation bound (distinct keys held in memory).
    #[arg(long, default_value_t = 100_000)]
    pub aggregate_entries: usize,
    /// Seconds between writes when importing files (`--follow` writes at
    /// least every 2 s whatever this says).
    #[arg(long, default_value_t = 5)]
    pub flush_interval: u64,
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
    /// dns.log files or directories (TSV or JSON, plain or gzip).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

pub fn run(args: &ImportZeekArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    if args.follow.is_some() {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&stop))
                .context("installing the signal handler")?;
        }
    }
    run_with_stop(args, &stop).map(|_| ())
}

/// [`run`] with the stop flag supplied by the caller (tests, `run`).
pub fn run_with_stop(args: &ImportZeekArgs, stop: &AtomicBool) -> Result<ImportZeekReport> {
    // Checked here rather than by clap, which counts only the command line
    // and the environment: `follow` may come from the configuration file.
    if args.paths.is_empty() && args.follow.is_none() {
        anyhow::bail!(
            "nothing to import: give dns.log files or directories, or --follow FILE \
             (on the command line, as PDNS_FOLLOW, or as `follow` in [import-zeek] of the \
             configuration file)"
        );
    }
    let export = args.export.prepare()?;
    let mut store = Store::open_with(
        &args.db.db,
        &args.nod.apply(args.retention.store_options()?),
    )?;
    super::export::attach(export.as_ref(), &mut store)?;
    let store = Arc::new(store);
    let export = export.map(|e| e.start(&store)).transpose()?;
    let mut report = ImportZeekReport::default();
    let config = ImportConfig {
        max_entries: args.aggregate_entries,
        flush_interval: Duration::from_secs(args.flush_interval.max(1)),
    };
    let mut importer = Importer::new(Arc::clone(&store), config, metrics::publish_zeek)
        .context("starting the import")?;
    let mut missing = 0;
    let mut files = Vec::new();
    for path in &args.paths {
        if !path.exists() {
            tracing::error!("{}: no such file or directory", path.display());
            missing += 1;
            continue;
        }
        files.extend(dns_logs(path));
    }
    // The live log named by --follow, found again in a directory walk,
    // is the follower's: imported here, the follower would read it again.
    if let Some(followed) = args.follow.as_deref().and_then(file_id) {
        files.retain(|f| {
            let mine = file_id(f) == Some(followed);
            if mine {
                tracing::info!("{}: left to --follow", f.display());
            }
            !mine
        });
    }
    let total = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let reporter = Reporter::start(
        Job {
            what: "import-zeek",
            unit: "lines",
            total: Some(total),
            progress: importer.read_progress(),
        },
        if files.is_empty() {
            Display::Off
        } else {
            Display::choose(args.quiet, args.status_interval)
        },
    );
    for file in &files {
        importer
            .import_file(file)
            .context("writing to the database")?;
    }
    reporter.finish();
    report.import = importer.finish().context("writing to the database")?;
    report.import.files_failed += missing;
    if !args.quiet && !args.paths.is_empty() {
        eprint!("{}", render_import(&report.import));
    }
    if let Some(file) = &args.follow {
        let config = FollowConfig {
            max_entries: args.aggregate_entries,
            ..FollowConfig::default()
        };
        tracing::info!("following {} (stop with Ctrl-C)", file.display());
        let followed = follow::follow(
            Arc::clone(&store),
            file,
            &config,
            stop,
            metrics::publish_zeek,
        )?;
        if !args.quiet {
            eprint!("{}", render_follow(&followed));
        }
        report.follow = Some(followed);
    }
    // Everything is written (and spooled): wait for ClickHouse.
    report.export = export.map(|e| e.finish());
    store.flush()?;
    report.retention = RetentionSummary::of(&store);
    if !args.quiet {
        eprint!("{}", report.retention.render());
        if let Some(export) = &report.export {
            eprint!("{}", export.render());
        }
    }
    if let Some(path) = &args.stats_json {
        super::write_json(path, &report)?;
    }
    let i = &report.import;
    if !args.paths.is_empty()
        && i.files_failed > 0
        && i.files_imported + i.files_already_imported + i.files_empty + i.files_damaged == 0
    {
        anyhow::bail!("no file could be read");
    }
    Ok(report)
}

fn lines_summary(stats: &ZeekStats, secs: f64) -> String {
    format!(
        "{} lines ({:.0}/s), {} imported -> {} record and {} negative observations",
        stats.lines,
        stats.lines as f64 / secs,
        stats.lines_imported,
        stats.records,
        stats.negatives,
    )
}

/// The human summary of the file import.
pub fn render_import(r: &ImportReport) -> String {
    let secs = r.elapsed_secs.max(1e-9);
    let mut extra = Vec::new();
    if r.files_already_imported > 0 {
        extra.push(format!(
            "{} already imported, skipped",
            r.files_already_imported
        ));
    }
    if r.files_resumed > 0 {
        extra.push(format!("{} resumed", r.files_resumed));
    }
    if r.files_damaged > 0 {
        extra.push(format!(
            "{} damaged (kept the lines before the damage)",
            r.files_damaged
        ));
    }
    if r.files_empty > 0 {
        extra.push(format!("{} empty", r.files_empty));
    }
    if r.files_failed > 0 {
        extra.push(format!("{} unreadable", r.files_failed));
    }
    let mut s = format!(
        "imported {} Zeek file(s){} in {:.2}s: {}; {} records, {} negative answers written\n",
        r.files_imported,
        if extra.is_empty() {
            String::new()
        } else {
            format!(" ({})", extra.join(", "))
        },
        secs,
        lines_summary(&r.stats, secs),
        r.records_written,
        r.negatives_written,
    );
    s.push_str(&r.stats.render_skips());
    s
}

/// The human summary of a follow run.
pub fn render_follow(r: &FollowReport) -> String {
    let secs = r.elapsed_secs.max(1e-9);
    let mut s = format!(
        "followed for {:.1}s{}: {}; {} rotation(s), {} truncation(s), {} file(s) found rotated away unread; {} records, {} negative answers written\n",
        secs,
        if r.resumed { " (resumed)" } else { "" },
        lines_summary(&r.stats, secs),
        r.rotations,
        r.truncations,
        r.files_caught_up,
        r.records_written,
        r.negatives_written,
    );
    s.push_str(&r.stats.render_skips());
    s
}
