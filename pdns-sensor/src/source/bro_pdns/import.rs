//! Drives an import: the database's generations one after another, its
//! rows question by question through [`rebuild`](super::rebuild), the
//! records into the store in batches that carry their ledger entries
//! ([`ledger`](super::ledger)).
//!
//! Writes go straight to the store (no pre-aggregation is needed: a row
//! is already an aggregate); each batch is one atomic write with the
//! ledger entries of the rows it holds, so an interrupted import, run
//! again, adds exactly what the first run had not written.

use std::sync::Arc;
use std::time::Instant;

use jiff::tz::TimeZone;

use super::ledger::{self, Contribution, Delta, Ledger, SourceRecord};
use super::rebuild::{self, CheckedRow};
use super::schema::{self, Generation, SchemaError, Tables};
use super::{BroPdnsCounts, BroPdnsStats, RawRow};
use crate::source::progress::ReadProgress;
use crate::store::{Store, StoreError};
use crate::vocab::batch::Batch;
use crate::vocab::key;
use crate::vocab::value::{Origin, Value};

/// A bro-pdns database, whichever engine holds it.
pub trait Database {
    /// For messages.
    fn describe(&self) -> String;
    /// The default source id (see [`ledger`](super::ledger)).
    fn source_id(&self) -> String;
    /// Every table with its columns, lowercase.
    fn tables(&mut self) -> Result<Tables, ImportError>;
    /// The zone naive times of `generation` are read in, `asked` being
    /// `--timezone`.
    fn naive_zone(
        &mut self,
        generation: Generation,
        asked: Option<&str>,
    ) -> Result<String, ImportError>;
    /// Every row of the generation's table, ordered by (query, type).
    fn for_each_row(
        &mut self,
        generation: Generation,
        f: &mut dyn FnMut(RawRow) -> Result<(), ImportError>,
    ) -> Result<(), ImportError>;
    /// Go's `individual`: rows, and questions without an answer row.
    fn individual(&mut self) -> Result<(u64, u64), ImportError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Open(String),
    #[error("reading the database: {0}")]
    Read(String),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("{0}")]
    TimeZone(String),
    #[error("writing the store: {0}")]
    Store(#[from] StoreError),
}

/// How an import runs.
#[derive(Clone, Debug)]
pub struct ImportConfig {
    /// `--timezone`: the zone of naive times (see the module docs of
    /// [`super`] for which ones).
    pub timezone: Option<String>,
    /// `--source-id`, or the database's location.
    pub source_id: Option<String>,
    /// Records per write.
    pub batch_records: usize,
    /// Rows read, for the progress display.
    pub read: Arc<ReadProgress>,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            timezone: None,
            source_id: None,
            batch_records: 50_000,
            read: Arc::default(),
        }
    }
}

/// What an import did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ImportReport {
    pub database: String,
    pub source_id: String,
    pub generations: Vec<Generation>,
    /// The zone naive times were read in, per generation.
    pub timezones: Vec<String>,
    #[serde(rename = "bro_pdns")]
    pub stats: BroPdnsCounts,
    /// Distinct records written (a record two rows fed counts once per
    /// batch).
    pub records_written: u64,
    pub flushes: u64,
    pub elapsed_secs: f64,
}

/// The generations `db` holds, or the error that names what it lacks
/// (before anything is opened for writing).
pub fn check(db: &mut dyn Database) -> Result<Vec<Generation>, ImportError> {
    Ok(schema::detect(&db.tables()?)?)
}

