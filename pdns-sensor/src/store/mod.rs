//! Store: the durable passive DNS history, in RocksDB.
//!
//! Three column families (see [`crate::vocab::key`] for the layouts): `records` holds one
//! entry per (owner, type, rdata), `rdata` is the inverted index for
//! address and name queries, `negative` holds NXDOMAIN/NODATA/SERVFAIL/...
//! per (qname, qtype, rcode). All three use the associative merge of
//! [`crate::vocab::value`], so writers only ever append merge operands in
//! batches.
//!
//! A fourth, `names`, lists every owner name once in forward label order,
//! so right-hand wildcards (`www.example.*`) are prefix scans too. Its
//! entries keep only their owner's last sighting (merged by taking the
//! latest), which is all they need to expire with its records.
//!
//! A [`Batch`] is written atomically, together with the bookkeeping
//! entries it carries, so an importer's position and the data it covers
//! can never disagree after a crash. The pipeline decides when to write and
//! on which thread; this module only writes and reads.
//!
//! A writer opens the database as the primary. Readers (`dump`, `serve`)
//! open it as a RocksDB *secondary* instance, which works whether or not a
//! writer has it open, and call [`Store::catch_up`] to see new data.
//!
//! The default column family holds `format_version`. A database without it,
//! or with a version this build does not know, is refused with a clear
//! error instead of being misread; one of an older version this build reads
//! is upgraded in place by the first writer (see [`FORMAT_VERSION`]).
//!
//! A sixth, `nod`, records each registrable domain the first time it is
//! seen (see [`nod`]), decided and written with the batch that saw it.
//!
//! [`retention`] expires old data (compaction filters, the merge operator,
//! and the read path here all apply one cutoff); [`backup`] copies a
//! database while it is written.

pub mod backup;
pub mod flex;
pub mod memory;
pub mod nod;
mod query;
pub mod retention;
mod sort;
pub mod spool;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, Cache, ColumnFamily, ColumnFamilyDescriptor,
    CompactOptions, DB, DBCompressionType, Options, WriteBatch,
};

use crate::hint;
use crate::vocab::batch::Batch;
use crate::vocab::value::{self, Value};
use crate::vocab::{key, name};

use nod::{CF_NOD, NodConfig, NodState};
pub use query::{
    Filter, KeyRange, KeySpan, NegativeRecord, Selector, StoredRecord, address_selector,
    names_range,
};
use retention::{At, Clock, ExpiredCounts, Retention, RetentionState};
use spool::{CF_SPOOL, Spool};

/// The on-disk format this build writes.
///
/// Format 2 (values with their span, `names` entries with the last
/// sighting alone; see [`crate::vocab::value`]) reads everything format 1
/// wrote, so a writer opening a format-1 database marks it 2 and goes on:
/// old and new values merge. A build that knows only format 1 then refuses
/// the database instead of dropping the values it cannot read.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this build reads (and upgrades, as a writer).
const OLDEST_READABLE_FORMAT: u32 = 1;
const FORMAT_KEY: &[u8] = b"format_version";
const META_PREFIX: &[u8] = b"meta/";

pub const CF_RECORDS: &str = "records";
pub const CF_RDATA: &str = "rdata";
pub const CF_NEGATIVE: &str = "negative";
pub const CF_NAMES: &str = "names";
const DATA_CFS: [&str; 4] = [CF_RECORDS, CF_RDATA, CF_NEGATIVE, CF_NAMES];
/// Indexes in [`DATA_CFS`], for per-column-family counters.
const RECORDS: usize = 0;
const RDATA: usize = 1;
const NEGATIVE: usize = 2;
const NAMES: usize = 3;

/// What went wrong with a database: always with its path, what was being
/// done, and the underlying cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no pdns-sensor database at {0} (create one with `pdns-sensor ingest` or `run`)")]
    Missing(PathBuf),
    #[error(
        "{0} is not a pdns-sensor database (no format version; if a pdns-sensor was killed \
         while creating it, `run` or `ingest` opens and completes it)"
    )]
    NotOurs(PathBuf),
    #[error(
        "database at {path} has format version {found}; this build reads versions {OLDEST_READABLE_FORMAT} to {FORMAT_VERSION} (upgrade pdns-sensor)"
    )]
    UnknownVersion { path: PathBuf, found: String },
    #[error(
        "database {0} is in use by another process (one writer at a time; `dump` and `serve` read alongside it)"
    )]
    InUse(PathBuf),
    #[error("database {path}: {action}: {cause}")]
    Rocks {
        path: PathBuf,
        action: &'static str,
        cause: rocksdb::Error,
    },
    #[error("database {path}: {action}: {cause}")]
    Io {
        path: PathBuf,
        action: &'static str,
        cause: std::io::Error,
    },
    #[error(
        "database {path}: recorded retention setting {found:?} is not a number of days (set it again with --retention DAYS, or --retention off)"
    )]
    BadRetention { path: PathBuf, found: String },
    #[error("{0}")]
    Clock(String),
    #[error("database {path}: {what} is damaged")]
    Corrupt { path: PathBuf, what: &'static str },
    /// A scan passed its [`Filter::deadline`](query::Filter::deadline).
    #[error("query time limit reached")]
    TimedOut,
}

impl StoreError {
    fn rocks(path: &Path, action: &'static str) -> impl FnOnce(rocksdb::Error) -> StoreError {
        move |cause| StoreError::Rocks {
            path: path.to_path_buf(),
            action,
            cause,
        }
    }

    fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
        move |cause| StoreError::Io {
            path: path.to_path_buf(),
            action,
            cause,
        }
    }

    /// Whether this is an I/O error (a full disk, a failing device) rather
    /// than one of the data or of the call: the kind a later try may not
    /// meet.
    pub fn is_io(&self) -> bool {
        match self {
            StoreError::Rocks { cause, .. } => cause.kind() == rocksdb::ErrorKind::IOError,
            StoreError::Io { .. } => true,
            _ => false,
        }
    }
}

/// A bookkeeping entry: key (without the `meta/` prefix) and value.
pub type MetaEntry = (Vec<u8>, Vec<u8>);

/// Merge operands that did not decode, process-wide (the merge operator
/// runs on RocksDB's threads, with no store at hand).
static CORRUPT_VALUES: AtomicU64 = AtomicU64::new(0);

/// Stored values or merge operands skipped because they did not decode,
/// since the process started.
pub fn corrupt_values() -> u64 {
    CORRUPT_VALUES.load(Ordering::Relaxed)
}

fn count_corrupt() {
    CORRUPT_VALUES.fetch_add(1, Ordering::Relaxed);
}

/// How a database is opened.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// A writer's retention setting: `None` keeps the one recorded in the
    /// database (see [`retention`]). Readers always use the recorded one.
    pub retention: Option<Retention>,
    /// The time retention is judged by.
    pub clock: Clock,
    /// Newly observed domains (a writer's; readers ignore it).
    pub nod: NodConfig,
    /// Let one compaction split across every core (RocksDB's
    /// subcompactions; see [`Store::compact`]). For a bulk writer
    /// (`ingest`); a live capture leaves the cores to its decoders.
    pub split_compactions: bool,
}

/// A key no entry has: deleted in a column family to touch it (see
/// [`Store::seal`]).
const SEAL_KEY: &[u8] = b"";

