//! Store: the durable passive DNS history, in RocksDB.
//!
//! Three column families (see [`keys`] for the layouts): `records` holds one
//! entry per (owner, type, rdata), `rdata` is the inverted index for
//! address and name queries, `negative` holds NXDOMAIN/NODATA/SERVFAIL/...
//! per (qname, qtype, rcode). All three use the associative merge of
//! [`value`], so writers only ever append merge operands in batches.
//!
//! A fourth, `names`, lists every owner name once in forward label order,
//! so right-hand wildcards (`www.example.*`) are prefix scans too.
//!
//! Decoder threads write through a [`Writer`], which commits their batches
//! on a thread of its own so decoding never waits for RocksDB (see
//! [`writer`]).
//!
//! A writer opens the database as the primary. Readers (`dump`, `serve`)
//! open it as a RocksDB *secondary* instance, which works whether or not a
//! writer has it open, and call [`Store::catch_up`] to see new data.
//!
//! The default column family holds `format_version`. A database without it,
//! or with a version this build does not know, is refused with a clear
//! error instead of being misread.

pub mod keys;
pub mod query;
pub mod value;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Instant;

use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, ColumnFamilyDescriptor, CompactOptions, DB,
    DBCompressionType, MergeOperands, Options, WriteBatch,
};

use crate::aggregate::Aggregates;
use crate::metrics::METRICS;

pub use query::{Filter, NegativeRecord, Selector, StoredRecord};
pub use value::Value;
pub use writer::Writer;

/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_KEY: &[u8] = b"format_version";
const META_PREFIX: &[u8] = b"meta/";

pub const CF_RECORDS: &str = "records";
pub const CF_RDATA: &str = "rdata";
pub const CF_NEGATIVE: &str = "negative";
pub const CF_NAMES: &str = "names";
const DATA_CFS: [&str; 4] = [CF_RECORDS, CF_RDATA, CF_NEGATIVE, CF_NAMES];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no pdns-sensor database at {0} (create one with `pdns-sensor ingest` or `run`)")]
    Missing(PathBuf),
    #[error("{0} is not a pdns-sensor database (no format version)")]
    NotOurs(PathBuf),
    #[error(
        "database at {path} has format version {found}; this build reads version {FORMAT_VERSION} (upgrade pdns-sensor)"
    )]
    UnknownVersion { path: PathBuf, found: String },
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("cannot create secondary instance directory: {0}")]
    Io(#[from] std::io::Error),
}

/// A bookkeeping entry: key (without the `meta/` prefix) and value.
pub type MetaEntry = (Vec<u8>, Vec<u8>);

/// An open database.
pub struct Store {
    db: DB,
    path: PathBuf,
    /// Holds the secondary instance's own directory while a reader is open.
    _secondary: Option<tempfile::TempDir>,
}

/// What one [`Store::write`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteStats {
    pub records: usize,
    pub index_entries: usize,
    pub negatives: usize,
    pub bytes: usize,
}

fn merge_fn(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    value::merge(existing, operands.iter())
}

fn cf_options() -> Options {
    let mut opts = Options::default();
    opts.set_merge_operator_associative("pdns_value_v1", merge_fn);
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
    opts.set_level_compaction_dynamic_level_bytes(true);
    let mut table = BlockBasedOptions::default();
    table.set_block_size(16 << 10);
    table.set_format_version(6);
    opts.set_block_based_table_factory(&table);
    opts
}

fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i32;
    opts.increase_parallelism(cores.max(2));
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
    opts
}

fn descriptors() -> Vec<ColumnFamilyDescriptor> {
    DATA_CFS
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, cf_options()))
        .collect()
}

