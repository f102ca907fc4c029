//! Reading the store: selectors that become key ranges, filters applied to
//! values, and iterators that stream results without loading them all.
//!
//! Every selector maps to one contiguous key range of one column family
//! (see [`crate::vocab::key`]), so the cost of a query is the number of keys
//! it matches, not the size of the database.
//!
//! This is also the one place that hides expired rows (see
//! [`super::retention`]): every surface — `dump`, each HTTP API, counts and
//! summaries — reads through [`Store::records`], [`Store::negatives`] and
//! [`Store::owners_forward`], so a record, its index entry and its owner's
//! `names` entry disappear together at the cutoff, whichever of them
//! compaction has already deleted.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use rocksdb::{DB, DBRawIteratorWithThreadMode, ReadOptions};

use super::{CF_NEGATIVE, CF_RDATA, CF_RECORDS, Store, StoreError, count_corrupt};
use crate::vocab::key::{self, INDEX_IPV4, INDEX_IPV6, INDEX_NAME};
use crate::vocab::name;
use crate::vocab::value::{self, Value};
use crate::vocab::{OptRcode, Rtype};

/// Which keys a query reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Everything (for a full dump).
    All,
    /// Records owned by a name (`wildcard`: strictly below it instead).
    Owner { name: Vec<u8>, wildcard: bool },
    /// Records whose rdata is an IPv4 address in `[lo, hi]`.
    Ipv4 { lo: Ipv4Addr, hi: Ipv4Addr },
    /// Records whose rdata is an IPv6 address in `[lo, hi]`.
    Ipv6 { lo: Ipv6Addr, hi: Ipv6Addr },
    /// Records whose rdata holds a name (`wildcard`: strictly below it).
    RdataName { name: Vec<u8>, wildcard: bool },
}

/// Conditions on a record besides its key range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub rtype: Option<Rtype>,
    /// Seconds since the epoch; all bounds are inclusive.
    pub first_after: Option<u64>,
    pub first_before: Option<u64>,
    pub last_after: Option<u64>,
    pub last_before: Option<u64>,
    /// When a scan stops with [`StoreError::TimedOut`]. Checked every
    /// [`DEADLINE_EVERY`] keys read, matching or not: a scan whose filter
    /// rejects everything (a time fence no record meets, over a /8) reads
    /// on without yielding, so the caller's own per-result check would
    /// never run.
    pub deadline: Option<Instant>,
}

/// Keys read between two looks at the clock in a filtered scan.
const DEADLINE_EVERY: u32 = 1024;

impl Filter {
    fn time_matches(&self, v: &Value) -> bool {
        self.first_after.is_none_or(|t| v.first >= t)
            && self.first_before.is_none_or(|t| v.first <= t)
            && self.last_after.is_none_or(|t| v.last >= t)
            && self.last_before.is_none_or(|t| v.last <= t)
    }

    fn matches(&self, rtype: Rtype, v: &Value) -> bool {
        self.rtype.is_none_or(|t| t == rtype) && self.time_matches(v)
    }
}

/// One record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Reversed name encoding (see [`crate::vocab::name`]).
    pub owner: Vec<u8>,
    pub rtype: Rtype,
    /// Canonical wire form.
    pub rdata: Vec<u8>,
    pub value: Value,
}

/// One negative answer as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NegativeRecord {
    pub qname: Vec<u8>,
    pub qtype: Rtype,
    /// NOERROR means NODATA, otherwise the (extended) RCODE.
    pub rcode: OptRcode,
    pub value: Value,
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A key range: start (inclusive) and optional end (exclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    fn prefix(prefix: Vec<u8>) -> KeyRange {
        let end = prefix_end(&prefix);
        KeyRange { start: prefix, end }
    }

    fn everything() -> KeyRange {
        KeyRange {
            start: Vec::new(),
            end: None,
        }
    }

    /// A range no key is in.
    fn nothing() -> KeyRange {
        KeyRange {
            start: vec![0xff; 2],
            end: Some(vec![0xff; 2]),
        }
    }
}