/// An open database.
pub struct Store {
    /// Stopped first: its thread holds the database too.
    backup: Option<backup::BackupService>,
    db: Arc<DB>,
    path: PathBuf,
    /// Holds the secondary instance's own directory while a reader is open.
    _secondary: Option<tempfile::TempDir>,
    retention: Arc<RetentionState>,
    /// Batches waiting for export (see [`spool`]).
    spool: Spool,
    /// Newly observed domains (see [`nod`]).
    nod: NodState,
    /// The store format as of opening (see [`FORMAT_VERSION`]).
    format: u32,
}

/// What one [`Store::write`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteStats {
    pub records: usize,
    pub index_entries: usize,
    pub negatives: usize,
    /// Bookkeeping entries written with the batch.
    pub checkpoints: usize,
    /// Size of the RocksDB write batch.
    pub bytes: usize,
    /// Records (with their index and `names` entries) and negative answers
    /// last seen before the retention cutoff: not written.
    pub expired_records: usize,
    pub expired_negatives: usize,
    /// Registrable domains seen for the first time (of which during the
    /// warm-up), and known ones moved to an earlier first sighting.
    pub new_domains: usize,
    pub new_domains_warmup: usize,
    pub nod_moved: usize,
}

fn cf_options(state: &Arc<RetentionState>, cf: usize) -> Options {
    let mut opts = Options::default();
    if cf == NAMES {
        opts.set_merge_operator_associative(
            "pdns_last_seen_v1",
            retention::last_seen_merge_operator(Arc::clone(state)),
        );
    } else {
        opts.set_merge_operator_associative(
            "pdns_value_v1",
            retention::merge_operator(Arc::clone(state)),
        );
    }
    opts.set_compaction_filter_factory(retention::ExpiryFilterFactory {
        state: Arc::clone(state),
        cf,
    });
    // No periodic rewrites unless retention asks for them (set once the
    // recorded setting is known, see `Store::apply_retention`); RocksDB
    // would otherwise rewrite every file monthly because a compaction
    // filter is set.
    opts.set_periodic_compaction_seconds(0);
    opts.set_compression_type(DBCompressionType::Lz4);
    // Level 0 (memtable flushes) uncompressed: every L0 file is rewritten
    // by the next compaction anyway, which compresses; LZ4 in the flush was
    // a fifth of its CPU at high cardinality.
    opts.set_compression_per_level(&[
        DBCompressionType::None,
        DBCompressionType::Lz4,
        DBCompressionType::Lz4,
        DBCompressionType::Lz4,
        DBCompressionType::Lz4,
        DBCompressionType::Lz4,
        DBCompressionType::Lz4,
    ]);
    opts.set_bottommost_compression_type(DBCompressionType::Zstd);
    // Small memtables, several in flight: at high cardinality nearly every
    // write is a new key, and skiplist inserts dominate ingest; a 16 MiB
    // skiplist stays cache-friendly while full ones flush in the background.
    // Measured (2 M packets, one thread, flushed store): 22 % faster at 1 M
    // names, 5 % at 100 k, 2.5 % slower at 10 k than 64 MiB × 2.
    opts.set_write_buffer_size(16 << 20);
    opts.set_max_write_buffer_number(4);
    opts.set_target_file_size_base(TARGET_FILE_BYTES);
    opts.set_level_compaction_dynamic_level_bytes(true);
    opts.set_block_based_table_factory(&table_options(false));
    opts
}

/// Size at which compactions cut their output files: RocksDB's default,
/// set explicitly so that [`Store::compact`] can put it back.
const TARGET_FILE_BYTES: u64 = 64 << 20;

/// Output file size during [`Store::compact`]: small enough that a
/// column family of a few tens of MiB splits across the cores.
const FULL_COMPACTION_FILE_BYTES: u64 = 16 << 20;

/// Below this many bytes a column family keeps its settings during
/// [`Store::compact`]: a second pass over it costs less than changing
/// them.
const FULL_COMPACTION_MIN_BYTES: u64 = 4 << 20;

/// Bytes of the one block cache every column family of every store in the
/// process shares.
pub const BLOCK_CACHE_BYTES: usize = 64 << 20;

/// The block cache, shared. Without one, RocksDB gives each column family
/// a cache of its own (32 MiB each, seven of them here), and keeps index
/// and filter blocks outside any cache, growing with the data: a sensor
/// that ran for ten minutes at 50 k packets/s kept growing by 6 MiB a
/// minute (the bench's soak). Shared, and holding the index and filter
/// blocks too, it is one bound.
fn block_cache() -> &'static Cache {
    static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::new_lru_cache(BLOCK_CACHE_BYTES));
    &CACHE
}

/// Table options of every column family: 16 KiB blocks, the shared block
/// cache (index and filter blocks in it, those of level 0 pinned), and a
/// bloom filter where `bloom` asks for one (point lookups of mostly absent
/// keys).
pub(super) fn table_options(bloom: bool) -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_block_size(16 << 10);
    table.set_format_version(6);
    table.set_block_cache(block_cache());
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    if bloom {
        table.set_bloom_filter(10.0, false);
    }
    table
}

fn db_options(split_compactions: bool) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i32;
    opts.increase_parallelism(cores.max(2));
    if split_compactions {
        opts.set_max_subcompactions(cores.max(1) as u32);
    }
    // RocksDB runs a quarter of the background jobs as flushes: 8 jobs
    // give two flushes at a time (one, with the jobs a 2-core machine
    // would get), as the records and index tables fill together and the
    // last flush of an ingest writes all of them at once. The thread pools
    // (one compaction thread per core, two flush threads) bound what
    // actually runs.
    opts.set_max_background_jobs(8);
    if let Ok(mut env) = rocksdb::Env::new() {
        env.set_high_priority_background_threads(2);
        opts.set_env(&env);
    }
    opts.set_keep_log_file_num(4);
    // All memtables together stay under this, whatever the input: keeps the
    // sensor's memory bounded (peak RSS target 512 MiB) on huge ingests.
    opts.set_db_write_buffer_size(192 << 20);
    // A log file is deleted once every column family has flushed what it
    // holds; the bookkeeping column family takes a few bytes per batch and
    // would otherwise keep every log since its first entry (RocksDB's
    // default bound here is 1.5 GiB). Past this, RocksDB flushes it.
    opts.set_max_total_wal_size(256 << 20);
    opts.set_block_based_table_factory(&table_options(false));
    opts
}

/// The default column family's options (format version, bookkeeping):
/// the shared block cache like every other. Left out of the descriptors,
/// RocksDB opens it with options of its own — the database options are
/// not its options — and so with a 32 MiB block cache of its own, outside
/// the bound, whose usage `block-cache-usage` read in place of the shared
/// cache's.
fn default_cf_options() -> Options {
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table_options(false));
    opts
}

/// The column families to open: the default one, the data ones, and the
/// export spool and newly observed domains (a writer creates them; a
/// reader opens them if they exist).
fn descriptors(state: &Arc<RetentionState>, spool: bool, nod: bool) -> Vec<ColumnFamilyDescriptor> {
    let mut all: Vec<_> = DATA_CFS
        .iter()
        .enumerate()
        .map(|(i, name)| ColumnFamilyDescriptor::new(*name, cf_options(state, i)))
        .collect();
    all.push(ColumnFamilyDescriptor::new(
        rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
        default_cf_options(),
    ));
    if spool {
        all.push(ColumnFamilyDescriptor::new(CF_SPOOL, spool::cf_options()));
    }
    if nod {
        all.push(ColumnFamilyDescriptor::new(CF_NOD, nod::cf_options()));
    }
    all
}

