//! Export: flushed batches to ClickHouse, so many sensors make one
//! history.
//!
//! Export is one more consumer of the batches the pipeline flushes, after
//! the store and never in front of it: capture and the local store go on
//! at full speed whatever ClickHouse does. The store writes each batch's
//! export entry in the same atomic write as its data (see
//! [`crate::store::spool`]); the [`Exporter`] thread here sends entries in
//! order and deletes each once ClickHouse acknowledged it. So:
//!
//! - a crash (SIGKILL, power) of the sensor loses nothing: what was stored
//!   is spooled, and the next writer on the database resumes the spool
//!   (`run`, `ingest`, `import-zeek`, or `export` alone);
//! - an outage of ClickHouse grows the spool on disk, up to
//!   `--export-spool-max`; past it, batches are stored locally but not
//!   exported, counted and logged — never dropped silently;
//! - a retry sends the same bytes with the same de-duplication identity
//!   (`SENSOR-SEQ-TABLE`), so ClickHouse counts a batch once: by token on
//!   servers that know `insert_deduplication_token`, by block hash on
//!   replicated tables (every version); on an unreplicated 18.16 table
//!   neither exists, which the exporter says at start-up.
//!
//! [`rows`] holds the wire format; [`crate::clickhouse`] the client and
//! the schema.

pub mod rows;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clickhouse::client::{ClickHouseError, Client};
use crate::clickhouse::schema::{self, Dedup};
use crate::metrics;
use crate::report::ExportSummary;
use crate::store::spool::SpoolEntry;
use crate::store::{Store, StoreError};
use rows::Payload;

/// Waits between attempts after a failure: doubling from the first to the
/// last.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often an idle exporter looks for new entries.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// What the exporter found when it checked the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Tables as expected; how retries are de-duplicated.
    Ready(Dedup),
    /// The server answers, but the tables are missing or different.
    Mismatch(schema::SchemaMismatch),
}

/// Checks that the target takes inserts: reachable, credentials accepted,
/// the input tables there with the expected columns.
pub fn check(client: &Client) -> Result<Readiness, ClickHouseError> {
    match schema::check_tables(
        client,
        &[
            (schema::RECORDS_IN, schema::RECORDS_IN_COLUMNS),
            (schema::NEGATIVES_IN, schema::NEGATIVES_IN_COLUMNS),
        ],
    )? {
        Err(mismatch) => Ok(Readiness::Mismatch(mismatch)),
        Ok(()) => Ok(Readiness::Ready(schema::dedup(client)?)),
    }
}

/// Logs what a retry can do on this target.
pub fn log_dedup(client: &Client, dedup: Dedup) {
    match dedup {
        Dedup::Token => tracing::info!(
            "exporting to {}: retries carry de-duplication tokens",
            client.target().display()
        ),
        Dedup::Blocks => tracing::info!(
            "exporting to {}: replicated tables de-duplicate retried batches",
            client.target().display()
        ),
        Dedup::None => tracing::warn!(
            "exporting to {}: this server neither knows de-duplication tokens nor has \
             replicated tables, so a batch retried after an ambiguous failure (ClickHouse \
             stopped between storing it and answering) is counted twice; use \
             `clickhouse-schema --replicated` (ZooKeeper) or ClickHouse 22.2 or later",
            client.target().display()
        ),
    }
}

/// What the exporter did (live counters; also published as metrics).
#[derive(Debug, Default)]
pub struct ExportCounters {
    pub entries: AtomicU64,
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
    pub failures: AtomicU64,
    /// Whether the last attempt succeeded (or nothing needed sending).
    pub up: AtomicBool,
}

enum Command {
    /// Send what is spooled, then stop (or stop at the deadline).
    Drain(Instant),
    /// Stop now.
    Stop,
}

/// The export thread of a store.
pub struct Exporter {
    commands: Sender<Command>,
    thread: Option<JoinHandle<Option<String>>>,
    counters: Arc<ExportCounters>,
    store: Arc<Store>,
}

impl Exporter {
    /// Starts sending `store`'s spool to `client`. `ready` is what the
    /// caller's start-up check found (`None`: it could not check; the
    /// thread checks before it sends).
    pub fn start(
        store: Arc<Store>,
        client: Client,
        ready: Option<Dedup>,
    ) -> Result<Exporter, std::io::Error> {
        let (commands, incoming) = channel();
        let counters = Arc::new(ExportCounters::default());
        let mut sender = Shipper {
            store: Arc::clone(&store),
            client,
            dedup: ready,
            counters: Arc::clone(&counters),
            commands: incoming,
            drain: None,
            last_error: None,
        };
        let thread = std::thread::Builder::new()
            .name("export".into())
            .spawn(move || sender.run())?;
        Ok(Exporter {
            commands,
            thread: Some(thread),
            counters,
            store,
        })
    }

    pub fn counters(&self) -> &ExportCounters {
        &self.counters
    }

