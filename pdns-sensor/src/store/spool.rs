//! The export spool: batches waiting to be sent elsewhere (ClickHouse),
//! kept in the database they were written to.
//!
//! An exporter that buffered in memory would lose what it held on a crash,
//! and one that wrote its own files could disagree with the database about
//! what was stored: a batch written locally but not exported, or exported
//! twice after a restart. Here a batch's export entry is part of the same
//! RocksDB write batch as its data, so both exist or neither does, and an
//! entry is deleted only once its destination acknowledged it.
//!
//! Entries live in the `spool` column family under an 8-byte big-endian
//! sequence number, so they are read back in the order they were written.
//! The next number is recorded with every entry (`meta/spool/next`) and
//! never reused, even after the spool ran empty: a destination that
//! de-duplicates by (sensor, sequence) must never see an old number for
//! new data.
//!
//! What an entry holds is the encoder's business ([`SpoolEncoder`]); the
//! store only keeps the bytes, counts them, and enforces the size bound:
//! a batch that would take the spool past `max_bytes` is stored locally
//! without an entry, and counted as skipped (also recorded in the
//! database), never dropped silently.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{IteratorMode, Options, WriteBatch};

use super::{META_PREFIX, Store, StoreError};
use crate::vocab::batch::Batch;

pub const CF_SPOOL: &str = "spool";
const NEXT_KEY: &[u8] = b"spool/next";
const SKIPPED_KEY: &[u8] = b"spool/skipped";

/// Turns a batch into a spool entry's payload.
pub trait SpoolEncoder: Send + Sync {
    /// Appends the payload for the part of `batch` the store writes (what
    /// is not expired at `cutoff`) to `out`; returns the rows it holds (0:
    /// nothing to export, no entry is made).
    fn encode(&self, batch: &Batch, cutoff: u64, out: &mut Vec<u8>) -> u64;
}

/// How a writer spools.
pub struct SpoolConfig {
    pub encoder: Box<dyn SpoolEncoder>,
    /// The most bytes of entries held; past it, batches are not spooled.
    pub max_bytes: u64,
}

/// What the spool holds and has been refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpoolStats {
    pub entries: u64,
    pub bytes: u64,
    /// Rows in the entries held.
    pub rows: u64,
    /// Batches (and their rows) stored locally without an export entry
    /// because the spool was full, in the database's life.
    pub skipped_batches: u64,
    pub skipped_rows: u64,
}

/// A spooled entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolEntry {
    pub seq: u64,
    /// Rows the payload holds.
    pub rows: u64,
    /// When the entry was written (epoch seconds, wall clock).
    pub created: u64,
    /// What the encoder wrote (and the exporter may have updated).
    pub payload: Vec<u8>,
}

/// Bytes before the payload: rows and creation time, big-endian.
const HEADER: usize = 16;

impl SpoolEntry {
    fn decode(seq: u64, raw: &[u8]) -> Option<SpoolEntry> {
        let rows = u64::from_be_bytes(raw.get(..8)?.try_into().ok()?);
        let created = u64::from_be_bytes(raw.get(8..16)?.try_into().ok()?);
        Some(SpoolEntry {
            seq,
            rows,
            created,
            payload: raw[HEADER..].to_vec(),
        })
    }

    /// Bytes the entry takes in the spool.
    pub fn size(&self) -> u64 {
        (HEADER + self.payload.len()) as u64
    }
}

fn encode_entry(rows: u64, created: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&rows.to_be_bytes());
    out.extend_from_slice(&created.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The spool state of an open writer.
pub(super) struct Spool {
    config: Option<SpoolConfig>,
    /// Held across sequence allocation and the write, so entries appear in
    /// sequence order.
    order: Mutex<()>,
    next: AtomicU64,
    entries: AtomicU64,
    bytes: AtomicU64,
    rows: AtomicU64,
    skipped_batches: AtomicU64,
    skipped_rows: AtomicU64,
    /// Whether the last batch found the spool full (to log once per
    /// episode, not per batch).
    full: std::sync::atomic::AtomicBool,
}

/// The row count of a stored entry.
fn entry_rows(raw: &[u8]) -> u64 {
    raw.get(..8)
        .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

/// Spool entries are large (a batch's rows), written once, read once and
/// deleted: kept in blob files, the LSM tree holds only their small
/// references, and compaction never rewrites the rows themselves (blob
/// garbage collection drops a file once its entries are gone).
pub(super) fn cf_options() -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::None);
    opts.set_enable_blob_files(true);
    opts.set_min_blob_size(1024);
    opts.set_blob_compression_type(rocksdb::DBCompressionType::None);
    opts.set_enable_blob_gc(true);
    opts.set_blob_gc_age_cutoff(1.0);
    opts.set_block_based_table_factory(&super::table_options(false));
    opts
}

