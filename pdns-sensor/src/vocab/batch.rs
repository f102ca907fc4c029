//! Batch: what the aggregator hands over and the store writes — aggregated
//! observations keyed by store key, and the bookkeeping entries that must
//! be committed with them.
//!
//! A [`Batch`] is the unit of durability: the store writes one atomically,
//! so an importer's read position (a [`Checkpoint`]) can never disagree
//! with the data it covers after a crash.
//!
//! Its tables are [`KeyTable`]s, maps from store key to [`Value`] whose keys
//! are kept in one arena.
//!
//! A `HashMap<Box<[u8]>, Value>` made every new key a heap allocation on
//! the decoder thread, freed again on the store writer thread once the
//! batch was written: at a million names, allocation was a twentieth of
//! the CPU. Here keys are appended to one byte vector and the hash table
//! holds their offsets, so a batch costs two allocations, and
//! [`KeyTable::clear`] keeps both for the next batch. The arena's size is
//! also what lets the aggregator bound its memory in bytes, not only in
//! keys (a key can be 64 KiB of TXT rdata).
//!
//! Values live in a vector of their own, in insertion order, so an entry
//! has a stable index ([`SlotIndex`]) until the table is cleared: the
//! pipeline's repeated-response shortcut remembers which entries a
//! response updated and updates them again by index, without building or
//! hashing a key.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::value::Value;

/// An arena kept across batches up to this size; a larger one (a batch of
/// huge keys) is given back when the table is cleared.
const KEEP_ARENA_BYTES: usize = 16 << 20;

/// Where a key's bytes are in the arena, and its value's index.
struct Slot {
    start: usize,
    len: u32,
    index: u32,
}

/// The index of an entry of a [`KeyTable`]: valid until the table is
/// cleared (or taken).
pub type SlotIndex = u32;

/// Keys (bytes) to values, insert and update only.
#[derive(Default)]
pub struct KeyTable {
    keys: Vec<u8>,
    slots: HashTable<Slot>,
    values: Vec<Value>,
    /// Seeded per process: hostile names cannot be chosen to collide.
    hasher: RandomState,
}

impl KeyTable {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes of all keys held.
    pub fn key_bytes(&self) -> usize {
        self.keys.len()
    }

    /// Keys the table holds without growing.
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    pub fn get(&self, key: &[u8]) -> Option<&Value> {
        let hash = self.hasher.hash_one(key);
        self.slots
            .find(hash, |s| slot_key(&self.keys, s) == key)
            .map(|s| &self.values[s.index as usize])
    }

    /// Updates the value of `key` with `update`, or inserts `new()` for it;
    /// returns the entry's index.
    #[inline]
    pub fn upsert(
        &mut self,
        key: &[u8],
        update: impl FnOnce(&mut Value),
        new: impl FnOnce() -> Value,
    ) -> SlotIndex {
        let hash = self.hasher.hash_one(key);
        let keys = &self.keys;
        if let Some(slot) = self.slots.find(hash, |s| slot_key(keys, s) == key) {
            let index = slot.index;
            update(&mut self.values[index as usize]);
            return index;
        }
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        let index = self.values.len() as SlotIndex;
        self.values.push(new());
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.slots.insert_unique(
            hash,
            Slot {
                start,
                len: key.len() as u32,
                index,
            },
            |s| hasher.hash_one(slot_key(keys, s)),
        );
        index
    }

    /// Updates the entry at `index` (from [`upsert`](KeyTable::upsert)
    /// since the table was last cleared).
    ///
    /// # Panics
    /// If no entry has that index.
    #[inline]
    pub fn update_at(&mut self, index: SlotIndex, update: impl FnOnce(&mut Value)) {
        update(&mut self.values[index as usize]);
    }

    /// Asks for the value at `index` to be brought into the CPU's caches,
    /// ahead of an [`update_at`](KeyTable::update_at) of it; an index
    /// without an entry is ignored.
    #[inline]
    pub fn prefetch(&self, index: SlotIndex) {
        if let Some(value) = self.values.get(index as usize) {
            crate::hint::prefetch(value);
        }
    }

    pub fn insert(&mut self, key: &[u8], value: Value) {
        self.upsert(key, |v| *v = value, || value);
    }

    /// Every key and value, in no particular order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &Value)> {
        self.slots
            .iter()
            .map(|s| (slot_key(&self.keys, s), &self.values[s.index as usize]))
    }

    /// Empties the table, keeping its allocations (an arena beyond
    /// `KEEP_ARENA_BYTES` excepted).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.values.clear();
        if self.keys.capacity() > KEEP_ARENA_BYTES {
            self.keys = Vec::new();
        } else {
            self.keys.clear();
        }
    }
}

