//! `pdns-sensor import-bro-pdns DATABASE`: a bro-pdns database (a SQLite
//! file, or PostgreSQL through a `postgres://` URL) into the store, with
//! origin `bro-pdns`.
//!
//! Importing the same database again adds only what grew since (see
//! [`crate::source::bro_pdns`] for the rebuilding rules, what cannot be
//! rebuilt, and the ledger that makes a rerun count once). A database that
//! is not bro-pdns's is an error naming the table or column it lacks. The
//! rows read and their rate show while it runs (see [`super::progress`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use super::DbArgs;
use super::progress::{Display, Job, Reporter};
use crate::metrics;
use crate::report::{ImportBroPdnsReport, RetentionSummary};
use crate::source::bro_pdns::import::{self, Database, ImportConfig, ImportReport};
use crate::source::bro_pdns::postgres::{self, PostgresDatabase};
use crate::source::bro_pdns::sqlite::SqliteDatabase;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ImportBroPdnsArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub retention: super::RetentionArgs,
    #[command(flatten)]
    pub nod: super::NodArgs,
    #[command(flatten)]
    pub export: super::export::ExportArgs,
    /// IANA time zone (`Europe/Berlin`) of the naive local times bro-pdns
    /// wrote: its Python version's (default UTC), and its Go version's on
    /// PostgreSQL (default: the server's TimeZone). The Go version's
    /// SQLite times are UTC whatever this says.
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// Name of this database in the import ledger (what an earlier import
    /// contributed is remembered per source); default: its location,
    /// `sqlite:<path>` or `postgres://<host>:<port>/<db>`. Give the old
    /// name to a database that moved.
    #[arg(long, value_name = "NAME")]
    pub source_id: Option<String>,
    /// File holding the PostgreSQL password (first line), so that it is
    /// neither in the URL nor on the command line.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Rows per write (each write is atomic with its ledger entries).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_rows: u64,
    /// Write the run's counters as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// No progress and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Seconds between progress lines on stderr when it is not a terminal
    /// (a terminal gets a spinner with the rows read and their rate).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub status_interval: u64,
    /// The bro-pdns database: a SQLite file, or a PostgreSQL URL
    /// (`postgres://user@host:port/db`; through a unix socket:
    /// `postgres:///db?host=/run/postgresql`).
    #[arg(value_name = "DATABASE")]
    pub database: Option<String>,
}

pub fn run(args: &ImportBroPdnsArgs) -> Result<ImportBroPdnsReport> {
    // Checked here rather than by clap, as `import-zeek` does for its
    // paths: the configuration file is read after clap.
    let Some(database) = &args.database else {
        anyhow::bail!(
            "nothing to import: give a bro-pdns database (a SQLite file or a postgres:// URL)"
        );
    };
    let mut source = open(database, args.password_file.as_deref())?;
    // Not bro-pdns's: said before the store is created or opened.
    import::check(source.as_mut()).with_context(|| format!("importing {}", source.describe()))?;
    let export = args.export.prepare()?;
    let mut store = Store::open_with(
        &args.db.db,
        &args.nod.apply(args.retention.store_options()?),
    )?;
    super::export::attach(export.as_ref(), &mut store)?;
    let store = Arc::new(store);
    let export = export.map(|e| e.start(&store)).transpose()?;
    let config = ImportConfig {
        timezone: args.timezone.clone(),
        source_id: args.source_id.clone(),
        batch_records: usize::try_from(args.batch_rows).unwrap_or(usize::MAX),
        read: Arc::default(),
    };
    // Rows have no total known in advance (counting them is a scan of its
    // own): a spinner with the rate.
    let reporter = Reporter::start(
        Job {
            what: "import-bro-pdns",
            unit: "rows",
            total: None,
            progress: Arc::clone(&config.read),
        },
        Display::choose(args.quiet, args.status_interval),
    );
    let imported = import::import(source.as_mut(), &store, &config, metrics::publish_bro_pdns)
        .with_context(|| format!("importing {}", source.describe()));
    reporter.finish();
    let mut report = ImportBroPdnsReport {
        import: imported?,
        ..ImportBroPdnsReport::default()
    };
    report.export = export.map(|e| e.finish());
    store.flush()?;
    report.retention = RetentionSummary::of(&store);
    if !args.quiet {
        eprint!("{}", render(&report.import));
        eprint!("{}", report.retention.render());
        if let Some(export) = &report.export {
            eprint!("{}", export.render());
        }
    }
    if let Some(path) = &args.stats_json {
        super::write_json(path, &report)?;
    }
    Ok(report)
}

/// The database behind the argument: a URL is PostgreSQL, anything else a
/// SQLite file.
fn open(database: &str, password_file: Option<&Path>) -> Result<Box<dyn Database>> {
    if postgres::is_url(database) {
        let url = match password_file {
            None => database.to_string(),
            Some(file) => with_password(database, file)?,
        };
        return Ok(Box::new(PostgresDatabase::connect(&url)?));
    }
    if password_file.is_some() {
        anyhow::bail!("--password-file is for a postgres:// database");
    }
    Ok(Box::new(SqliteDatabase::open(Path::new(database))?))
}

/// `url` with the password of `file` as a `password=` parameter.
fn with_password(url: &str, file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the password file {}", file.display()))?;
    let password = text.lines().next().unwrap_or_default();
    let encoded: String =
        percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}password={encoded}"))
}

/// The human summary.
pub fn render(r: &ImportReport) -> String {
    let s = &r.stats;
    let secs = r.elapsed_secs.max(1e-9);
    let mut out = format!(
        "imported bro-pdns {} ({}) in {:.2}s: {} rows ({:.0}/s), {} imported ({} grown), {} unchanged \
         since an earlier import, {} skipped -> {} sightings; {} records written\n",
        r.database,
        r.generations
            .iter()
            .zip(&r.timezones)
            .map(|(g, z)| format!("{} generation, times in {z}", g.as_str()))
            .collect::<Vec<_>>()
            .join("; "),
        secs,
        s.rows,
        s.rows as f64 / secs,
        s.rows_imported,
        s.rows_grown,
        s.rows_unchanged,
        s.skipped_rows.values().sum::<u64>() + s.skipped_answers.values().sum::<u64>(),
        s.sightings,
        r.records_written,
    );
    let line = |label: &str, map: &std::collections::BTreeMap<String, u64>| {
        let parts: Vec<String> = map
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("{label}: {}\n", parts.join(" "))
        }
    };
    out.push_str(&line("skipped rows", &s.skipped_rows));
    out.push_str(&line("skipped answers", &s.skipped_answers));
    let notes: Vec<String> = [
        ("rows_without_ttl", s.rows_without_ttl),
        ("rows_shrunk", s.rows_shrunk),
        ("ambiguous_local_times", s.ambiguous_local_times),
        ("unanswered_questions", s.unanswered_questions),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| format!("{k}={n}"))
    .collect();
    if !notes.is_empty() {
        out.push_str(&format!("notes: {}\n", notes.join(" ")));
    }
    out
}