impl Spool {
    pub(super) fn none() -> Spool {
        Spool {
            config: None,
            order: Mutex::new(()),
            next: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            skipped_batches: AtomicU64::new(0),
            skipped_rows: AtomicU64::new(0),
            full: Default::default(),
        }
    }
}

/// A batch's entry, encoded before the sequence number is known.
pub(super) struct Pending {
    bytes: Vec<u8>,
    rows: u64,
}

impl Store {
    /// Starts spooling every batch written from now on.
    pub fn enable_spool(&mut self, config: SpoolConfig) -> Result<(), StoreError> {
        self.spool.config = Some(config);
        Ok(())
    }

    /// Reads what the spool holds (at open; the counts are kept up to date
    /// from then on).
    pub(super) fn load_spool(&mut self) -> Result<(), StoreError> {
        let next = match self.meta_get(NEXT_KEY)? {
            Some(raw) if raw.len() == 8 => u64::from_be_bytes(raw.try_into().expect("8 bytes")),
            _ => 0,
        };
        let (mut entries, mut bytes, mut rows, mut last) = (0, 0, 0, None);
        for item in self.db.iterator_cf(self.cf(CF_SPOOL), IteratorMode::Start) {
            let (key, value) = item.map_err(self.error("reading the export spool"))?;
            entries += 1;
            bytes += value.len() as u64;
            rows += entry_rows(&value);
            last = seq_of(&key);
        }
        let next = next.max(last.map_or(0, |l| l + 1));
        let (skipped_batches, skipped_rows) = match self.meta_get(SKIPPED_KEY)? {
            Some(raw) if raw.len() == 16 => (
                u64::from_be_bytes(raw[..8].try_into().expect("8 bytes")),
                u64::from_be_bytes(raw[8..].try_into().expect("8 bytes")),
            ),
            _ => (0, 0),
        };
        let s = &self.spool;
        s.next.store(next, Ordering::Relaxed);
        s.entries.store(entries, Ordering::Relaxed);
        s.bytes.store(bytes, Ordering::Relaxed);
        s.rows.store(rows, Ordering::Relaxed);
        s.skipped_batches.store(skipped_batches, Ordering::Relaxed);
        s.skipped_rows.store(skipped_rows, Ordering::Relaxed);
        Ok(())
    }

    /// Whether batches are spooled.
    pub fn spooling(&self) -> bool {
        self.spool.config.is_some()
    }

    /// Encodes a batch's entry (outside the ordering lock: encoding is the
    /// expensive part).
    pub(super) fn spool_encode(&self, batch: &Batch, cutoff: u64) -> Option<Pending> {
        let config = self.spool.config.as_ref()?;
        let mut bytes = vec![0; HEADER];
        let rows = config.encoder.encode(batch, cutoff, &mut bytes);
        bytes[..8].copy_from_slice(&rows.to_be_bytes());
        bytes[8..HEADER].copy_from_slice(&now().to_be_bytes());
        (rows > 0).then_some(Pending { bytes, rows })
    }

