//! ClickHouse export on the command line: the options `run`, `ingest` and
//! `import-zeek` share, and `pdns-sensor export`, which sends what a
//! database's spool holds and exits (for a sensor that will not run
//! again, or to empty a spool after an outage).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::DbArgs;
use crate::clickhouse::client::{Client, ClientOptions, Target};
use crate::export::{self, Exporter, Readiness, rows::RowEncoder};
use crate::report::ExportSummary;
use crate::store::Store;
use crate::store::spool::SpoolConfig;

/// Export options of the commands that write.
#[derive(Debug, Args, Clone, Default)]
pub struct ExportArgs {
    /// Also export every flushed batch to ClickHouse, over its HTTP
    /// interface: http[s]://[USER[:PASSWORD]@]HOST:PORT[/DATABASE]. The
    /// local database stays the durable spool: nothing is lost while
    /// ClickHouse is away.
    #[arg(long, value_name = "URL")]
    pub export_clickhouse: Option<String>,
    /// File holding the ClickHouse password (first line), instead of the URL.
    #[arg(long, value_name = "FILE")]
    pub export_clickhouse_password_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) to trust for an https URL (default: the
    /// Mozilla roots).
    #[arg(long, value_name = "FILE")]
    pub export_clickhouse_ca: Option<PathBuf>,
    /// This sensor's name in the exported rows (default: the host name);
    /// with `run`, also the COF `sensor_id` on the CIRCL surface (not set
    /// there by default).
    #[arg(long, value_name = "NAME")]
    pub sensor_id: Option<String>,
    /// Most the export spool may hold on disk (K, M, G suffixes); past it,
    /// batches are stored locally but not exported, and counted.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    pub export_spool_max: u64,
    /// At exit, wait at most this long for ClickHouse to acknowledge what
    /// was exported; what is left stays in the spool.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub export_drain_timeout: u64,
    /// Refuse to start unless ClickHouse answers and its tables match
    /// (default: warn, store locally, and export once it does).
    #[arg(long)]
    pub export_required: bool,
}

/// `K`, `M`, `G`, `T` (powers of 1024) or plain bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 512M, 2G)"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("{text:?}: unknown unit (K, M, G or T)")),
    };
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if bytes == 0 {
        return Err("the spool size must be more than 0".into());
    }
    Ok(bytes)
}

/// The host name, the default sensor id.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pdns-sensor".into())
}

/// Export set up on a store, before the store is shared: the exporter
/// starts once the caller has it in an `Arc`.
pub struct PreparedExport {
    client: Client,
    ready: Option<crate::clickhouse::schema::Dedup>,
    sensor: String,
    spool_max: u64,
    drain_timeout: Duration,
}

impl ExportArgs {
    fn client(&self, url: &str) -> Result<Client> {
        let target = Target::parse(url, self.export_clickhouse_password_file.as_deref())?;
        Ok(Client::new(
            target,
            &ClientOptions {
                ca_file: self.export_clickhouse_ca.clone(),
                ..Default::default()
            },
        )?)
    }

    /// Checks the target, before anything is opened: with
    /// `--export-required`, a target that is not ready stops the command
    /// here.
    pub fn prepare(&self) -> Result<Option<PreparedExport>> {
        let Some(url) = &self.export_clickhouse else {
            return Ok(None);
        };
        let sensor = self.sensor_id.clone().unwrap_or_else(host_name);
        if sensor.is_empty() || sensor.len() > 255 {
            bail!("--sensor-id must be 1 to 255 bytes");
        }
        let client = self.client(url)?;
        let ready = check_at_start(&client, self.export_required)?;
        Ok(Some(PreparedExport {
            client,
            ready,
            sensor,
            spool_max: self.export_spool_max,
            drain_timeout: Duration::from_secs(self.export_drain_timeout),
        }))
    }
}

/// Makes `store` spool every batch it writes, if exporting; otherwise says
/// so if the database holds batches waiting for export.
pub fn attach(export: Option<&PreparedExport>, store: &mut Store) -> Result<()> {
    let Some(export) = export else {
        let waiting = store.spool_stats();
        if waiting.entries > 0 {
            tracing::warn!(
                "{} holds {} batches ({} rows) waiting for export: run with \
                 --export-clickhouse, or `pdns-sensor export`",
                store.path().display(),
                waiting.entries,
                waiting.rows
            );
        }
        return Ok(());
    };
    store.enable_spool(SpoolConfig {
        encoder: Box::new(RowEncoder {
            sensor: export.sensor.clone(),
        }),
        max_bytes: export.spool_max,
    })?;
    Ok(())
}