/// A bookkeeping entry written with a batch: key (the store adds its own
/// prefix, so it cannot collide with data) and value.
pub type Checkpoint = (Vec<u8>, Vec<u8>);

/// One flush worth of aggregated observations, plus the bookkeeping that
/// goes with it.
#[derive(Default)]
pub struct Batch {
    /// `records` keys (see [`super::key::record_key`]).
    pub records: KeyTable,
    /// `negative` keys (see [`super::key::negative_key`]).
    pub negatives: KeyTable,
    /// Bookkeeping entries committed in the same write (a source's read
    /// position); a later entry with the same key wins.
    pub checkpoints: Vec<Checkpoint>,
}

impl Batch {
    /// Keys held (records and negative answers).
    pub fn len(&self) -> usize {
        self.records.len() + self.negatives.len()
    }

    /// Every entry as `(negative, key, value)`, records first, each table
    /// in key order: two batches hold the same aggregates exactly when
    /// these are equal (tables iterate in hash order).
    pub fn sorted_entries(&self) -> Vec<(bool, &[u8], &Value)> {
        let mut entries: Vec<_> = self
            .records
            .iter()
            .map(|(k, v)| (false, k, v))
            .chain(self.negatives.iter().map(|(k, v)| (true, k, v)))
            .collect();
        entries.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        entries
    }

    /// Whether there is nothing to write at all, not even bookkeeping.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.checkpoints.is_empty()
    }

    /// Bytes of all keys held.
    pub fn key_bytes(&self) -> usize {
        self.records.key_bytes() + self.negatives.key_bytes()
    }

    /// Empties the batch, keeping its allocations (see [`KeyTable::clear`]).
    pub fn clear(&mut self) {
        self.records.clear();
        self.negatives.clear();
        self.checkpoints.clear();
    }
}

#[inline]
fn slot_key<'a>(keys: &'a [u8], slot: &Slot) -> &'a [u8] {
    &keys[slot.start..slot.start + slot.len as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::value::Origin;

    fn seen(ts: u64) -> Value {
        Value::seen(ts, 60, Origin::WIRE)
    }

    #[test]
    fn inserts_then_updates_in_place() {
        let mut t = KeyTable::default();
        for i in 0..10_000u32 {
            let key = format!("key-{}", i % 2_500);
            t.upsert(
                key.as_bytes(),
                |v| v.observe(u64::from(i), 60),
                || seen(u64::from(i)),
            );
        }
        assert_eq!(t.len(), 2_500);
        let v = t.get(b"key-7").unwrap();
        assert_eq!((v.count, v.first, v.last), (4, 7, 7_507));
        assert!(t.get(b"key-2500").is_none());
        assert!(t.get(b"").is_none());
        assert_eq!(t.iter().count(), 2_500);
        assert_eq!(t.iter().map(|(_, v)| v.count).sum::<u64>(), 10_000);
        assert!(t.iter().all(|(k, v)| t.get(k) == Some(v)));
    }

    #[test]
    fn clear_keeps_the_allocations_but_not_a_huge_arena() {
        let mut t = KeyTable::default();
        for i in 0..1_000u32 {
            t.upsert(&i.to_be_bytes(), |_| {}, || seen(1));
        }
        let capacity = t.capacity();
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.key_bytes(), 0);
        assert_eq!(t.capacity(), capacity);
        t.upsert(b"again", |_| {}, || seen(2));
        assert_eq!(t.get(b"again").unwrap().first, 2);

        let big = vec![7u8; 60_000];
        for i in 0..300u32 {
            let mut key = big.clone();
            key.extend_from_slice(&i.to_be_bytes());
            t.upsert(&key, |_| {}, || seen(3));
        }
        assert!(t.key_bytes() > KEEP_ARENA_BYTES);
        t.clear();
        assert_eq!(t.keys.capacity(), 0);
    }

    #[test]
    fn insert_replaces() {
        let mut t = KeyTable::default();
        t.insert(b"k", seen(1));
        t.insert(b"k", seen(9));
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(b"k"), Some(&seen(9)));
    }

    #[test]
    fn empty_and_long_keys_are_distinct() {
        let mut t = KeyTable::default();
        t.upsert(b"", |v| v.count += 1, || seen(1));
        t.upsert(b"", |v| v.count += 1, || seen(1));
        t.upsert(b"\0", |v| v.count += 1, || seen(1));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(b"").unwrap().count, 2);
        assert_eq!(t.get(b"\0").unwrap().count, 1);
    }
}