/// Where the keys a selector matches are: one contiguous range of one
/// column family (or of the ClickHouse table mirroring it), and how to
/// read the keys found there. Shared by every backend, so they all select
/// the same keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpan {
    /// Column family: [`CF_RECORDS`], [`CF_RDATA`] or [`CF_NEGATIVE`].
    pub cf: &'static str,
    pub range: KeyRange,
    /// A subtree's range includes its root: a key with a 0 byte here is
    /// the root itself, which a wildcard skips.
    skip_at: Option<usize>,
    /// Whether the keys are index keys (else record or negative keys).
    index: bool,
}

/// For a wildcard over `name`: the subtree prefix, whose keys include
/// `name` itself, which the caller skips (next byte is the root label).
fn owner_range(name: &[u8], wildcard: bool) -> (KeyRange, Option<usize>) {
    if wildcard {
        let prefix = name::subtree_prefix(name).to_vec();
        let skip_at = prefix.len();
        (KeyRange::prefix(prefix), Some(skip_at))
    } else {
        (KeyRange::prefix(name.to_vec()), None)
    }
}

impl Selector {
    /// Where the records this selector matches are.
    pub fn span(&self) -> KeySpan {
        let (cf, range, skip_at, index) = match self {
            Selector::All => (CF_RECORDS, KeyRange::everything(), None, false),
            Selector::Owner { name, wildcard } => {
                let (range, skip) = owner_range(name, *wildcard);
                (CF_RECORDS, range, skip, false)
            }
            Selector::Ipv4 { lo, hi } => {
                let start = [&[INDEX_IPV4][..], &lo.octets()].concat();
                let end = prefix_end(&[&[INDEX_IPV4][..], &hi.octets()].concat());
                (CF_RDATA, KeyRange { start, end }, None, true)
            }
            Selector::Ipv6 { lo, hi } => {
                let start = [&[INDEX_IPV6][..], &lo.octets()].concat();
                let end = prefix_end(&[&[INDEX_IPV6][..], &hi.octets()].concat());
                (CF_RDATA, KeyRange { start, end }, None, true)
            }
            Selector::RdataName { name, wildcard } => {
                let (mut range, skip) = owner_range(name, *wildcard);
                range.start.insert(0, INDEX_NAME);
                range.end = prefix_end(&range.start);
                (CF_RDATA, range, skip.map(|s| s + 1), true)
            }
        };
        KeySpan {
            cf,
            range,
            skip_at,
            index,
        }
    }

    /// Where the negative answers this selector matches are (`All` and
    /// `Owner`; other selectors match none).
    pub fn negative_span(&self) -> KeySpan {
        let (range, skip_at) = match self {
            Selector::All => (KeyRange::everything(), None),
            Selector::Owner { name, wildcard } => owner_range(name, *wildcard),
            _ => (KeyRange::nothing(), None),
        };
        KeySpan {
            cf: CF_NEGATIVE,
            range,
            skip_at,
            index: false,
        }
    }
}

/// The range of forward owner names starting with `prefix` (the `names`
/// column family).
pub fn names_range(prefix: &[u8]) -> KeyRange {
    KeyRange::prefix(prefix.to_vec())
}

impl KeySpan {
    /// The record a key of this span and its merged value stand for, if
    /// it is one the selector, the cutoff and the filter let through.
    /// Undecodable keys are counted as corrupt.
    pub fn record(
        &self,
        key: &[u8],
        value: Value,
        cutoff: u64,
        filter: &Filter,
    ) -> Option<StoredRecord> {
        if self.skip_at.is_some_and(|at| key.get(at) == Some(&0)) {
            return None;
        }
        let parsed = if self.index {
            key::parse_index_key(key)
        } else {
            key::parse_record_key(key)
        };
        let Some(parsed) = parsed else {
            count_corrupt();
            return None;
        };
        if value.is_expired(cutoff) || !filter.matches(parsed.rtype, &value) {
            return None;
        }
        Some(StoredRecord {
            owner: parsed.owner.to_vec(),
            rtype: parsed.rtype,
            rdata: parsed.rdata.to_vec(),
            value,
        })
    }