/// Imports `db` into `store`; `progress` is told the counters' increase
/// at every write (for metrics).
pub fn import(
    db: &mut dyn Database,
    store: &Store,
    config: &ImportConfig,
    mut progress: impl FnMut(&BroPdnsStats),
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let generations = check(db)?;
    let source_id = config.source_id.clone().unwrap_or_else(|| db.source_id());
    if let Some(asked) = &config.timezone {
        // Checked even when no generation needs it: a typo is an error.
        super::times::zone(asked).map_err(ImportError::TimeZone)?;
    }
    let ledger = Ledger::new(&source_id);
    // The source entry goes with every batch of ledger entries, so a
    // source without one has none: its rows need no look-up.
    let known_source = store.meta_get(&ledger.source_key())?.is_some();
    let mut run = Run {
        store,
        ledger,
        known_source,
        source: SourceRecord {
            id: source_id.clone(),
            generations: generations.clone(),
            rows: 0,
            imported: crate::source::zeek::meta::now(),
        },
        batch: Batch::default(),
        batch_records: config.batch_records.max(1),
        zone: TimeZone::UTC,
        stats: BroPdnsStats::default(),
        published: BroPdnsStats::default(),
        records_written: 0,
        flushes: 0,
        read: Arc::clone(&config.read),
        progress: &mut progress,
    };
    let mut timezones = Vec::new();
    for &generation in &generations {
        let zone_name = db.naive_zone(generation, config.timezone.as_deref())?;
        let zone = super::times::zone(&zone_name)
            .map_err(|e| ImportError::TimeZone(format!("{e} (the database's; give --timezone)")))?;
        tracing::info!(
            "{}: bro-pdns {} generation (table `{}`), naive times read in {zone_name}",
            db.describe(),
            generation.as_str(),
            generation.table()
        );
        if let Some(asked) = config.timezone.as_deref().filter(|a| *a != zone_name) {
            tracing::warn!(
                "--timezone {asked} does not apply to the {} generation here: its times are {zone_name}",
                generation.as_str()
            );
        }
        timezones.push(zone_name);
        run.zone = zone;
        let mut question = Question::default();
        db.for_each_row(generation, &mut |raw| {
            if !question.same(&raw) {
                run.question(&mut question, generation)?;
                question.start(&raw);
            }
            question.rows.push(raw);
            Ok(())
        })?;
        run.question(&mut question, generation)?;
        if generation == Generation::Go {
            let (rows, unanswered) = db.individual()?;
            run.stats.individual_rows += rows;
            run.stats.unanswered_questions += unanswered;
        }
    }
    run.flush()?;
    Ok(ImportReport {
        database: db.describe(),
        source_id,
        generations,
        timezones,
        stats: BroPdnsCounts::from(&run.stats),
        records_written: run.records_written,
        flushes: run.flushes,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

/// The rows of one (query, type), as read.
#[derive(Default)]
struct Question {
    query: Option<Vec<u8>>,
    qtype: Option<Vec<u8>>,
    rows: Vec<RawRow>,
}

impl Question {
    fn same(&self, raw: &RawRow) -> bool {
        !self.rows.is_empty() && self.query == raw.query && self.qtype == raw.qtype
    }

    fn start(&mut self, raw: &RawRow) {
        self.rows.clear();
        self.query.clone_from(&raw.query);
        self.qtype.clone_from(&raw.qtype);
    }
}

struct Run<'a, 'p> {
    store: &'a Store,
    ledger: Ledger,
    /// An earlier import of this source wrote ledger entries.
    known_source: bool,
    /// The source's entry, written with every batch.
    source: SourceRecord,
    batch: Batch,
    batch_records: usize,
    /// The zone naive times of the generation being read are in.
    zone: TimeZone,
    stats: BroPdnsStats,
    published: BroPdnsStats,
    records_written: u64,
    flushes: u64,
    read: Arc<ReadProgress>,
    progress: &'p mut dyn FnMut(&BroPdnsStats),
}

impl Run<'_, '_> {
    /// Checks, rebuilds and adds the rows of one question.
    fn question(
        &mut self,
        question: &mut Question,
        generation: Generation,
    ) -> Result<(), ImportError> {
        if question.rows.is_empty() {
            return Ok(());
        }
        self.stats.rows += question.rows.len() as u64;
        self.read.add_items(question.rows.len() as u64);
        let mut checked: Vec<CheckedRow> = Vec::with_capacity(question.rows.len());
        let mut raws: Vec<&RawRow> = Vec::with_capacity(question.rows.len());
        let mut others: Vec<&[u8]> = Vec::new();
        for raw in &question.rows {
            match rebuild::check(raw, generation, &self.zone) {
                Ok(row) => {
                    checked.push(row);
                    raws.push(raw);
                }
                Err(skip) => {
                    skip.count(&mut self.stats);
                    // Its answer still tells what the replies held.
                    others.extend(raw.answer.as_deref().filter(|a| !rebuild::is_unset(a)));
                }
            }
        }
        let qtype = question.qtype.as_deref().and_then(rebuild::qtype_number);
        let rebuilt = rebuild::rebuild_question(qtype, &checked, &others);
        let mut record_key = Vec::new();
        for ((row, raw), result) in checked.iter().zip(raws).zip(rebuilt) {
            let record = match result {
                Ok(r) => r,
                Err(skip) => {
                    skip.count(&mut self.stats);
                    continue;
                }
            };
            let key = self.ledger.row_key(
                generation,
                raw.query.as_deref().unwrap_or_default(),
                raw.qtype.as_deref().unwrap_or_default(),
                raw.answer.as_deref().unwrap_or_default(),
            );
            let now = Contribution {
                count: row.count,
                first: row.first,
                last: row.last,
            };
            let before = if self.known_source {
                Ledger::get(self.store, &key)?
            } else {
                None
            };
            let (count, ledger_entry, grown, shrunk) = match ledger::delta(now, before) {
                Delta::Unchanged => {
                    self.stats.rows_unchanged += 1;
                    continue;
                }
                Delta::Add {
                    count,
                    ledger,
                    grown,
                    shrunk,
                } => (count, ledger, grown, shrunk),
            };
            self.stats.rows_imported += 1;
            self.stats.rows_grown += u64::from(grown);
            self.stats.rows_shrunk += u64::from(shrunk);
            self.stats.sightings += count;
            self.stats.ambiguous_local_times += u64::from(row.widened);
            let ttl = row.ttl.unwrap_or_else(|| {
                self.stats.ttl_missing += 1;
                0
            });
            let value = Value {
                count,
                first: row.first,
                last: row.last,
                ttl,
                origin: Origin::BRO_PDNS,
            };
            record_key.clear();
            key::record_key(&mut record_key, &record.owner, record.rtype, &record.rdata);
            self.batch
                .records
                .upsert(&record_key, |v| *v = v.combine(value), || value);
            self.batch.checkpoints.push((key, ledger_entry.encode()));
        }
        if self.batch.checkpoints.len() >= self.batch_records {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the batch and its ledger entries in one atomic write.
    fn flush(&mut self) -> Result<(), ImportError> {
        self.source.rows = self.stats.rows;
        self.batch.checkpoints.push((
            self.ledger.source_key(),
            serde_json::to_vec(&self.source).unwrap_or_default(),
        ));
        if !self.batch.is_empty() {
            self.store.write(&self.batch)?;
            self.records_written += self.batch.records.len() as u64;
            self.flushes += 1;
            self.batch.clear();
        }
        let delta = self.stats.since(&self.published);
        (self.progress)(&delta);
        self.published = self.stats.clone();
        Ok(())
    }
}