    /// Sends what is spooled — everything written before this call and
    /// whatever is written while it runs — for at most `timeout`, then
    /// stops and says what is left.
    pub fn drain(mut self, timeout: Duration) -> ExportSummary {
        let _ = self.commands.send(Command::Drain(Instant::now() + timeout));
        self.finish()
    }

    /// Stops at once (what is spooled stays spooled).
    pub fn stop(mut self) -> ExportSummary {
        let _ = self.commands.send(Command::Stop);
        self.finish()
    }

    fn finish(&mut self) -> ExportSummary {
        let reason = self
            .thread
            .take()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Some("export thread panicked".into()))
            })
            .unwrap_or(None);
        let remaining = self.store.spool_stats();
        let c = &self.counters;
        ExportSummary {
            sent_batches: c.entries.load(Ordering::Relaxed),
            sent_rows: c.rows.load(Ordering::Relaxed),
            sent_bytes: c.bytes.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            reason: (remaining.entries > 0).then_some(reason).flatten(),
            remaining,
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.commands.send(Command::Stop);
            self.finish();
        }
    }
}

/// The thread's state.
struct Shipper {
    store: Arc<Store>,
    client: Client,
    /// Known once the target has been checked.
    dedup: Option<Dedup>,
    counters: Arc<ExportCounters>,
    commands: Receiver<Command>,
    drain: Option<Instant>,
    last_error: Option<String>,
}

/// Why the thread stops waiting.
enum Wake {
    Timeout,
    Stop,
}

impl Shipper {
    /// The thread's body; returns the last error if it stopped with
    /// entries left.
    fn run(&mut self) -> Option<String> {
        let mut after: Option<u64> = None;
        let mut backoff = BACKOFF_FIRST;
        loop {
            match self.commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => break,
                Ok(Command::Drain(deadline)) => self.drain = Some(deadline),
                Err(TryRecvError::Empty) => {}
            }
            if self.drain.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            self.publish_backlog();
            if self.dedup.is_none() {
                match check(&self.client) {
                    Ok(Readiness::Ready(dedup)) => {
                        log_dedup(&self.client, dedup);
                        self.dedup = Some(dedup);
                        self.recovered();
                        backoff = BACKOFF_FIRST;
                    }
                    Ok(Readiness::Mismatch(m)) => {
                        let e = format!("ClickHouse at {}: {m}", self.client.target().display());
                        self.failed("schema", e);
                        if let Wake::Stop = self.wait(&mut backoff) {
                            break;
                        }
                        continue;
                    }
                    Err(e) => {
                        self.failed(e.kind(), e.to_string());
                        if let Wake::Stop = self.wait(&mut backoff) {
                            break;
                        }
                        continue;
                    }
                }
            }
            let entry = match self.store.spool_next(after) {
                Ok(Some(entry)) => entry,
                Ok(None) => {
                    self.counters.up.store(true, Ordering::Relaxed);
                    metrics::publish_export_up(true);
                    if self.drain.is_some() {
                        return None;
                    }
                    let mut idle = IDLE_POLL;
                    if let Wake::Stop = self.wait_for(&mut idle, false) {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    self.failed("spool", e.to_string());
                    if let Wake::Stop = self.wait(&mut backoff) {
                        break;
                    }
                    continue;
                }
            };
            metrics::publish_export_oldest(entry.created);
            match self.send(&entry) {
                Ok(()) => {
                    after = Some(entry.seq);
                    backoff = BACKOFF_FIRST;
                    self.recovered();
                }
                Err(Failure::Store(e)) => {
                    self.failed("spool", e.to_string());
                    if let Wake::Stop = self.wait(&mut backoff) {
                        break;
                    }
                }
                Err(Failure::ClickHouse(e)) => {
                    if !e.is_transient() {
                        // Credentials or tables changed under us: check
                        // again before the next attempt.
                        self.dedup = None;
                    }
                    self.failed(e.kind(), e.to_string());
                    if let Wake::Stop = self.wait(&mut backoff) {
                        break;
                    }
                }
            }
        }
        self.publish_backlog();
        self.last_error.clone()
    }

