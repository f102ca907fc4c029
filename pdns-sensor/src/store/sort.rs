//! Sorting a batch's keys into byte order, eight bytes at a time.
//!
//! Every column family's keys go into a write batch sorted (see
//! [`super::Store::write`]), and at high cardinality the sort was a sixth
//! of the store writer's time. The keys share long prefixes — every
//! `records` key under `com.` starts with the same five bytes, every one
//! under a popular domain with a dozen more — so a comparison sort spends
//! its time in `memcmp` walking the same shared bytes again and again, and
//! in the cache misses of loading two keys for every comparison.
//!
//! Here each key is compared by an 8-byte chunk held next to its index:
//! the keys are sorted by their first eight bytes as a `u64`, then each run
//! of keys whose chunks are equal is sorted by its next eight bytes, and so
//! on. A key is read once per level it takes part in, and the comparisons
//! are of integers. Small runs fall back to comparing the rest of the keys
//! directly.
//!
//! A chunk is the key's next eight bytes, zero-padded past its end, with
//! how many of those bytes are real (nine meaning "more follow"). Ordering
//! by (chunk, real bytes) is the byte order: two chunks that differ first
//! at a real byte of both order as those bytes; where one key has ended,
//! the other's byte there is ≥ its zero padding, and if they are equal
//! everywhere the key that ended first is a prefix of the other, and so
//! the smaller.

use super::PREFETCH_AHEAD as AHEAD;
use crate::hint;

/// Runs at most this long are sorted by comparing the keys' remaining
/// bytes: for a handful of keys that is cheaper than another level.
const SMALL_RUN: usize = 16;

/// A key's place in the sort: its chunk at the current depth, and its
/// index in the caller's list.
#[derive(Clone, Copy)]
struct Entry {
    chunk: u64,
    /// Real bytes in `chunk` (0–8), or 9 if the key goes on past it.
    real: u8,
    index: u32,
}

impl Entry {
    fn new(key: &[u8], depth: usize, index: u32) -> Entry {
        let rest = key.get(depth..).unwrap_or_default();
        let mut bytes = [0u8; 8];
        let n = rest.len().min(8);
        bytes[..n].copy_from_slice(&rest[..n]);
        Entry {
            chunk: u64::from_be_bytes(bytes),
            real: if rest.len() > 8 { 9 } else { n as u8 },
            index,
        }
    }

    fn rank(&self) -> (u64, u8) {
        (self.chunk, self.real)
    }
}

/// The order of `count` keys (`key(i)` is the `i`th): indices in byte
/// order of their keys. Equal keys keep no particular order among
/// themselves.
///
/// # Panics
/// If `count` exceeds `u32::MAX` (a batch is far smaller).
pub(super) fn byte_order<'k>(count: usize, key: impl Fn(usize) -> &'k [u8]) -> Vec<u32> {
    let count = u32::try_from(count).expect("fewer than 2^32 keys in a batch");
    let mut entries: Vec<Entry> = (0..count as usize)
        .map(|i| {
            if i + AHEAD < count as usize {
                hint::prefetch(key(i + AHEAD).as_ptr());
            }
            Entry::new(key(i), 0, i as u32)
        })
        .collect();
    sort_level(&mut entries, 0, &key);
    entries.into_iter().map(|e| e.index).collect()
}

/// Sorts `entries`, whose keys are equal before `depth` and whose chunks
/// are those at `depth`.
fn sort_level<'k>(entries: &mut [Entry], depth: usize, key: &impl Fn(usize) -> &'k [u8]) {
    if entries.len() <= SMALL_RUN {
        entries.sort_unstable_by(|a, b| {
            let (ka, kb) = (key(a.index as usize), key(b.index as usize));
            ka.get(depth..)
                .unwrap_or_default()
                .cmp(kb.get(depth..).unwrap_or_default())
        });
        return;
    }
    entries.sort_unstable_by_key(Entry::rank);
    let mut start = 0;
    while start < entries.len() {
        let rank = entries[start].rank();
        let end = start
            + entries[start..]
                .iter()
                .position(|e| e.rank() != rank)
                .unwrap_or(entries.len() - start);
        // Keys that ended within this chunk are equal to each other and
        // in place; those going on are ordered by what follows.
        if end - start > 1 && rank.1 == 9 {
            let run = &mut entries[start..end];
            let next = depth + 8;
            for n in 0..run.len() {
                if let Some(ahead) = run.get(n + AHEAD) {
                    hint::prefetch(key(ahead.index as usize).as_ptr().wrapping_add(next));
                }
                let index = run[n].index;
                run[n] = Entry::new(key(index as usize), next, index);
            }
            sort_level(run, next, key);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sorted_by_chunks(keys: &[Vec<u8>]) -> Vec<Vec<u8>> {
        byte_order(keys.len(), |i| &keys[i])
            .into_iter()
            .map(|i| keys[i as usize].clone())
            .collect()
    }

    fn sorted_plainly(keys: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut out = keys.to_vec();
        out.sort_unstable();
        out
    }

    #[test]
    fn prefixes_and_zero_bytes_order_as_bytes() {
        // A key that is a prefix of another, keys differing only in
        // trailing zeros, and runs long enough to take the chunked path.
        let mut keys: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\0".to_vec(),
            b"\0\0".to_vec(),
            b"ab".to_vec(),
            b"ab\0".to_vec(),
            b"ab\0\0\0\0\0\0".to_vec(),
            b"ab\0\0\0\0\0\0\0".to_vec(),
            b"ab\0\0\0\0\0\0\x01".to_vec(),
            b"abcdefgh".to_vec(),
            b"abcdefghi".to_vec(),
            b"abcdefgh\0".to_vec(),
            vec![0xff; 20],
            vec![0xff; 19],
        ];
        for i in 0..40u8 {
            keys.push([b"\x03com\x0cexample-".as_slice(), &[i % 7, i]].concat());
        }
        assert_eq!(sorted_by_chunks(&keys), sorted_plainly(&keys));
    }

    #[test]
    fn real_record_keys_sort_as_bytes() {
        // Reversed names sharing long prefixes, as a batch's `records`
        // keys do.
        let mut keys = Vec::new();
        for i in 0..3000u32 {
            let mut k = Vec::new();
            let name = format!("cdn{}.d{}.example-{}.com", i * 7919 % 1000, i % 53, i % 11);
            let parsed: domain::base::Name<Vec<u8>> = name.parse().unwrap();
            crate::vocab::name::encode(&parsed, &mut k);
            k.extend_from_slice(&[0, 1, 10, 0, (i >> 8) as u8, i as u8]);
            keys.push(k);
        }
        assert_eq!(sorted_by_chunks(&keys), sorted_plainly(&keys));
    }

    proptest! {
        #[test]
        fn orders_any_keys_as_bytes(
            keys in prop::collection::vec(
                // Few distinct bytes: long shared prefixes and ties.
                prop::collection::vec(prop::sample::select(vec![0u8, 1, 0x61, 0xff]), 0..40),
                0..400,
            )
        ) {
            prop_assert_eq!(sorted_by_chunks(&keys), sorted_plainly(&keys));
        }
    }
}
