//! Aggregate: fold repeated observations in memory before they reach the
//! store.
//!
//! A popular name is answered thousands of times a second; writing a merge
//! operand for each would make RocksDB do the counting. Each decoder thread
//! instead keeps a bounded map from store key to [`Value`] and hands the
//! whole map, as a [`Batch`], to the store when it holds `max_entries` keys
//! (or [`MAX_KEY_BYTES`] of keys) or when the pipeline's flush timer fires,
//! so a name seen a million times between two flushes costs one merge. Keys
//! are built in a reusable buffer and only copied (into the batch's
//! [`KeyTable`] arena) when a key is new.
//!
//! The aggregator can also *record* which entries an input updated, as
//! [`Observed`] handles, and later [`replay`](Aggregator::replay) them:
//! the same updates again without building, hashing or comparing a key.
//! Handles are valid for one batch; [`Aggregator::generation`] changes
//! whenever the batch is taken, so whoever keeps handles knows when to drop
//! them (the pipeline's repeated-response shortcut,
//! `pipeline::repeats`).

use crate::vocab::batch::{Batch, KeyTable, SlotIndex};
use crate::vocab::key;
use crate::vocab::observation::ObservationSink;
use crate::vocab::value::{Origin, Value};
use crate::vocab::{OptRcode, Rtype};

/// Key bytes an aggregator holds at most before it asks to be flushed,
/// whatever its key bound: keys are usually 20–80 bytes, but a hostile
/// stream of distinct 60 KiB TXT answers would otherwise grow one batch to
/// gigabytes.
pub const MAX_KEY_BYTES: usize = 32 << 20;

/// One update an input made: which entry of which table, with what TTL
/// (the capture time is the replaying input's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    negative: bool,
    index: SlotIndex,
    ttl: u32,
}

impl Observed {
    /// Bytes of [`Observed::to_bytes`].
    pub const BYTES: usize = 9;

    /// A compact form, for keeping handles next to other bytes.
    #[inline]
    pub fn to_bytes(self) -> [u8; Self::BYTES] {
        let mut out = [0; Self::BYTES];
        out[0] = u8::from(self.negative);
        out[1..5].copy_from_slice(&self.index.to_le_bytes());
        out[5..9].copy_from_slice(&self.ttl.to_le_bytes());
        out
    }

    /// Reads back [`Observed::to_bytes`].
    #[inline]
    pub fn from_bytes(b: &[u8; Self::BYTES]) -> Observed {
        Observed {
            negative: b[0] != 0,
            index: SlotIndex::from_le_bytes([b[1], b[2], b[3], b[4]]),
            ttl: u32::from_le_bytes([b[5], b[6], b[7], b[8]]),
        }
    }
}

/// The pre-aggregated observations of one thread since its last flush.
pub struct Aggregator {
    batch: Batch,
    max_entries: usize,
    origin: Origin,
    scratch: Vec<u8>,
    /// Changes whenever the batch is taken (handles become invalid).
    generation: u64,
    /// Whether observations are recorded into `recorded`.
    recording: bool,
    recorded: Vec<Observed>,
}

impl Aggregator {
    /// An aggregator that asks to be flushed at `max_entries` keys, marking
    /// its observations with `origin`.
    pub fn new(max_entries: usize, origin: Origin) -> Self {
        Aggregator {
            batch: Batch::default(),
            max_entries: max_entries.max(1),
            origin,
            scratch: Vec::with_capacity(512),
            generation: 0,
            recording: false,
            recorded: Vec::new(),
        }
    }

    /// Which batch the current entries belong to: [`Observed`] handles
    /// recorded under another generation must not be replayed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Starts recording the updates observations make (forgetting any
    /// recorded before).
    #[inline]
    pub fn start_recording(&mut self) {
        self.recording = true;
        self.recorded.clear();
    }

    /// Stops recording; returns what was recorded since
    /// [`start_recording`](Aggregator::start_recording).
    #[inline]
    pub fn stop_recording(&mut self) -> &[Observed] {
        self.recording = false;
        &self.recorded
    }

    /// Makes again, at capture time `ts`, updates recorded in this
    /// generation: exactly what observing the same records and negative
    /// answers (with the same TTLs) would do, without their keys.
    #[inline]
    pub fn replay(&mut self, updates: impl IntoIterator<Item = Observed>, ts: u64) {
        for u in updates {
            let table = if u.negative {
                &mut self.batch.negatives
            } else {
                &mut self.batch.records
            };
            table.update_at(u.index, |v| v.observe(ts, u.ttl));
        }
    }

    /// Asks for the entry an update of this generation touches to be
    /// brought into the CPU's caches, ahead of its [`replay`](Aggregator::replay).
    #[inline]
    pub fn prefetch(&self, update: Observed) {
        let table = if update.negative {
            &self.batch.negatives
        } else {
            &self.batch.records
        };
        table.prefetch(update.index);
    }