    /// Writes `write` with the batch's spool entry, if any, in one atomic
    /// write; entries appear in sequence order.
    pub(super) fn write_spooled(
        &self,
        mut write: WriteBatch,
        pending: Option<Pending>,
    ) -> Result<(), StoreError> {
        let Some(pending) = pending else {
            return self.db.write(write).map_err(self.error("writing a batch"));
        };
        let s = &self.spool;
        let max = self.spool.config.as_ref().map_or(0, |c| c.max_bytes);
        let _order = s.order.lock().unwrap_or_else(|e| e.into_inner());
        let size = pending.bytes.len() as u64;
        if s.bytes.load(Ordering::Relaxed) + size > max {
            let batches = s.skipped_batches.load(Ordering::Relaxed) + 1;
            let rows = s.skipped_rows.load(Ordering::Relaxed) + pending.rows;
            write.put(
                [META_PREFIX, SKIPPED_KEY].concat(),
                [batches.to_be_bytes(), rows.to_be_bytes()].concat(),
            );
            self.db
                .write(write)
                .map_err(self.error("writing a batch"))?;
            s.skipped_batches.store(batches, Ordering::Relaxed);
            s.skipped_rows.store(rows, Ordering::Relaxed);
            if !s.full.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    "export spool full ({} of at most {max} bytes): batches are stored \
                     locally but not exported until it drains (counted in \
                     pdns_export_skipped_rows_total)",
                    s.bytes.load(Ordering::Relaxed)
                );
            }
            return Ok(());
        }
        if s.full.swap(false, Ordering::Relaxed) {
            tracing::warn!("export spool has room again: exporting new batches");
        }
        let seq = s.next.load(Ordering::Relaxed);
        write.put_cf(self.cf(CF_SPOOL), seq.to_be_bytes(), &pending.bytes);
        write.put([META_PREFIX, NEXT_KEY].concat(), (seq + 1).to_be_bytes());
        self.db
            .write(write)
            .map_err(self.error("writing a batch"))?;
        s.next.store(seq + 1, Ordering::Relaxed);
        s.entries.fetch_add(1, Ordering::Relaxed);
        s.bytes.fetch_add(size, Ordering::Relaxed);
        s.rows.fetch_add(pending.rows, Ordering::Relaxed);
        Ok(())
    }

    /// The first entry after `after` (or the first of all), in sequence
    /// order.
    pub fn spool_next(&self, after: Option<u64>) -> Result<Option<SpoolEntry>, StoreError> {
        let start = after.map_or(0, |a| a.saturating_add(1)).to_be_bytes();
        let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
        let mut iter = self.db.iterator_cf(self.cf(CF_SPOOL), mode);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item.map_err(self.error("reading the export spool"))?;
                let seq = seq_of(&key).ok_or_else(|| self.corrupt_spool())?;
                SpoolEntry::decode(seq, &value)
                    .map(Some)
                    .ok_or_else(|| self.corrupt_spool())
            }
        }
    }

    /// Replaces an entry's payload and row count (an exporter recording
    /// progress within it); returns the entry as now stored.
    pub fn spool_update(
        &self,
        entry: &SpoolEntry,
        payload: Vec<u8>,
        rows: u64,
    ) -> Result<SpoolEntry, StoreError> {
        let s = &self.spool;
        let _order = s.order.lock().unwrap_or_else(|e| e.into_inner());
        let raw = encode_entry(rows, entry.created, &payload);
        self.db
            .put_cf(self.cf(CF_SPOOL), entry.seq.to_be_bytes(), &raw)
            .map_err(self.error("updating the export spool"))?;
        let updated = SpoolEntry {
            seq: entry.seq,
            rows,
            created: entry.created,
            payload,
        };
        s.bytes.fetch_add(updated.size(), Ordering::Relaxed);
        s.bytes.fetch_sub(entry.size(), Ordering::Relaxed);
        s.rows.fetch_add(rows, Ordering::Relaxed);
        s.rows.fetch_sub(entry.rows, Ordering::Relaxed);
        Ok(updated)
    }

    /// Deletes an entry its destination acknowledged.
    pub fn spool_remove(&self, entry: &SpoolEntry) -> Result<(), StoreError> {
        let s = &self.spool;
        let _order = s.order.lock().unwrap_or_else(|e| e.into_inner());
        self.db
            .delete_cf(self.cf(CF_SPOOL), entry.seq.to_be_bytes())
            .map_err(self.error("deleting from the export spool"))?;
        s.entries.fetch_sub(1, Ordering::Relaxed);
        s.bytes.fetch_sub(entry.size(), Ordering::Relaxed);
        s.rows.fetch_sub(entry.rows, Ordering::Relaxed);
        Ok(())
    }

    fn corrupt_spool(&self) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what: "an export spool entry",
        }
    }

    /// What the spool holds and has refused.
    pub fn spool_stats(&self) -> SpoolStats {
        let s = &self.spool;
        SpoolStats {
            entries: s.entries.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            rows: s.rows.load(Ordering::Relaxed),
            skipped_batches: s.skipped_batches.load(Ordering::Relaxed),
            skipped_rows: s.skipped_rows.load(Ordering::Relaxed),
        }
    }
}

fn seq_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}