impl Store {
    /// Opens (creating if needed) the database for writing, keeping its
    /// recorded retention setting, on the wall clock.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, &StoreOptions::default())
    }

    /// Opens (creating if needed) the database for writing.
    pub fn open_with(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let exists = path.join("CURRENT").exists();
        if !exists {
            std::fs::create_dir_all(path)
                .map_err(StoreError::io(path, "creating the directory"))?;
        }
        let retention = Arc::new(RetentionState::new(options.clock.clone()));
        let db = DB::open_cf_descriptors(
            &db_options(options.split_compactions),
            path,
            descriptors(&retention, true, true),
        )
        .map_err(|e| {
            if is_lock_error(&e) {
                StoreError::InUse(path.to_path_buf())
            } else {
                StoreError::rocks(path, "opening")(e)
            }
        })?;
        let mut store = Store {
            backup: None,
            db: Arc::new(db),
            path: path.to_path_buf(),
            _secondary: None,
            retention,
            spool: Spool::none(),
            nod: NodState::new(options.nod),
            format: FORMAT_VERSION,
        };
        let version = store
            .db
            .get(FORMAT_KEY)
            .map_err(store.error("reading the format version"))?;
        let current = match version {
            Some(v) => check_version(path, &v)? == FORMAT_VERSION,
            None if exists && store.has_data()? => {
                return Err(StoreError::NotOurs(path.to_path_buf()));
            }
            None => false,
        };
        // New, or an older format this build upgrades: marked before
        // anything of this format is written.
        if !current {
            store
                .db
                .put(FORMAT_KEY, FORMAT_VERSION.to_string())
                .map_err(store.error("writing the format version"))?;
        }
        store.apply_retention(options.retention)?;
        store.load_spool()?;
        store.load_nod()?;
        // Opening recovered the log into files (see `seal`): a reader
        // drops what it replayed of that log once the column families'
        // log numbers pass the log its seal comes from, so flush once
        // more, past the recovered log.
        store.seal()?;
        store.flush()?;
        store.backup = backup::BackupService::start(&store.path, Arc::clone(&store.db));
        Ok(store)
    }

    /// Writes a batch that touches every column family and holds nothing
    /// (deletes of [`SEAL_KEY`]), for readers' sake.
    ///
    /// A reader (RocksDB secondary) replays the writer's log into
    /// memtables of its own, and drops them only when it replays a newer
    /// batch *for the same column family* from a newer log. When the
    /// writer flushes — at the end of an `ingest`, or while recovering its
    /// log as it opens — and then writes nothing more to a column family,
    /// the reader keeps the replayed memtable beside the flushed file
    /// holding the same data: merge operands counted twice, an old
    /// bookkeeping value (the retention setting) shadowing the new one.
    /// So the writer touches every column family after it flushes (and
    /// flushes as it opens), and [`Store::batch`] touches the ones a batch
    /// does not write.
    fn seal(&self) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.delete(SEAL_KEY);
        for name in DATA_CFS {
            batch.delete_cf(self.cf(name), SEAL_KEY);
        }
        if let Some(cf) = self.nod_cf() {
            batch.delete_cf(cf, SEAL_KEY);
        }
        self.db.write(batch).map_err(self.error("writing a batch"))
    }

    /// A writer's retention: records what it was given (or keeps what is
    /// recorded), then sets up compaction to expire by it.
    fn apply_retention(&self, given: Option<Retention>) -> Result<(), StoreError> {
        let recorded = match (self.recorded_retention(), given) {
            (Ok(r), _) => r,
            // Given anew: the damaged value is replaced.
            (Err(e), Some(_)) => {
                tracing::warn!("{e}; replacing it");
                None
            }
            (Err(e), None) => return Err(e),
        };
        let effective = match (given, recorded) {
            (None, Some(r)) => {
                tracing::info!("retention {r} (recorded in the database)");
                r
            }
            (None, None) | (Some(Retention::Off), None) => Retention::Off,
            (Some(Retention::Off), Some(r)) => {
                self.db
                    .delete([META_PREFIX, retention::SETTING_KEY].concat())
                    .map_err(self.error("removing the retention setting"))?;
                tracing::warn!("retention {r} removed: data is kept from now on");
                Retention::Off
            }
            (Some(given), recorded) => {
                if recorded != Some(given) {
                    let days = given.days().unwrap_or(0).to_string();
                    self.db
                        .put([META_PREFIX, retention::SETTING_KEY].concat(), days)
                        .map_err(self.error("recording the retention setting"))?;
                    match recorded {
                        Some(r) => tracing::warn!(
                            "retention changed from {r} to {given} (recorded in the database)"
                        ),
                        None => tracing::info!("retention {given} (recorded in the database)"),
                    }
                }
                given
            }
        };
        self.retention.set(effective);
        let periodic = effective
            .days()
            .map_or(0, retention::periodic_compaction_secs);
        // Each change rewrites the OPTIONS file (a fifth of a small
        // ingest's instructions, four times over): the column families open
        // with 0, so only retention needs one.
        if periodic == 0 {
            self.retention.set_recorded(self.recorded_expired());
            return Ok(());
        }
        let periodic = periodic.to_string();
        for name in DATA_CFS {
            self.db
                .set_options_cf(
                    self.cf(name),
                    &[("periodic_compaction_seconds", periodic.as_str())],
                )
                .map_err(self.error("setting periodic compaction"))?;
        }
        self.retention.set_recorded(self.recorded_expired());
        Ok(())
    }

    /// The retention setting recorded in the database.
    fn recorded_retention(&self) -> Result<Option<Retention>, StoreError> {
        match self.meta_get(retention::SETTING_KEY)? {
            None => Ok(None),
            Some(raw) => match retention::parse_recorded(&raw) {
                Some(r) => Ok(Some(r)),
                None => Err(StoreError::BadRetention {
                    path: self.path.clone(),
                    found: String::from_utf8_lossy(&raw).into_owned(),
                }),
            },
        }
    }

    /// The expired counts recorded in the database (zero if none or
    /// unreadable: they are statistics, never a reason to refuse a
    /// database).
    fn recorded_expired(&self) -> ExpiredCounts {
        match self.meta_get(retention::EXPIRED_KEY) {
            Ok(Some(raw)) => serde_json::from_slice(&raw).unwrap_or_default(),
            _ => ExpiredCounts::default(),
        }
    }

    /// A reader takes the recorded setting and counts (at open and at
    /// every catch-up, so a writer's change reaches it).
    fn follow_recorded_retention(&self) -> Result<(), StoreError> {
        self.retention
            .set(self.recorded_retention()?.unwrap_or(Retention::Off));
        self.retention.set_recorded(self.recorded_expired());
        Ok(())
    }

    /// The retention in force.
    pub fn retention(&self) -> Retention {
        self.retention.setting()
    }

    /// Epoch seconds before which a last sighting is expired (0: nothing
    /// is).
    pub fn retention_cutoff(&self) -> u64 {
        self.retention.cutoff()
    }

    /// Entries expired in this database's life, per column family, as its
    /// writers recorded them (a writer's own count is live; a reader sees
    /// what the writer last wrote down).
    pub fn expired(&self) -> ExpiredCounts {
        self.retention.totals()
    }

    /// Entries expired by this store since it was opened.
    pub fn expired_here(&self) -> ExpiredCounts {
        self.retention.counted()
    }

    /// The increase of [`Store::expired`] since the last call (for the
    /// metrics).
    pub(crate) fn expired_unpublished(&self) -> ExpiredCounts {
        self.retention.unpublished()
    }

    /// Writes the expired counts down if they changed (a writer, at
    /// flushes and after compactions; batches carry them too).
    fn persist_expired(&self) -> Result<(), StoreError> {
        if self.is_reader() {
            return Ok(());
        }
        if let Some(value) = self.retention.to_persist() {
            self.db
                .put([META_PREFIX, retention::EXPIRED_KEY].concat(), value)
                .map_err(self.error("recording the expired counts"))?;
        }
        Ok(())
    }

    /// Opens the database for reading, alongside any writer, on the wall
    /// clock.
    pub fn open_reader(path: &Path) -> Result<Store, StoreError> {
        Store::open_reader_with(path, Clock::system())
    }

    /// Opens the database for reading, alongside any writer; retention is
    /// judged by `clock`.
    pub fn open_reader_with(path: &Path, clock: Clock) -> Result<Store, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let secondary = tempfile::Builder::new()
            .prefix("pdns-reader-")
            .tempdir()
            .map_err(StoreError::io(
                &std::env::temp_dir(),
                "creating the reader's secondary instance directory",
            ))?;
        let mut opts = db_options(false);
        opts.create_if_missing(false);
        opts.create_missing_column_families(false);
        opts.set_max_open_files(-1);
        let retention = Arc::new(RetentionState::new(clock));
        let optional = |cfs: &[String]| {
            (
                cfs.iter().any(|c| c == CF_SPOOL),
                cfs.iter().any(|c| c == CF_NOD),
            )
        };
        // A writer creating the database adds its column families one by
        // one. A reader that listed them before the last one was added, and
        // replayed the writer's log after, can never catch up ("MANIFEST
        // record referencing unknown column family"): if the list grew
        // while opening, open again with the new one.
        let mut attempts = 0;
        let db = loop {
            let listed = optional(&DB::list_cf(&opts, path).unwrap_or_default());
            let db = DB::open_cf_descriptors_as_secondary(
                &opts,
                path,
                secondary.path(),
                descriptors(&retention, listed.0, listed.1),
            )
            .map_err(|e| {
                if e.to_string().contains("Column famil") {
                    StoreError::NotOurs(path.to_path_buf())
                } else {
                    StoreError::rocks(path, "opening for reading")(e)
                }
            })?;
            attempts += 1;
            let now = optional(&DB::list_cf(&opts, path).unwrap_or_default());
            if now == listed || attempts == 5 {
                break db;
            }
            drop(db);
            std::fs::remove_dir_all(secondary.path())
                .and_then(|()| std::fs::create_dir(secondary.path()))
                .map_err(StoreError::io(
                    secondary.path(),
                    "emptying the reader's secondary instance directory",
                ))?;
        };
        let version = db
            .get(FORMAT_KEY)
            .map_err(StoreError::rocks(path, "reading the format version"))?;
        // The format version is written once every column family exists:
        // until then the database is still being created (or its creator
        // was killed; the next writer completes it), and a reader opened
        // now would not know the column families created after it.
        let format = match version {
            Some(v) => check_version(path, &v)?,
            None => return Err(StoreError::NotOurs(path.to_path_buf())),
        };
        let store = Store {
            backup: None,
            db: Arc::new(db),
            path: path.to_path_buf(),
            _secondary: Some(secondary),
            retention,
            spool: Spool::none(),
            nod: NodState::new(NodConfig::default()),
            format,
        };
        store.follow_recorded_retention()?;
        Ok(store)
    }

    /// The database's store format when it was opened: a writer's is
    /// always [`FORMAT_VERSION`] (it upgrades older ones); a reader's is
    /// what the database had.
    pub fn format_version(&self) -> u32 {
        self.format
    }

    /// Whether this is a reader (see [`Store::open_reader`]).
    pub fn is_reader(&self) -> bool {
        self._secondary.is_some()
    }

    /// Brings a reader up to date with the writer's latest commits
    /// (retention setting included).
    pub fn catch_up(&self) -> Result<(), StoreError> {
        if self._secondary.is_some() {
            self.db
                .try_catch_up_with_primary()
                .map_err(self.error("catching up with the writer"))?;
            self.follow_recorded_retention()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wraps a RocksDB error with this database's path and the action.
    pub(crate) fn error(&self, action: &'static str) -> impl FnOnce(rocksdb::Error) -> StoreError {
        StoreError::rocks(&self.path, action)
    }

    fn has_data(&self) -> Result<bool, StoreError> {
        for name in DATA_CFS {
            let cf = self.cf(name);
            if self
                .db
                .iterator_cf(cf, rocksdb::IteratorMode::Start)
                .next()
                .transpose()
                .map_err(self.error("reading"))?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family opened with the database")
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    /// The data column families and, if the database has it, `nod`.
    fn all_cfs(&self) -> impl Iterator<Item = &ColumnFamily> {
        DATA_CFS
            .iter()
            .map(|name| self.cf(name))
            .chain(self.nod_cf())
    }

    /// Writes a batch — aggregates as merge operands, their index entries,
    /// owner names and the batch's bookkeeping entries — in one atomic
    /// write.
    pub fn write(&self, batch: &Batch) -> Result<WriteStats, StoreError> {
        if batch.is_empty() {
            return Ok(WriteStats::default());
        }
        let cutoff = self.retention.cutoff();
        let (mut write, mut stats, candidates) = self.batch(batch, cutoff);
        let entry = self.spool_encode(batch, cutoff);
        let candidates = self.nod_unknown(candidates)?;
        if candidates.is_empty() {
            if let Some(cf) = self.nod_cf() {
                write.delete_cf(cf, SEAL_KEY);
            }
            self.write_spooled(write, entry)?;
        } else {
            let changes =
                self.nod_commit(candidates, write, |write| self.write_spooled(write, entry))?;
            stats.new_domains = changes.new;
            stats.new_domains_warmup = changes.new_warmup;
            stats.nod_moved = changes.moved;
        }
        Ok(stats)
    }

    /// Builds the write batch for a set of aggregates.
    ///
    /// Every column family's keys go in sorted: RocksDB's memtable skip list
    /// then inserts each key next to the previous one instead of searching
    /// from the top, which is most of the cost of a batch of new keys.
    ///
    /// Aggregates last seen before the retention cutoff are left out (and
    /// counted), with their index and `names` entries. Each `names` entry
    /// carries the last sighting of its owner's records, so it expires
    /// when the last of them does.
    ///
    /// Also returns the batch's newly-observed-domain candidates (see
    /// [`nod`]), gathered from the records written.
    fn batch<'a>(
        &self,
        aggregates: &'a Batch,
        cutoff: u64,
    ) -> (WriteBatch, WriteStats, Vec<nod::Candidate<'a>>) {
        let records = self.cf(CF_RECORDS);
        let rdata = self.cf(CF_RDATA);
        let negative = self.cf(CF_NEGATIVE);
        let names = self.cf(CF_NAMES);
        let sorted = in_byte_order(aggregates.records.iter().collect());
        let mut domains = nod::Collector::new(self.nod.config);
        // Every fresh record's encoded value, encoded once (in the walk
        // below) for its `records` entry and its index entry.
        let mut values = Vec::with_capacity(sorted.len() * 16);
        let negatives = in_byte_order(aggregates.negatives.iter().collect());
        // Records, their index entries and owner names, each about a key's
        // size plus a value, and the negative answers, a key and a value
        // each: sized once instead of regrown (and copied, into fresh pages)
        // a dozen times. Negatives were left out once: a batch of 100 000
        // (water torture) grew from nothing, 3.7 % of that ingest's time in
        // the copies.
        let key_bytes: usize = sorted.iter().map(|(k, _)| k.len()).sum();
        let negative_bytes: usize = negatives.iter().map(|(k, _)| k.len() + 32).sum();
        let mut batch = WriteBatch::with_capacity_bytes(
            3 * key_bytes + 64 * sorted.len() + negative_bytes + 64,
        );
        let mut stats = WriteStats::default();
        // Index entries tagged with where their value is in `values`;
        // `names` entries with their owner's last sighting.
        let mut index: KeyList<(usize, usize)> =
            KeyList::with_capacity(key_bytes + 8 * sorted.len(), sorted.len());
        let mut forward: KeyList<u64> = KeyList::with_capacity(key_bytes, sorted.len() / 2);
        let mut expired = [0u64; 4];
        // Sorted keys group records by owner: the current group, and
        // whether any of its records is fresh (has a `names` entry).
        let mut group: Option<(&[u8], bool)> = None;
        let mut scratch = Vec::new();
        for (key, value) in prefetching(&sorted, |(key, value)| {
            hint::prefetch(key.as_ptr());
            hint::prefetch(*value);
        }) {
            let record = key::parse_record_key(key);
            if let Some(r) = &record
                && group.is_none_or(|(owner, _)| owner != r.owner)
            {
                if let Some((_, false)) = group {
                    expired[NAMES] += 1;
                }
                group = Some((r.owner, false));
            }
            if value.is_expired(cutoff) {
                expired[RECORDS] += 1;
                if let Some(r) = &record {
                    scratch.clear();
                    expired[RDATA] += u64::from(key::index_key(&mut scratch, r));
                }
                continue;
            }
            let start = values.len();
            value.encode(&mut values);
            let end = values.len();
            batch.merge_cf(records, key, &values[start..end]);
            stats.records += 1;
            if let (Some(record), Some((_, fresh))) = (&record, &mut group) {
                if *fresh {
                    let last = forward.last_tag_mut().expect("a fresh group has an entry");
                    *last = (*last).max(value.last);
                } else {
                    *fresh = true;
                    forward.push_with(value.last, |out| name::forward(record.owner, out));
                }
                index.push_if((start, end), |out| key::index_key(out, record));
            }
            if let Some(record) = &record {
                domains.record(record, value.first);
            }
        }
        if let Some((_, false)) = group {
            expired[NAMES] += 1;
        }
        let mut value_buf = Vec::with_capacity(32);
        for (key, last) in forward.sorted(|_| ()) {
            value_buf.clear();
            value::encode_last_seen(last, &mut value_buf);
            batch.merge_cf(names, key, &value_buf);
        }
        for (key, (start, end)) in
            index.sorted(|(start, _)| hint::prefetch(values.as_ptr().wrapping_add(start)))
        {
            batch.merge_cf(rdata, key, &values[start..end]);
            stats.index_entries += 1;
        }
        for (key, value) in prefetching(&negatives, |(key, value)| {
            hint::prefetch(key.as_ptr());
            hint::prefetch(*value);
        }) {
            if value.is_expired(cutoff) {
                expired[NEGATIVE] += 1;
                continue;
            }
            value_buf.clear();
            value.encode(&mut value_buf);
            batch.merge_cf(negative, key, &value_buf);
            stats.negatives += 1;
        }
        for (key, value) in &aggregates.checkpoints {
            batch.put([META_PREFIX, key].concat(), value);
            stats.checkpoints += 1;
        }
        stats.expired_records = expired[RECORDS] as usize;
        stats.expired_negatives = expired[NEGATIVE] as usize;
        for (cf, n) in expired.into_iter().enumerate() {
            self.retention.count(cf, At::Write, n);
        }
        // The expired counts ride along whenever they changed (compaction
        // counts too), so the database keeps them without extra writes.
        if let Some(counts) = self.retention.to_persist() {
            batch.put([META_PREFIX, retention::EXPIRED_KEY].concat(), counts);
        }
        // Every data column family, for readers (see `seal`; the default
        // one, with bookkeeping, is flushed only by `flush`, which seals).
        for (cf, touched) in [
            (records, stats.records > 0),
            (rdata, stats.index_entries > 0),
            (names, !forward.is_empty()),
            (negative, stats.negatives > 0),
        ] {
            if !touched {
                batch.delete_cf(cf, SEAL_KEY);
            }
        }
        stats.bytes = batch.size_in_bytes();
        (batch, stats, domains.finish())
    }

    /// Flushes memtables and the WAL to disk (called before a clean close).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.persist_expired()?;
        // Start every column family's flush, then wait for each: they run
        // side by side on the flush threads instead of one after another.
        // The default one (bookkeeping) too: a memtable holding anything
        // keeps every log file since its oldest entry on disk.
        let mut start = rocksdb::FlushOptions::default();
        start.set_wait(false);
        for cf in self.all_cfs() {
            self.db
                .flush_cf_opt(cf, &start)
                .map_err(self.error("flushing memtables"))?;
        }
        self.db
            .flush_opt(&start)
            .map_err(self.error("flushing memtables"))?;
        for cf in self.all_cfs() {
            self.db
                .flush_cf(cf)
                .map_err(self.error("flushing memtables"))?;
        }
        self.db.flush().map_err(self.error("flushing memtables"))?;
        self.seal()?;
        self.db
            .flush_wal(true)
            .map_err(self.error("syncing the write-ahead log"))?;
        Ok(())
    }

    /// Flushes, then compacts every column family fully (merges folded,
    /// space reclaimed).
    ///
    /// The bottommost level is rewritten too (`ForceOptimized`): a manual
    /// compaction may *move* a file down without rewriting it (a column
    /// family without a compaction filter, or a level-0 file while nothing
    /// else is stored), which would keep its uncompressed or LZ4 blocks
    /// instead of the bottommost level's Zstd. What this compaction itself
    /// wrote there is not rewritten.
    ///
    /// Automatic compactions are held off from the flush to the end. The
    /// flush of a large ingest's last memtables used to start one (level 0
    /// reached its trigger), this compaction waited for it, and then
    /// rewrote the bottommost file it had just written, as that file was
    /// not its own: water torture, 1 M new keys, spent 0.49 s of a 1.3 s
    /// compaction on that second pass. An automatic compaction already
    /// running when this starts still finishes first, and its output is
    /// rewritten.
    ///
    /// The column families are compacted side by side, one thread each
    /// (a manual compaction runs on the calling thread). In a store opened
    /// with [`StoreOptions::split_compactions`] each may split further,
    /// into one thread per core, with output files cut at
    /// [`FULL_COMPACTION_FILE_BYTES`]: RocksDB splits a compaction only into
    /// parts of at least one output file's size, so at the usual 64 MiB the
    /// 41 MiB of water torture's one column family stayed on one thread
    /// (0.9–1.1 s) while the other core idled; split, 0.53–0.55 s, with the
    /// same bytes on disk.
    ///
    /// With retention, expired entries are deleted (and counted) on the
    /// way. A compaction filter never sees what a merge produces, so a key
    /// whose pieces had all expired before any compaction folded them
    /// comes out of the pass as one expired value: when that happened, a
    /// second pass deletes them.
    ///
    /// Column families under [`FULL_COMPACTION_MIN_BYTES`] keep their
    /// settings: each change of a setting rewrites (and syncs) RocksDB's
    /// options file, 2–3 ms a time, which made a small ingest's compaction
    /// twice as long (1 k names: 25 → 55 ms) to save nothing.
    pub fn compact(&self) -> Result<(), StoreError> {
        self.compact_above(FULL_COMPACTION_MIN_BYTES)
    }

    /// [`Store::compact`], with the full compaction's settings for the
    /// column families of more than `min_bytes`.
    fn compact_above(&self, min_bytes: u64) -> Result<(), StoreError> {
        let _settings = FullCompaction::start(self, min_bytes)?;
        self.flush()?;
        let merged_expired = || self.retention.expired_merges.load(Ordering::Relaxed);
        let before = merged_expired();
        self.compact_once();
        if self.retention.cutoff() > 0 && merged_expired() != before {
            tracing::debug!(
                "compaction left {} expired merge results: compacting again",
                merged_expired() - before
            );
            self.compact_once();
        }
        if let Err(e) = self.persist_expired() {
            tracing::warn!("{e}");
        }
        Ok(())
    }

    fn compact_once(&self) {
        std::thread::scope(|scope| {
            for cf in self.all_cfs() {
                scope.spawn(move || {
                    let mut opts = CompactOptions::default();
                    opts.set_bottommost_level_compaction(BottommostLevelCompaction::ForceOptimized);
                    opts.set_exclusive_manual_compaction(false);
                    self.db
                        .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &opts);
                });
            }
        });
    }

    /// Switches the settings of a full compaction (see [`Store::compact`])
    /// on or back off: automatic compactions, and the size a compaction
    /// cuts its output files at.
    fn set_full_compaction(&self, cfs: &[&ColumnFamily], on: bool) -> Result<(), StoreError> {
        let (auto_off, file_bytes) = if on {
            ("true", FULL_COMPACTION_FILE_BYTES)
        } else {
            ("false", TARGET_FILE_BYTES)
        };
        let file_bytes = file_bytes.to_string();
        for &cf in cfs {
            self.db
                .set_options_cf(
                    cf,
                    &[
                        ("disable_auto_compactions", auto_off),
                        ("target_file_size_base", &file_bytes),
                    ],
                )
                .map_err(self.error("changing compaction settings"))?;
        }
        Ok(())
    }

    /// Bytes of SST files of all column families.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for cf in self.all_cfs() {
            total += self.int_property(cf, "rocksdb.total-sst-files-size")?;
        }
        Ok(total)
    }

    /// A numeric RocksDB property of a column family (0 if it has none).
    fn int_property(&self, cf: &ColumnFamily, property: &str) -> Result<u64, StoreError> {
        Ok(self
            .db
            .property_int_value_cf(cf, property)
            .map_err(self.error("reading a property"))?
            .unwrap_or(0))
    }

    /// Reads a bookkeeping entry (default column family, under a `meta/`
    /// prefix so it cannot collide with the format version). Used by
    /// importers to remember which files they have read.
    pub fn meta_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get([META_PREFIX, key].concat())
            .map_err(self.error("reading bookkeeping"))
    }

    /// Every bookkeeping entry whose key starts with `prefix`.
    pub fn meta_scan(&self, prefix: &[u8]) -> Result<Vec<MetaEntry>, StoreError> {
        let full = [META_PREFIX, prefix].concat();
        let mut out = Vec::new();
        for item in self.db.iterator(rocksdb::IteratorMode::From(
            &full,
            rocksdb::Direction::Forward,
        )) {
            let (k, v) = item.map_err(self.error("reading bookkeeping"))?;
            if !k.starts_with(&full) {
                break;
            }
            out.push((k[META_PREFIX.len()..].to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// RocksDB properties worth exporting, per column family:
    /// `(cf, name, value)`.
    pub fn properties(&self) -> Vec<(&'static str, &'static str, u64)> {
        const PROPS: [(&str, &str); 6] = [
            ("estimate_num_keys", "rocksdb.estimate-num-keys"),
            ("live_data_bytes", "rocksdb.estimate-live-data-size"),
            ("sst_bytes", "rocksdb.total-sst-files-size"),
            (
                "pending_compaction_bytes",
                "rocksdb.estimate-pending-compaction-bytes",
            ),
            ("memtable_bytes", "rocksdb.cur-size-all-mem-tables"),
            // The open table files' readers outside the block cache (their
            // index and filter blocks are in it): one per file, so it
            // follows the number of files, which the LSM shape bounds.
            ("table_readers_bytes", "rocksdb.estimate-table-readers-mem"),
        ];
        let mut out = Vec::new();
        let nod = self.nod_cf().map(|_| CF_NOD);
        for cf in DATA_CFS.into_iter().chain(nod) {
            for (label, prop) in PROPS {
                if let Ok(Some(v)) = self.db.property_int_value_cf(self.cf(cf), prop) {
                    out.push((cf, label, v));
                }
            }
        }
        // The block cache is shared (every column family, every store of
        // the process), so it is read from the cache itself, under the
        // column family label `all`: a column family's
        // `rocksdb.block-cache-usage` is whatever cache its own table
        // options name.
        let cache = block_cache();
        out.push(("all", "block_cache_bytes", cache.get_usage() as u64));
        out.push((
            "all",
            "block_cache_pinned_bytes",
            cache.get_pinned_usage() as u64,
        ));
        out
    }

    /// RocksDB's estimate of the number of keys in a column family.
    pub fn estimate_keys(&self, cf: &str) -> Result<u64, StoreError> {
        Ok(self
            .db
            .property_int_value_cf(self.cf(cf), "rocksdb.estimate-num-keys")
            .map_err(self.error("reading a property"))?
            .unwrap_or(0))
    }
}

/// How many entries ahead the store writer's walks over a batch prefetch
/// (see [`crate::hint`]).
///
/// A batch is walked in key order, but its keys and values lie in the
/// order the aggregator first saw them: at high cardinality (half a million
/// records, tens of MiB) nearly every step reads memory no cache holds. A
/// profile of one-thread ingest at 1 M names put most of the writer's own
/// time on five such loads (a key's first byte, its value, an index entry).
/// Asking for the entry this many steps ahead lets those loads overlap; it
/// took that ingest from 2.15–2.23 s to 1.89–2.05 s.
const PREFETCH_AHEAD: usize = 8;

/// `items` in order, calling `prefetch` on the item [`PREFETCH_AHEAD`]
/// places further on before each is handed out.
fn prefetching<T>(items: &[T], prefetch: impl Fn(&T)) -> impl Iterator<Item = &T> {
    items.iter().enumerate().map(move |(n, item)| {
        if let Some(ahead) = items.get(n + PREFETCH_AHEAD) {
            prefetch(ahead);
        }
        item
    })
}

/// Keys built into one buffer (one allocation, not one per key), each
/// tagged with what its value is made from, to be written in sorted order.
struct KeyList<T> {
    bytes: Vec<u8>,
    keys: Vec<(std::ops::Range<usize>, T)>,
}

impl<T: Copy> KeyList<T> {
    fn with_capacity(bytes: usize, keys: usize) -> KeyList<T> {
        KeyList {
            bytes: Vec::with_capacity(bytes),
            keys: Vec::with_capacity(keys),
        }
    }

    /// Appends the key `build` writes, tagged with `tag`.
    fn push_with(&mut self, tag: T, build: impl FnOnce(&mut Vec<u8>)) {
        self.push_if(tag, |out| {
            build(out);
            true
        });
    }

    /// Appends the key `build` writes if it returns true.
    fn push_if(&mut self, tag: T, build: impl FnOnce(&mut Vec<u8>) -> bool) {
        let start = self.bytes.len();
        if build(&mut self.bytes) {
            self.keys.push((start..self.bytes.len(), tag));
        } else {
            self.bytes.truncate(start);
        }
    }

    /// The tag of the key appended last.
    fn last_tag_mut(&mut self) -> Option<&mut T> {
        self.keys.last_mut().map(|(_, tag)| tag)
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys in byte order, with their tags. Sorted, they are read in
    /// an order unrelated to the one they were built in, so the walk
    /// prefetches its next entries (see [`PREFETCH_AHEAD`]), and calls `ahead`
    /// with the tag of an entry a few steps ahead, for the caller to
    /// prefetch what that tag points at.
    fn sorted(&self, ahead: impl Fn(T)) -> impl Iterator<Item = (&[u8], T)> {
        let (bytes, keys) = (&self.bytes, &self.keys);
        let order = sort::byte_order(keys.len(), |i| &bytes[keys[i].0.clone()]);
        (0..order.len()).map(move |n| {
            if let Some(&i) = order.get(n + PREFETCH_AHEAD) {
                hint::prefetch(&keys[i as usize]);
            }
            // Half as far: its entry, asked for above, has arrived.
            if let Some(&i) = order.get(n + PREFETCH_AHEAD / 2) {
                let (range, tag) = &keys[i as usize];
                hint::prefetch(bytes.as_ptr().wrapping_add(range.start));
                ahead(*tag);
            }
            let (range, tag) = &keys[order[n] as usize];
            (&bytes[range.clone()], *tag)
        })
    }
}

/// The settings of a full compaction, on while [`Store::compact`] runs
/// and back off when dropped (also if the compaction fails). They live
/// only in the open database: a process killed meanwhile opens with the
/// usual ones.
struct FullCompaction<'a> {
    store: &'a Store,
    /// The column families whose settings changed.
    cfs: Vec<&'a ColumnFamily>,
}

impl<'a> FullCompaction<'a> {
    /// Changes the settings of the column families holding more than
    /// `min_bytes` (files and memtables).
    fn start(store: &'a Store, min_bytes: u64) -> Result<Self, StoreError> {
        let mut cfs = Vec::new();
        for cf in store.all_cfs() {
            let held = store.int_property(cf, "rocksdb.total-sst-files-size")?
                + store.int_property(cf, "rocksdb.size-all-mem-tables")?;
            if held > min_bytes {
                cfs.push(cf);
            }
        }
        // Dropped on an error too, putting back what had changed.
        let started = FullCompaction { store, cfs };
        store.set_full_compaction(&started.cfs, true)?;
        Ok(started)
    }
}

impl Drop for FullCompaction<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.store.set_full_compaction(&self.cfs, false) {
            tracing::warn!("{e}");
        }
    }
}

/// A table's entries in byte order of their keys.
fn in_byte_order<'a>(entries: Vec<(&'a [u8], &'a Value)>) -> Vec<(&'a [u8], &'a Value)> {
    let order = sort::byte_order(entries.len(), |i| entries[i].0);
    prefetching(&order, |&i| hint::prefetch(&entries[i as usize]))
        .map(|&i| entries[i as usize])
        .collect()
}