/// The start-up check: an error if `required` and the target is not
/// ready, a warning otherwise (the exporter keeps checking).
fn check_at_start(
    client: &Client,
    required: bool,
) -> Result<Option<crate::clickhouse::schema::Dedup>> {
    let problem = match export::check(client) {
        Ok(Readiness::Ready(dedup)) => {
            export::log_dedup(client, dedup);
            return Ok(Some(dedup));
        }
        Ok(Readiness::Mismatch(m)) => format!("ClickHouse at {}: {m}", client.target().display()),
        Err(e) => e.to_string(),
    };
    if required {
        bail!("{problem} (--export-required)");
    }
    tracing::warn!("{problem}; storing locally and spooling until ClickHouse is ready");
    Ok(None)
}

/// A running exporter and how long to wait for it at the end.
pub struct RunningExport {
    exporter: Exporter,
    drain_timeout: Duration,
}

impl PreparedExport {
    pub fn start(self, store: &Arc<Store>) -> Result<RunningExport> {
        let exporter = Exporter::start(Arc::clone(store), self.client, self.ready)
            .context("starting the export thread")?;
        Ok(RunningExport {
            exporter,
            drain_timeout: self.drain_timeout,
        })
    }
}

impl RunningExport {
    /// Waits (up to the drain timeout) for ClickHouse to acknowledge what
    /// is spooled, and says what is left.
    pub fn finish(self) -> ExportSummary {
        let summary = self.exporter.drain(self.drain_timeout);
        log_summary(&summary);
        summary
    }
}

fn log_summary(summary: &ExportSummary) {
    if summary.remaining.entries == 0 {
        tracing::info!(
            "exported {} rows in {} batches; nothing waits",
            summary.sent_rows,
            summary.sent_batches
        );
    } else {
        tracing::warn!(
            "exported {} rows in {} batches; {} batches ({} rows) stay in the spool for the next \
             run or `pdns-sensor export`{}",
            summary.sent_rows,
            summary.sent_batches,
            summary.remaining.entries,
            summary.remaining.rows,
            summary
                .reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
}

/// `pdns-sensor export`.
#[derive(Debug, Args)]
pub struct ExportCommandArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Where to send the spool (as for `run --export-clickhouse`).
    #[arg(long, value_name = "URL")]
    pub export_clickhouse: String,
    /// File holding the ClickHouse password (first line).
    #[arg(long, value_name = "FILE")]
    pub export_clickhouse_password_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) to trust for an https URL.
    #[arg(long, value_name = "FILE")]
    pub export_clickhouse_ca: Option<PathBuf>,
    /// Give up after this long; what is left stays in the spool.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub export_drain_timeout: u64,
    /// Write what was sent and what is left as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

/// Sends a database's spool; fails if anything is left.
pub fn run_export(args: &ExportCommandArgs) -> Result<ExportSummary> {
    let store = Store::open(&args.db.db)?;
    let common = ExportArgs {
        export_clickhouse_password_file: args.export_clickhouse_password_file.clone(),
        export_clickhouse_ca: args.export_clickhouse_ca.clone(),
        ..Default::default()
    };
    let client = common.client(&args.export_clickhouse)?;
    let waiting = store.spool_stats();
    if waiting.entries == 0 {
        tracing::info!("{}: the export spool is empty", args.db.db.display());
    }
    let ready = check_at_start(&client, true)?;
    let store = Arc::new(store);
    let exporter =
        Exporter::start(Arc::clone(&store), client, ready).context("starting the export thread")?;
    let summary = exporter.drain(Duration::from_secs(args.export_drain_timeout));
    log_summary(&summary);
    if let Some(path) = &args.stats_json {
        super::write_json(path, &summary)?;
    }
    store.flush()?;
    if summary.remaining.entries > 0 {
        bail!(
            "{} batches ({} rows) are still in the spool{}",
            summary.remaining.entries,
            summary.remaining.rows,
            summary
                .reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1X").unwrap_err().contains("unit"));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
    }
}