    /// Sends an entry's parts in order, recording each acknowledged one.
    fn send(&mut self, entry: &SpoolEntry) -> Result<(), Failure> {
        let Some(mut payload) = Payload::decode(&entry.payload) else {
            // Cannot be sent, ever; kept, it would block every later
            // entry. Only damage on disk makes one.
            tracing::error!(
                "export spool entry {} is damaged and cannot be sent: {} rows dropped from export \
                 (they are in the local store)",
                entry.seq,
                entry.rows
            );
            metrics::publish_export_damaged(entry.rows);
            return self.store.spool_remove(entry).map_err(Failure::Store);
        };
        let mut entry = entry.clone();
        while let Some(part) = payload.parts.first() {
            let token = format!("{}-{}-{}", payload.sensor, entry.seq, part.table.name());
            let mut settings = vec![("insert_distributed_sync", "1")];
            if self.dedup == Some(Dedup::Token) {
                settings.push(("insert_deduplication_token", token.as_str()));
                settings.push(("deduplicate_blocks_in_dependent_materialized_views", "1"));
            }
            let started = Instant::now();
            self.client
                .insert_rowbinary(part.table.name(), &part.body, &settings)
                .map_err(Failure::ClickHouse)?;
            metrics::publish_export_insert(
                part.table.name(),
                part.rows,
                part.body.len() as u64,
                started.elapsed(),
            );
            let c = &self.counters;
            c.rows.fetch_add(part.rows, Ordering::Relaxed);
            c.bytes.fetch_add(part.body.len() as u64, Ordering::Relaxed);
            payload = payload.without_first_part();
            if payload.parts.is_empty() {
                self.store.spool_remove(&entry).map_err(Failure::Store)?;
            } else {
                let mut raw = Vec::with_capacity(entry.payload.len());
                payload.encode(&mut raw);
                entry = self
                    .store
                    .spool_update(&entry, raw, payload.rows())
                    .map_err(Failure::Store)?;
            }
        }
        self.counters.entries.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn failed(&mut self, kind: &'static str, message: String) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        self.counters.up.store(false, Ordering::Relaxed);
        metrics::publish_export_failure(kind);
        metrics::publish_export_up(false);
        if self.last_error.as_deref() != Some(message.as_str()) {
            tracing::error!("export: {message} (retrying; batches wait in the spool)");
        }
        self.last_error = Some(message);
    }

    fn recovered(&mut self) {
        if let Some(e) = self.last_error.take() {
            tracing::info!("export: ClickHouse takes inserts again (after: {e})");
        }
        self.counters.up.store(true, Ordering::Relaxed);
        metrics::publish_export_up(true);
    }

    fn publish_backlog(&self) {
        metrics::publish_export_backlog(&self.store.spool_stats());
    }

    /// Waits out a back-off (doubling it for next time), or less if told
    /// to stop or if a drain's deadline comes first.
    fn wait(&mut self, backoff: &mut Duration) -> Wake {
        self.wait_for(backoff, true)
    }

    fn wait_for(&mut self, pause: &mut Duration, double: bool) -> Wake {
        let until = Instant::now() + *pause;
        if double {
            *pause = (*pause * 2).min(BACKOFF_MAX);
        }
        loop {
            let now = Instant::now();
            if let Some(deadline) = self.drain
                && now >= deadline
            {
                return Wake::Stop;
            }
            let end = self.drain.map_or(until, |d| d.min(until));
            if now >= end {
                return Wake::Timeout;
            }
            match self.commands.recv_timeout(end - now) {
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return Wake::Stop,
                Ok(Command::Drain(deadline)) => {
                    self.drain = Some(deadline);
                    // Idle: look at the spool at once.
                    if !double {
                        return Wake::Timeout;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

enum Failure {
    Store(StoreError),
    ClickHouse(ClickHouseError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::clickhouse::client::{ClientOptions, Target};
    use crate::store::spool::{SpoolConfig, SpoolEncoder};
    use crate::vocab::batch::Batch;
    use crate::vocab::observation::ObservationSink;
    use crate::vocab::value::Origin;
    use crate::vocab::{Rtype, name};

    /// Spools bytes no exporter can read.
    struct Garbage;

    impl SpoolEncoder for Garbage {
        fn encode(&self, _: &Batch, _: u64, out: &mut Vec<u8>) -> u64 {
            out.extend_from_slice(b"\x07not a payload");
            3
        }
    }

    #[test]
    fn a_damaged_entry_is_dropped_from_export_and_does_not_block_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        store
            .enable_spool(SpoolConfig {
                encoder: Box::new(Garbage),
                max_bytes: 1 << 20,
            })
            .unwrap();
        let mut agg = Aggregator::new(100, Origin::WIRE);
        let owner = name::encode_presentation("damaged.example").unwrap();
        agg.record(&owner, Rtype::A, &[192, 0, 2, 1], 60, 1_700_000_000);
        store.write(&agg.take()).unwrap();
        assert_eq!(store.spool_stats().entries, 1);
        let store = Arc::new(store);
        // Never contacted: the entry cannot be sent at all.
        let client = Client::new(
            Target::parse("http://127.0.0.1:9/pdns", None).unwrap(),
            &ClientOptions::default(),
        )
        .unwrap();
        let exporter = Exporter::start(Arc::clone(&store), client, Some(Dedup::None)).unwrap();
        let summary = exporter.drain(Duration::from_secs(10));
        assert_eq!(summary.remaining.entries, 0, "{summary:?}");
        assert_eq!(summary.sent_rows, 0);
        assert_eq!(summary.failures, 0);
        // The data itself stays in the store.
        let filter = crate::store::Filter::default();
        assert_eq!(
            store.records(&crate::store::Selector::All, &filter).count(),
            1
        );
    }
}