    /// The negative answer a key of this span stands for (as
    /// [`KeySpan::record`]).
    pub fn negative(
        &self,
        key: &[u8],
        value: Value,
        cutoff: u64,
        filter: &Filter,
    ) -> Option<NegativeRecord> {
        if self.skip_at.is_some_and(|at| key.get(at) == Some(&0)) {
            return None;
        }
        let Some(parsed) = key::parse_negative_key(key) else {
            count_corrupt();
            return None;
        };
        if value.is_expired(cutoff) || !filter.matches(parsed.qtype, &value) {
            return None;
        }
        Some(NegativeRecord {
            qname: parsed.qname.to_vec(),
            qtype: parsed.qtype,
            rcode: parsed.rcode,
            value,
        })
    }
}

impl Store {
    /// A raw iterator over `range` of `cf`, at its start.
    ///
    /// Raw, so that each row is read in place: RocksDB's iterator adapter
    /// copies every key and value into a fresh allocation, two allocations
    /// and two copies per row that a scan drops right after looking at
    /// them (about 5 % of a 10 000-record wildcard answer's CPU in a
    /// profile: `malloc`, `sdallocx` and the copies).
    fn rows(&self, cf: &str, range: &KeyRange) -> DBRawIteratorWithThreadMode<'_, DB> {
        let mut opts = ReadOptions::default();
        if let Some(end) = &range.end {
            opts.set_iterate_upper_bound(end.clone());
        }
        // Blocks read go into the block cache. Keeping them out (as the
        // Flex scans of whole column families do) also kept out each
        // file's index block, since index blocks live in the same cache:
        // every lookup then read and decompressed the index of every file
        // it touched, a third of an exact-name lookup on 10 M records.
        // Lookups read a few blocks; a big subtree fills the cache's
        // low-priority part, and index blocks sit in its high-priority
        // part.
        let mut rows = self.db().raw_iterator_cf_opt(self.cf(cf), opts);
        rows.seek(&range.start);
        rows
    }

    /// Streams the records a selector and filter match.
    pub fn records<'a>(
        &'a self,
        selector: &Selector,
        filter: &'a Filter,
    ) -> impl Iterator<Item = Result<StoredRecord, StoreError>> + 'a {
        let span = selector.span();
        let cutoff = self.retention_cutoff();
        let rows = self.rows(span.cf, &span.range);
        self.scan(rows, filter.deadline, move |key, value| {
            span.record(key, value, cutoff, filter)
        })
    }

    /// Streams negative answers under a selector (`All` or `Owner`; other
    /// selectors match nothing) and filter (`rtype` filters the qtype).
    pub fn negatives<'a>(
        &'a self,
        selector: &Selector,
        filter: &'a Filter,
    ) -> impl Iterator<Item = Result<NegativeRecord, StoreError>> + 'a {
        let span = selector.negative_span();
        let cutoff = self.retention_cutoff();
        let rows = self.rows(CF_NEGATIVE, &span.range);
        self.scan(rows, filter.deadline, move |key, value| {
            span.negative(key, value, cutoff, filter)
        })
    }

    /// Reads `rows`, giving `accept` each key and decoded value and
    /// yielding what it returns; a value that does not decode is counted
    /// as corrupt and skipped. Past `deadline` (looked at every
    /// [`DEADLINE_EVERY`] keys read, accepted or not), the scan yields one
    /// [`StoreError::TimedOut`] and ends; a read error is yielded and ends
    /// it too.
    fn scan<'a, T, A>(
        &'a self,
        rows: DBRawIteratorWithThreadMode<'a, DB>,
        deadline: Option<Instant>,
        mut accept: A,
    ) -> impl Iterator<Item = Result<T, StoreError>> + use<'a, T, A>
    where
        A: FnMut(&[u8], Value) -> Option<T> + 'a,
    {
        let mut read = 0u32;
        self.walk(rows, move |key, value| {
            read = read.wrapping_add(1);
            if read.is_multiple_of(DEADLINE_EVERY) && deadline.is_some_and(|d| Instant::now() >= d)
            {
                return Some(Err(StoreError::TimedOut));
            }
            match Value::decode(value) {
                Some(value) => accept(key, value).map(Ok),
                None => {
                    count_corrupt();
                    None
                }
            }
        })
    }

    /// Walks `rows`, giving `visit` each key and value in place: `None`
    /// skips the row, `Some(Ok(_))` yields it, and `Some(Err(_))` is
    /// yielded and ends the walk, as a read error does.
    fn walk<'a, T, V>(
        &'a self,
        mut rows: DBRawIteratorWithThreadMode<'a, DB>,
        mut visit: V,
    ) -> impl Iterator<Item = Result<T, StoreError>> + use<'a, T, V>
    where
        V: FnMut(&[u8], &[u8]) -> Option<Result<T, StoreError>> + 'a,
    {
        let mut over = false;
        std::iter::from_fn(move || {
            while !over {
                let (Some(key), Some(value)) = (rows.key(), rows.value()) else {
                    over = true;
                    return rows.status().err().map(|e| Err(self.error("reading")(e)));
                };
                let found = visit(key, value);
                rows.next();
                if let Some(found) = found {
                    over = found.is_err();
                    return Some(found);
                }
            }
            None
        })
    }

    /// Owner names (reversed encoding) whose forward encoding starts with
    /// `prefix`, from the `names` column family. An entry carries the
    /// last sighting of its owner's records (none if written before
    /// retention existed: then it is always listed, and the records it
    /// leads to are checked as they are read).
    pub fn owners_forward<'a>(
        &'a self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<Vec<u8>, StoreError>> + 'a {
        let range = names_range(prefix);
        let cutoff = self.retention_cutoff();
        let rows = self.rows(super::CF_NAMES, &range);
        self.walk(rows, move |key, value| {
            if value::last_seen(value).is_some_and(|last| last < cutoff) {
                return None;
            }
            let mut reversed = Vec::with_capacity(key.len());
            name::from_forward(key, &mut reversed);
            Some(Ok(reversed))
        })
    }
}