/// Whether RocksDB refused to open because another process holds the
/// database's lock file. RocksDB reports it only as text ("IO error: lock
/// hold by current process" / "While lock file: .../LOCK: Resource
/// temporarily unavailable").
fn is_lock_error(e: &rocksdb::Error) -> bool {
    let text = e.to_string();
    text.contains("/LOCK")
        && (text.contains("temporarily unavailable") || text.contains("lock hold"))
}

/// The stored format version, if this build reads it.
fn check_version(path: &Path, stored: &[u8]) -> Result<u32, StoreError> {
    let text = String::from_utf8_lossy(stored).into_owned();
    match text.trim().parse::<u32>() {
        Ok(v) if (OLDEST_READABLE_FORMAT..=FORMAT_VERSION).contains(&v) => Ok(v),
        _ => Err(StoreError::UnknownVersion {
            path: path.to_path_buf(),
            found: text,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::vocab::Rtype;
    use crate::vocab::name;
    use crate::vocab::observation::ObservationSink;
    use crate::vocab::value::Origin;

    /// A store at `dir` holding one A record for each of `h0.example.com.`
    /// … `h{names - 1}.example.com.`, flushed to a table file.
    fn flushed_store(dir: &Path, names: u32) -> Store {
        let store = Store::open(dir).unwrap();
        let mut agg = Aggregator::new(1 << 20, Origin::WIRE);
        for i in 0..names {
            let owner = name::encode_presentation(&format!("h{i}.example.com.")).unwrap();
            agg.record(&owner, Rtype::A, &i.to_be_bytes(), 60, 1_700_000_000);
        }
        store.write(&agg.take()).unwrap();
        store.flush().unwrap();
        store
    }

    /// A full compaction leaves every data column family's entries in the
    /// bottommost level, merged (one entry per key, no merge operand left)
    /// and compressed, in one pass: the flush of the last memtable (the
    /// fourth level-0 file, level 0's compaction trigger) starts no
    /// automatic compaction whose output it would then rewrite.
    #[test]
    fn a_full_compaction_folds_everything_into_the_bottom_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Three batches over the same 3 000 names and 1 000 more each time:
        // 3 000 keys are merge operands in every level-0 file. The first
        // two are flushed (beside the file opening the store wrote), the
        // last is left to the compaction's flush.
        for batch in 0..3u32 {
            let mut agg = Aggregator::new(1 << 20, Origin::WIRE);
            for i in (0..3_000).chain(3_000 + 1_000 * batch..4_000 + 1_000 * batch) {
                let owner = name::encode_presentation(&format!("h{i}.example.com.")).unwrap();
                agg.record(
                    &owner,
                    Rtype::A,
                    &i.to_be_bytes(),
                    60,
                    1_700_000_000 + u64::from(batch),
                );
            }
            store.write(&agg.take()).unwrap();
            if batch < 2 {
                store.flush().unwrap();
            }
        }
        let property = |cf: &str, p: &str| {
            store
                .db
                .property_value_cf(store.cf(cf), p)
                .unwrap()
                .unwrap_or_default()
        };
        let table_figure_at = |level: u32, cf: &str, figure: &str| -> u64 {
            let all = property(
                cf,
                &format!("rocksdb.aggregated-table-properties-at-level{level}"),
            );
            all.split("; ")
                .find_map(|p| {
                    p.strip_prefix(figure)?
                        .strip_prefix('=')?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or_else(|| panic!("{cf}: no {figure:?} in {all:?}"))
        };
        // Bytes per entry of the flushed (uncompressed) files.
        let compacted = [CF_RECORDS, CF_RDATA, CF_NAMES];
        let flushed_entry_bytes: Vec<f64> = compacted
            .iter()
            .map(|cf| {
                table_figure_at(0, cf, "data block size") as f64
                    / table_figure_at(0, cf, "# entries") as f64
            })
            .collect();

        // Its few MiB are under `compact`'s threshold for the settings.
        store.compact_above(0).unwrap();
        let keys = 6_000;
        for (cf, flushed_bytes) in compacted.into_iter().zip(flushed_entry_bytes) {
            for level in 0..6 {
                let files = property(cf, &format!("rocksdb.num-files-at-level{level}"));
                assert_eq!(files, "0", "{cf}: files left at level {level}");
            }
            assert_eq!(table_figure_at(6, cf, "# entries"), keys, "{cf}");
            assert_eq!(table_figure_at(6, cf, "# merge operands"), 0, "{cf}");
            // Compressed (Zstd) where the flushes were not.
            let entry_bytes = table_figure_at(6, cf, "data block size") as f64 / keys as f64;
            assert!(
                entry_bytes < 0.75 * flushed_bytes,
                "{cf}: {entry_bytes:.1} bytes an entry, {flushed_bytes:.1} flushed"
            );
        }
        // One compaction wrote below level 0 (the `Comp(cnt)` column of
        // RocksDB's compaction statistics, whose level 0 row counts the
        // flushes): where a flush had started an automatic one, this
        // compaction rewrote its output, and that made two.
        for cf in compacted {
            let stats = property(cf, "rocksdb.cfstats-no-file-histogram");
            let header = stats
                .lines()
                .find(|l| l.starts_with("Level"))
                .unwrap_or_else(|| panic!("{cf}: no table in {stats}"));
            let count = header
                .split_whitespace()
                .position(|c| c == "Comp(cnt)")
                .expect("a Comp(cnt) column");
            let compactions: u64 = stats
                .lines()
                .take_while(|l| !l.trim_start().starts_with("Sum"))
                .filter_map(|l| l.trim_start().strip_prefix('L'))
                .filter(|l| !l.starts_with('0') && !l.starts_with("evel"))
                // The size is a number and a unit: one cell more than its
                // header.
                .map(|l| {
                    l.split_whitespace()
                        .nth(count + 1)
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                })
                .sum();
            assert_eq!(
                compactions, 1,
                "{cf}: compactions below level 0 in\n{stats}"
            );
        }

        // Afterwards automatic compactions run again: four more flushed
        // files (level 0's trigger) are compacted without being asked.
        for batch in 3..7u32 {
            let mut agg = Aggregator::new(1 << 20, Origin::WIRE);
            let owner = name::encode_presentation(&format!("n{batch}.example.com.")).unwrap();
            agg.record(&owner, Rtype::A, &batch.to_be_bytes(), 60, 1_700_000_000);
            store.write(&agg.take()).unwrap();
            store.flush().unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let level0 = || property(CF_RECORDS, "rocksdb.num-files-at-level0");
        while level0() != "0" {
            assert!(
                std::time::Instant::now() < deadline,
                "{} files left at level 0: no automatic compaction",
                level0()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// A scan whose filter rejects every record still ends at its deadline
    /// (it used to read the whole range: the deadline was only looked at
    /// per record yielded), and reads to the end without one.
    #[test]
    fn a_filtered_scan_ends_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let store = flushed_store(dir.path(), 5_000);
        let nothing_matches = Filter {
            first_after: Some(2_000_000_000),
            ..Filter::default()
        };
        let read: Vec<_> = store.records(&Selector::All, &nothing_matches).collect();
        assert!(read.is_empty(), "no record is that new");
        let past = Filter {
            deadline: Some(std::time::Instant::now()),
            ..nothing_matches.clone()
        };
        let read: Vec<_> = store.records(&Selector::All, &past).collect();
        assert_eq!(read.len(), 1, "one timeout, then nothing");
        assert!(matches!(read[0], Err(StoreError::TimedOut)));
        let negatives: Vec<_> = store.negatives(&Selector::All, &past).collect();
        assert!(negatives.is_empty(), "no negative answers were stored");
        // A deadline far off changes nothing.
        let later = Filter {
            deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(600)),
            ..Filter::default()
        };
        assert_eq!(store.records(&Selector::All, &later).count(), 5_000);
    }

    /// A value that does not decode is counted and skipped, and the scan
    /// goes on to the rows after it; the rows around it come out whole.
    #[test]
    fn a_scan_skips_and_counts_a_value_that_does_not_decode() {
        let dir = tempfile::tempdir().unwrap();
        let store = flushed_store(dir.path(), 100);
        let keys: Vec<Vec<u8>> = store
            .db
            .iterator_cf(store.cf(CF_RECORDS), rocksdb::IteratorMode::Start)
            .map(|kv| kv.unwrap().0.into_vec())
            .filter(|k| k.as_slice() != SEAL_KEY)
            .collect();
        assert_eq!(keys.len(), 100);
        // Overwritten in place: a put replaces the merged value.
        store
            .db
            .put_cf(store.cf(CF_RECORDS), &keys[50], b"\xff\xff")
            .unwrap();
        let before = corrupt_values();
        let read: Vec<_> = store
            .records(&Selector::All, &Filter::default())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read.len(), 99, "every record but the corrupt one");
        assert!(corrupt_values() > before, "the corrupt value was counted");
        let last = name::encode_presentation("h99.example.com.").unwrap();
        assert!(read.iter().any(|r| r.owner == last), "read past it");
    }

    /// Every column family, the default one included, reads through the
    /// one shared cache, and the store reports that cache's usage. (The
    /// default column family used to get RocksDB's own 32 MiB cache, and
    /// `block_cache_bytes` read that one: about 4 KiB, whatever the load.)
    #[test]
    fn every_column_family_shares_the_reported_block_cache() {
        let dir = tempfile::tempdir().unwrap();
        let store = flushed_store(dir.path(), 2_000);
        let mut families = DB::list_cf(&Options::default(), dir.path()).unwrap();
        families.sort();
        assert!(
            families
                .iter()
                .any(|cf| cf == rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
        );
        for cf in &families {
            let capacity = store
                .db
                .property_int_value_cf(store.cf(cf), "rocksdb.block-cache-capacity")
                .unwrap();
            assert_eq!(
                capacity,
                Some(BLOCK_CACHE_BYTES as u64),
                "column family {cf}"
            );
        }
        // The flushed tables' level-0 index and filter blocks are pinned
        // in the cache while the store is open.
        let usage = store
            .properties()
            .into_iter()
            .find(|(cf, p, _)| *cf == "all" && *p == "block_cache_bytes")
            .map(|(_, _, v)| v)
            .unwrap();
        assert!(usage > 0, "block cache usage {usage}");
    }

    /// Lookups leave the blocks they read, the file's index block too, in
    /// the block cache: the same lookup again reads no block from the
    /// files. (Lookups once kept what they read out of the cache, and since
    /// index blocks live in it, every lookup read and decompressed the
    /// whole index block of each file it touched: a third of an exact-name
    /// lookup on 10 M records.) Perf counts are per thread, so tests
    /// running beside this one cannot move them.
    #[test]
    fn a_repeated_lookup_reads_no_block_from_the_files() {
        use rocksdb::perf::{PerfContext, PerfMetric, PerfStatsLevel, set_perf_stats};
        let dir = tempfile::tempdir().unwrap();
        let store = flushed_store(dir.path(), 20_000);
        // Out of level 0, whose index blocks are pinned in the cache anyway.
        store.compact().unwrap();
        let selector = Selector::Owner {
            name: name::encode_presentation("h4242.example.com.").unwrap(),
            wildcard: false,
        };
        let filter = Filter::default();
        let lookup = || {
            store
                .records(&selector, &filter)
                .map(Result::unwrap)
                .count()
        };
        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut perf = PerfContext::default();
        perf.reset();
        assert_eq!(lookup(), 1);
        let first = perf.metric(PerfMetric::BlockReadCount);
        perf.reset();
        assert_eq!(lookup(), 1);
        let again = perf.metric(PerfMetric::BlockReadCount);
        set_perf_stats(PerfStatsLevel::Disable);
        assert!(
            first > 0,
            "the first lookup read {first} blocks from the files"
        );
        assert_eq!(again, 0, "blocks the repeated lookup read from the files");
    }
}