    /// Keys held (records and negative answers).
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Keys held per table: (records, negative answers).
    pub fn table_lens(&self) -> (usize, usize) {
        (self.batch.records.len(), self.batch.negatives.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the map reached its bound and must be flushed now.
    pub fn is_full(&self) -> bool {
        self.len() >= self.max_entries || self.batch.key_bytes() >= MAX_KEY_BYTES
    }

    /// Takes everything out, leaving the aggregator empty (with new maps
    /// that allocate as they fill).
    pub fn take(&mut self) -> Batch {
        self.generation += 1;
        std::mem::take(&mut self.batch)
    }

    /// [`take`](Aggregator::take), continuing in `spare` (an emptied batch
    /// given back by the store writer) if given, so the maps need not
    /// regrow from nothing every batch.
    pub fn take_reusing(&mut self, spare: Option<Batch>) -> Batch {
        let taken = self.take();
        if let Some(spare) = spare {
            debug_assert!(spare.is_empty());
            self.batch = spare;
        }
        taken
    }

    #[inline]
    fn bump(table: &mut KeyTable, key: &[u8], ts: u64, ttl: u32, origin: Origin) -> SlotIndex {
        table.upsert(key, |v| v.observe(ts, ttl), || Value::seen(ts, ttl, origin))
    }
}

impl ObservationSink for Aggregator {
    #[inline]
    fn record(&mut self, owner: &[u8], rtype: Rtype, rdata: &[u8], ttl: u32, ts: u64) {
        self.scratch.clear();
        key::record_key(&mut self.scratch, owner, rtype, rdata);
        let index = Self::bump(&mut self.batch.records, &self.scratch, ts, ttl, self.origin);
        if self.recording {
            self.recorded.push(Observed {
                negative: false,
                index,
                ttl,
            });
        }
    }

    #[inline]
    fn negative(&mut self, qname: &[u8], qtype: Rtype, rcode: OptRcode, ts: u64) {
        self.scratch.clear();
        key::negative_key(&mut self.scratch, qname, qtype, rcode);
        let index = Self::bump(&mut self.batch.negatives, &self.scratch, ts, 0, self.origin);
        if self.recording {
            self.recorded.push(Observed {
                negative: true,
                index,
                ttl: 0,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::name;

    #[test]
    fn repeated_observations_fold_into_one_entry() {
        let mut agg = Aggregator::new(10, Origin::WIRE);
        let owner = name::encode_presentation("a.test").unwrap();
        agg.record(&owner, Rtype::A, &[192, 0, 2, 1], 300, 1000);
        agg.record(&owner, Rtype::A, &[192, 0, 2, 1], 250, 1010);
        agg.record(&owner, Rtype::A, &[192, 0, 2, 1], 299, 990);
        agg.record(&owner, Rtype::A, &[192, 0, 2, 2], 300, 1000);
        agg.negative(&owner, Rtype::AAAA, OptRcode::NOERROR, 1005);
        assert_eq!(agg.len(), 3);
        let out = agg.take();
        assert!(agg.is_empty());
        let mut key = Vec::new();
        key::record_key(&mut key, &owner, Rtype::A, &[192, 0, 2, 1]);
        assert_eq!(
            *out.records.get(&key).unwrap(),
            Value {
                count: 3,
                first: 990,
                last: 1010,
                ttl: 250,
                origin: Origin::WIRE
            }
        );
        assert_eq!(out.negatives.len(), 1);
    }

    #[test]
    fn full_at_key_bytes_whatever_the_key_bound() {
        let mut agg = Aggregator::new(1_000_000, Origin::WIRE);
        let owner = name::encode_presentation("txt.test").unwrap();
        let mut rdata = vec![b'x'; 60_000];
        let mut n = 0u32;
        while !agg.is_full() {
            rdata[..4].copy_from_slice(&n.to_be_bytes());
            agg.record(&owner, Rtype::TXT, &rdata, 60, 1);
            n += 1;
        }
        // Full at the byte bound: about 560 keys, not a million.
        assert_eq!(n as usize, MAX_KEY_BYTES.div_ceil(60_000 + owner.len() + 2));
        assert_eq!(agg.len(), n as usize);
    }

    #[test]
    fn full_at_bound() {
        let mut agg = Aggregator::new(2, Origin::WIRE);
        let owner = name::encode_presentation("a.test").unwrap();
        agg.record(&owner, Rtype::A, &[1, 1, 1, 1], 1, 1);
        assert!(!agg.is_full());
        agg.record(&owner, Rtype::A, &[1, 1, 1, 2], 1, 1);
        assert!(agg.is_full());
    }
}