/// Parses a CIDR block or single address into an inclusive range selector:
/// `192.0.2.1`, `192.0.2.0/24`, `2001:db8::/32`.
pub fn address_selector(text: &str) -> Option<Selector> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (text, None),
    };
    if let Ok(v4) = addr.parse::<Ipv4Addr>() {
        let len = len.unwrap_or(32);
        if len > 32 {
            return None;
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let base = u32::from(v4) & mask;
        return Some(Selector::Ipv4 {
            lo: base.into(),
            hi: (base | !mask).into(),
        });
    }
    if let Ok(v6) = addr.parse::<Ipv6Addr>() {
        let len = len.unwrap_or(128);
        if len > 128 {
            return None;
        }
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        };
        let base = u128::from(v6) & mask;
        return Some(Selector::Ipv6 {
            lo: base.into(),
            hi: (base | !mask).into(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges() {
        assert_eq!(
            address_selector("198.51.100.77/24"),
            Some(Selector::Ipv4 {
                lo: "198.51.100.0".parse().unwrap(),
                hi: "198.51.100.255".parse().unwrap()
            })
        );
        assert_eq!(
            address_selector("192.0.2.1"),
            Some(Selector::Ipv4 {
                lo: "192.0.2.1".parse().unwrap(),
                hi: "192.0.2.1".parse().unwrap()
            })
        );
        assert_eq!(
            address_selector("2001:db8::/32"),
            Some(Selector::Ipv6 {
                lo: "2001:db8::".parse().unwrap(),
                hi: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()
            })
        );
        assert_eq!(
            address_selector("0.0.0.0/0").map(|s| matches!(s, Selector::Ipv4 { .. })),
            Some(true)
        );
        assert_eq!(address_selector("10.0.0.0/33"), None);
        assert_eq!(address_selector("example.com"), None);
        assert_eq!(address_selector("10.0.0.0/x"), None);
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