impl Store {
    /// Opens (creating if needed) the database for writing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let exists = path.join("CURRENT").exists();
        if !exists {
            std::fs::create_dir_all(path)?;
        }
        let db = DB::open_cf_descriptors(&db_options(), path, descriptors())?;
        let store = Store {
            db,
            path: path.to_path_buf(),
            _secondary: None,
        };
        match store.db.get(FORMAT_KEY)? {
            Some(v) => check_version(path, &v)?,
            None if exists && store.has_data()? => {
                return Err(StoreError::NotOurs(path.to_path_buf()));
            }
            None => store.db.put(FORMAT_KEY, FORMAT_VERSION.to_string())?,
        }
        Ok(store)
    }

    /// Opens the database for reading, alongside any writer.
    pub fn open_reader(path: &Path) -> Result<Store, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let secondary = tempfile::Builder::new().prefix("pdns-reader-").tempdir()?;
        let mut opts = db_options();
        opts.create_if_missing(false);
        opts.create_missing_column_families(false);
        opts.set_max_open_files(-1);
        let db = DB::open_cf_descriptors_as_secondary(&opts, path, secondary.path(), descriptors())
            .map_err(|e| {
                if e.to_string().contains("Column famil") {
                    StoreError::NotOurs(path.to_path_buf())
                } else {
                    StoreError::Rocks(e)
                }
            })?;
        match db.get(FORMAT_KEY)? {
            Some(v) => check_version(path, &v)?,
            None => return Err(StoreError::NotOurs(path.to_path_buf())),
        }
        Ok(Store {
            db,
            path: path.to_path_buf(),
            _secondary: Some(secondary),
        })
    }

    /// Brings a reader up to date with the writer's latest commits.
    pub fn catch_up(&self) -> Result<(), StoreError> {
        if self._secondary.is_some() {
            self.db.try_catch_up_with_primary()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn has_data(&self) -> Result<bool, StoreError> {
        for name in DATA_CFS {
            let cf = self.cf(name);
            if self
                .db
                .iterator_cf(cf, rocksdb::IteratorMode::Start)
                .next()
                .transpose()?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family opened with the database")
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    /// Writes a batch of aggregates as merge operands, index included, in
    /// one atomic write.
    pub fn write(&self, aggregates: &Aggregates) -> Result<WriteStats, StoreError> {
        if aggregates.is_empty() {
            return Ok(WriteStats::default());
        }
        let (batch, stats) = self.batch(aggregates);
        self.commit(batch, &stats)?;
        Ok(stats)
    }

    fn commit(&self, batch: WriteBatch, stats: &WriteStats) -> Result<(), StoreError> {
        let started = Instant::now();
        self.db.write(batch)?;
        METRICS.store_batches.inc();
        METRICS.store_batch_bytes.inc_by(stats.bytes as u64);
        METRICS.aggregator_flushes.inc();
        METRICS
            .flush_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Builds the write batch for a set of aggregates.
    ///
    /// Every column family's keys go in sorted: RocksDB's memtable skip list
    /// then inserts each key next to the previous one instead of searching
    /// from the top, which is most of the cost of a batch of new keys.
    fn batch(&self, aggregates: &Aggregates) -> (WriteBatch, WriteStats) {
        let records = self.cf(CF_RECORDS);
        let rdata = self.cf(CF_RDATA);
        let negative = self.cf(CF_NEGATIVE);
        let names = self.cf(CF_NAMES);
        let mut sorted: Vec<(&[u8], &Value)> = aggregates.records.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut values = Vec::with_capacity(sorted.len() * 16);
        let mut value_at = Vec::with_capacity(sorted.len());
        for (_, v) in &sorted {
            let start = values.len();
            v.encode(&mut values);
            value_at.push(start..values.len());
        }
        // Records, their index entries and owner names, each about a key's
        // size plus a value: sized once instead of regrown (and copied)
        // a dozen times.
        let key_bytes: usize = sorted.iter().map(|(k, _)| k.len()).sum();
        let mut batch = WriteBatch::with_capacity_bytes(3 * key_bytes + 64 * sorted.len() + 64);
        let mut stats = WriteStats::default();
        let mut index = KeyList::with_capacity(key_bytes + 8 * sorted.len(), sorted.len());
        let mut forward = KeyList::with_capacity(key_bytes, sorted.len() / 2);
        let mut last_owner: &[u8] = &[];
        for (i, (key, _)) in sorted.iter().enumerate() {
            batch.merge_cf(records, key, &values[value_at[i].clone()]);
            stats.records += 1;
            if let Some(record) = keys::parse_record_key(key) {
                // Sorted keys group records by owner: one `names` entry each.
                if record.owner != last_owner {
                    last_owner = record.owner;
                    forward.push_with(i, |out| keys::forward_name(record.owner, out));
                }
                index.push_if(i, |out| keys::index_key(out, &record));
            }
        }
        for (key, _) in forward.sorted() {
            batch.put_cf(names, key, []);
        }
        for (key, i) in index.sorted() {
            batch.merge_cf(rdata, key, &values[value_at[i].clone()]);
            stats.index_entries += 1;
        }
        let mut negatives: Vec<(&[u8], &Value)> = aggregates.negatives.iter().collect();
        negatives.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut value_buf = Vec::with_capacity(32);
        for (key, value) in negatives {
            value_buf.clear();
            value.encode(&mut value_buf);
            batch.merge_cf(negative, key, &value_buf);
            stats.negatives += 1;
        }
        stats.bytes = batch.size_in_bytes();
        (batch, stats)
    }

    /// Flushes memtables and the WAL to disk (called before a clean close).
    pub fn flush(&self) -> Result<(), StoreError> {
        // Start every column family's flush, then wait for each: they run
        // side by side on the flush threads instead of one after another.
        let mut start = rocksdb::FlushOptions::default();
        start.set_wait(false);
        for name in DATA_CFS {
            self.db.flush_cf_opt(self.cf(name), &start)?;
        }
        for name in DATA_CFS {
            self.db.flush_cf(self.cf(name))?;
        }
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Compacts every column family fully (merges folded, space reclaimed).
    ///
    /// The bottommost level is rewritten too (`ForceOptimized`): by
    /// default RocksDB *moves* a lone flushed file down without rewriting
    /// it, so it would keep its LZ4 blocks instead of the bottommost level's
    /// Zstd — 40 % more bytes on disk for a store ingested in one go.
    ///
    /// The column families are compacted side by side, one thread each
    /// (a manual compaction runs on the calling thread).
    pub fn compact(&self) {
        std::thread::scope(|scope| {
            for name in DATA_CFS {
                scope.spawn(move || {
                    let mut opts = CompactOptions::default();
                    opts.set_bottommost_level_compaction(BottommostLevelCompaction::ForceOptimized);
                    opts.set_exclusive_manual_compaction(false);
                    self.db.compact_range_cf_opt(
                        self.cf(name),
                        None::<&[u8]>,
                        None::<&[u8]>,
                        &opts,
                    );
                });
            }
        });
    }

    /// Bytes of SST files of all column families.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for name in DATA_CFS {
            total += self
                .db
                .property_int_value_cf(self.cf(name), "rocksdb.total-sst-files-size")?
                .unwrap_or(0);
        }
        Ok(total)
    }

    /// Reads a bookkeeping entry (default column family, under a `meta/`
    /// prefix so it cannot collide with the format version). Used by
    /// importers to remember which files they have read.
    pub fn meta_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get([META_PREFIX, key].concat())?)
    }

    /// Writes a bookkeeping entry (see [`Store::meta_get`]).
    pub fn meta_put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        Ok(self.db.put([META_PREFIX, key].concat(), value)?)
    }

    /// Writes aggregates and a bookkeeping entry in one atomic batch, so an
    /// importer's position and the data it covers can never disagree after a
    /// crash.
    pub fn write_with_meta(
        &self,
        aggregates: &Aggregates,
        key: &[u8],
        value: &[u8],
    ) -> Result<WriteStats, StoreError> {
        let (mut batch, stats) = self.batch(aggregates);
        batch.put([META_PREFIX, key].concat(), value);
        self.commit(batch, &stats)?;
        Ok(stats)
    }

    /// Every bookkeeping entry whose key starts with `prefix`.
    pub fn meta_scan(&self, prefix: &[u8]) -> Result<Vec<MetaEntry>, StoreError> {
        let full = [META_PREFIX, prefix].concat();
        let mut out = Vec::new();
        for item in self.db.iterator(rocksdb::IteratorMode::From(
            &full,
            rocksdb::Direction::Forward,
        )) {
            let (k, v) = item?;
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
        const PROPS: [(&str, &str); 5] = [
            ("estimate_num_keys", "rocksdb.estimate-num-keys"),
            ("live_data_bytes", "rocksdb.estimate-live-data-size"),
            ("sst_bytes", "rocksdb.total-sst-files-size"),
            (
                "pending_compaction_bytes",
                "rocksdb.estimate-pending-compaction-bytes",
            ),
            ("memtable_bytes", "rocksdb.cur-size-all-mem-tables"),
        ];
        let mut out = Vec::new();
        for cf in DATA_CFS {
            for (label, prop) in PROPS {
                if let Ok(Some(v)) = self.db.property_int_value_cf(self.cf(cf), prop) {
                    out.push((cf, label, v));
                }
            }
        }
        out
    }

    /// RocksDB's estimate of the number of keys in a column family.
    pub fn estimate_keys(&self, cf: &str) -> Result<u64, StoreError> {
        Ok(self
            .db
            .property_int_value_cf(self.cf(cf), "rocksdb.estimate-num-keys")?
            .unwrap_or(0))
    }
}

/// Keys built into one buffer (one allocation, not one per key), each
/// tagged with the record it came from, to be written in sorted order.
struct KeyList {
    bytes: Vec<u8>,
    keys: Vec<(std::ops::Range<usize>, usize)>,
}

impl KeyList {
    fn with_capacity(bytes: usize, keys: usize) -> KeyList {
        KeyList {
            bytes: Vec::with_capacity(bytes),
            keys: Vec::with_capacity(keys),
        }
    }

    /// Appends the key `build` writes, tagged with `tag`.
    fn push_with(&mut self, tag: usize, build: impl FnOnce(&mut Vec<u8>)) {
        self.push_if(tag, |out| {
            build(out);
            true
        });
    }

    /// Appends the key `build` writes if it returns true.
    fn push_if(&mut self, tag: usize, build: impl FnOnce(&mut Vec<u8>) -> bool) {
        let start = self.bytes.len();
        if build(&mut self.bytes) {
            self.keys.push((start..self.bytes.len(), tag));
        } else {
            self.bytes.truncate(start);
        }
    }

    /// The keys in byte order, with their tags.
    fn sorted(&mut self) -> impl Iterator<Item = (&[u8], usize)> {
        let bytes = &self.bytes;
        self.keys
            .sort_unstable_by(|a, b| bytes[a.0.clone()].cmp(&bytes[b.0.clone()]));
        self.keys
            .iter()
            .map(move |(range, tag)| (&bytes[range.clone()], *tag))
    }
}

fn check_version(path: &Path, stored: &[u8]) -> Result<(), StoreError> {
    let text = String::from_utf8_lossy(stored).into_owned();
    match text.trim().parse::<u32>() {
        Ok(v) if v == FORMAT_VERSION => Ok(()),
        _ => Err(StoreError::UnknownVersion {
            path: path.to_path_buf(),
            found: text,
        }),
    }
}
