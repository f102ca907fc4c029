//! The value kept per record and the associative merge that combines them.
//!
//! Every observation is written as a merge operand holding its own
//! aggregate — `count`, `first`, `last`, `ttl`, `origin` — and RocksDB folds
//! operands together with [`merge`] whenever it reads or compacts. The fold
//! is associative and commutative (count adds, first takes the minimum, last
//! the maximum, the TTL follows the latest sighting with ties broken by the
//! larger TTL, origins are OR-ed), so writers never read before writing and
//! the order in which threads or files are ingested does not matter.
//!
//! Encoding: one version byte, then LEB128 varints for count, first, last,
//! ttl, then the origin bit set. About 15 bytes for a typical record.

/// Where an observation came from (a bit set, OR-ed on merge).
pub mod origin {
    /// Decoded from packets (live capture or pcap).
    pub const WIRE: u8 = 1;
    /// Imported from a Zeek dns.log.
    pub const ZEEK: u8 = 2;
}

const VALUE_VERSION: u8 = 1;

/// Aggregate of one record's (or negative answer's) sightings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value {
    pub count: u64,
    /// Seconds since the epoch, capture time.
    pub first: u64,
    pub last: u64,
    /// TTL of the latest sighting (0 for negative answers).
    pub ttl: u32,
    pub origin: u8,
}

impl Value {
    /// A single sighting.
    pub fn seen(ts: u64, ttl: u32, origin: u8) -> Self {
        Value {
            count: 1,
            first: ts,
            last: ts,
            ttl,
            origin,
        }
    }

    /// Adds one more sighting (what the pre-aggregator does per packet).
    #[inline]
    pub fn observe(&mut self, ts: u64, ttl: u32) {
        self.count = self.count.saturating_add(1);
        self.first = self.first.min(ts);
        if (ts, ttl) >= (self.last, self.ttl) {
            self.ttl = ttl;
        }
        self.last = self.last.max(ts);
    }

    /// Combines two aggregates; associative and commutative.
    pub fn combine(self, other: Value) -> Value {
        let ttl = if (other.last, other.ttl) >= (self.last, self.ttl) {
            other.ttl
        } else {
            self.ttl
        };
        Value {
            count: self.count.saturating_add(other.count),
            first: self.first.min(other.first),
            last: self.last.max(other.last),
            ttl,
            origin: self.origin | other.origin,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VALUE_VERSION);
        put_varint(out, self.count);
        put_varint(out, self.first);
        put_varint(out, self.last);
        put_varint(out, u64::from(self.ttl));
        out.push(self.origin);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        self.encode(&mut out);
        out
    }

    /// Decodes a value; `None` if it is not one we wrote.
    pub fn decode(data: &[u8]) -> Option<Value> {
        let (&version, mut rest) = data.split_first()?;
        if version != VALUE_VERSION {
            return None;
        }
        let count = get_varint(&mut rest)?;
        let first = get_varint(&mut rest)?;
        let last = get_varint(&mut rest)?;
        let ttl = u32::try_from(get_varint(&mut rest)?).ok()?;
        let (&origin, rest) = rest.split_first()?;
        if !rest.is_empty() {
            return None;
        }
        Some(Value {
            count,
            first,
            last,
            ttl,
            origin,
        })
    }
}

/// The RocksDB merge function (full and partial merge alike).
///
/// Operands that do not decode are skipped and counted rather than failing
/// the read: a damaged value must not make every later read of the key an
/// error. If nothing decodes, the existing value is kept as it is.
pub fn merge<'a>(
    existing: Option<&'a [u8]>,
    operands: impl Iterator<Item = &'a [u8]>,
) -> Option<Vec<u8>> {
    let mut acc: Option<Value> = existing.and_then(Value::decode);
    for op in operands {
        match Value::decode(op) {
            Some(v) => acc = Some(acc.map_or(v, |a| a.combine(v))),
            None => crate::metrics::corrupt_value(),
        }
    }
    match acc {
        Some(v) => Some(v.to_vec()),
        None => existing.map(<[u8]>::to_vec),
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = data.split_first()?;
        *data = rest;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        (
            1u64..1_000_000,
            0u64..2_000_000_000,
            0u64..1_000_000,
            any::<u32>(),
            1u8..4,
        )
            .prop_map(|(count, first, span, ttl, origin)| Value {
                count,
                first,
                last: first + span,
                ttl,
                origin,
            })
    }

    proptest! {
        #[test]
        fn combine_is_associative(a in value(), b in value(), c in value()) {
            prop_assert_eq!(a.combine(b).combine(c), a.combine(b.combine(c)));
        }

        #[test]
        fn combine_is_commutative(a in value(), b in value()) {
            prop_assert_eq!(a.combine(b), b.combine(a));
        }

        #[test]
        fn encoding_round_trips(a in value()) {
            prop_assert_eq!(Value::decode(&a.to_vec()), Some(a));
        }

        #[test]
        fn partial_merges_equal_one_full_merge(values in proptest::collection::vec(value(), 1..12), split in 0usize..12) {
            let encoded: Vec<Vec<u8>> = values.iter().map(Value::to_vec).collect();
            let full = merge(None, encoded.iter().map(Vec::as_slice)).unwrap();
            let split = split.min(encoded.len());
            let left = merge(None, encoded[..split].iter().map(Vec::as_slice));
            let right = merge(None, encoded[split..].iter().map(Vec::as_slice));
            let parts: Vec<Vec<u8>> = left.into_iter().chain(right).collect();
            let staged = merge(None, parts.iter().map(Vec::as_slice)).unwrap();
            prop_assert_eq!(&full, &staged);
            // And folding onto an existing value equals including it.
            let (head, tail) = encoded.split_first().unwrap();
            prop_assert_eq!(merge(Some(head), tail.iter().map(Vec::as_slice)).unwrap(), full);
        }

        #[test]
        fn observe_equals_combine_of_single_sightings(ts in proptest::collection::vec((0u64..1000, any::<u32>()), 1..20)) {
            let mut v = Value::seen(ts[0].0, ts[0].1, origin::WIRE);
            let mut w = v;
            for &(t, ttl) in &ts[1..] {
                v.observe(t, ttl);
                w = w.combine(Value::seen(t, ttl, origin::WIRE));
            }
            prop_assert_eq!(v, w);
        }
    }

    #[test]
    fn ttl_follows_latest_sighting() {
        let old = Value {
            count: 5,
            first: 100,
            last: 200,
            ttl: 3600,
            origin: origin::WIRE,
        };
        let new = Value {
            count: 1,
            first: 300,
            last: 300,
            ttl: 60,
            origin: origin::ZEEK,
        };
        let m = old.combine(new);
        assert_eq!(
            m,
            Value {
                count: 6,
                first: 100,
                last: 300,
                ttl: 60,
                origin: 3
            }
        );
        assert_eq!(new.combine(old), m);
    }

    #[test]
    fn garbage_operands_are_skipped() {
        let good = Value::seen(10, 5, origin::WIRE).to_vec();
        let merged = merge(None, [&[9u8, 9, 9][..], &good, &[][..]].into_iter()).unwrap();
        assert_eq!(
            Value::decode(&merged),
            Some(Value::seen(10, 5, origin::WIRE))
        );
        assert_eq!(merge(Some(&[7u8][..]), std::iter::empty()), Some(vec![7]));
        assert_eq!(Value::decode(&[1, 0x80, 0x80]), None);
    }
}
