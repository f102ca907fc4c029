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
//! Retention (see `store::retention`) adds one rule to the fold: given a
//! cutoff, pieces last seen before it are *expired* and left out whenever a
//! piece seen since is present. A record is aggregated, so it expires as a
//! whole, by its last sighting; an expired base value that compaction has
//! not removed yet must not lend its count and first-seen to a record seen
//! again: the new sightings start a new record.
//!
//! Encoding: one version byte, then LEB128 varints for count, first, the
//! seconds from first to last, ttl, then the origin bit set: about 11 bytes
//! for a typical record. Version 1 (store format 1) held `last` itself, five
//! bytes where the span mostly takes one; it is still read, and merges
//! rewrite it as version 2. Values are a fifth of a compacted store (the
//! bench's 1 M names: 10 of 48 bytes per record); the span saves 4 % of it.
//!
//! The `names` column family needs less: an owner's entry is only there to
//! expire with the last of its records, so it keeps the [last
//! sighting](encode_last_seen) alone, folded by [`merge_last_seen`].

/// Where the sightings of a record came from: a bit set, OR-ed on merge,
/// stored as one byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin(u8);

impl Origin {
    /// Decoded from packets (live capture or pcap).
    pub const WIRE: Origin = Origin(1);
    /// Imported from a Zeek dns.log.
    pub const ZEEK: Origin = Origin(2);
    /// Sent by a DNS server over dnstap.
    pub const DNSTAP: Origin = Origin(4);
    /// Imported from a bro-pdns database (`import-bro-pdns`).
    pub const BRO_PDNS: Origin = Origin(8);

    /// Every named origin with its name, in output order.
    const NAMED: [(Origin, &'static str); 4] = [
        (Origin::WIRE, "wire"),
        (Origin::ZEEK, "zeek"),
        (Origin::DNSTAP, "dnstap"),
        (Origin::BRO_PDNS, "bro-pdns"),
    ];

    /// The stored byte.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The origin set of a stored byte (unknown bits are kept).
    pub fn from_bits(bits: u8) -> Origin {
        Origin(bits)
    }

    /// Both sets together.
    pub fn union(self, other: Origin) -> Origin {
        Origin(self.0 | other.0)
    }

    /// Whether every origin of `other` is in this set.
    pub fn contains(self, other: Origin) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names of the origins in this set (`wire`, `zeek`, `dnstap`,
    /// `bro-pdns`).
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMED
            .iter()
            .filter(|(o, _)| self.contains(*o))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// Version bytes: a [`Value`] with `last` as it is (store format 1), a
/// [`Value`] with `last` as its distance from `first`, and a last sighting
/// alone ([`encode_last_seen`]).
const VALUE_V1: u8 = 1;
const VALUE_V2: u8 = 2;
const LAST_SEEN: u8 = 3;

/// Aggregate of one record's (or negative answer's) sightings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value {
    pub count: u64,
    /// Seconds since the epoch, capture time.
    pub first: u64,
    pub last: u64,
    /// TTL of the latest sighting (0 for negative answers).
    pub ttl: u32,
    pub origin: Origin,
}

impl Value {
    /// A single sighting.
    #[inline]
    pub fn seen(ts: u64, ttl: u32, origin: Origin) -> Self {
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
            origin: self.origin.union(other.origin),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.encoded().as_slice());
    }

    fn encoded(&self) -> Encoded {
        // `first <= last` for every value a sighting or a merge makes; one
        // that is not (built by hand) keeps `last` as it is, in version 1.
        let (version, last) = match self.last.checked_sub(self.first) {
            Some(span) => (VALUE_V2, span),
            None => (VALUE_V1, self.last),
        };
        let mut out = Encoded::default();
        out.push(version);
        out.put_varint(self.count);
        out.put_varint(self.first);
        out.put_varint(last);
        out.put_varint(u64::from(self.ttl));
        out.push(self.origin.bits());
        out
    }

    /// Whether the last sighting is before `cutoff` (epoch seconds; 0:
    /// nothing expires).
    #[inline]
    pub fn is_expired(&self, cutoff: u64) -> bool {
        self.last < cutoff
    }

    /// The encoded value in an allocation of its own length: what a merge
    /// hands RocksDB, whose binding shrinks any longer allocation to the
    /// length with a `realloc`. Encoded straight into a 24-byte vector, the
    /// final compaction of the bench's 1 M names took 7 % more CPU.
    pub fn to_vec(&self) -> Vec<u8> {
        self.encoded().as_slice().to_vec()
    }

    /// Decodes a value; `None` if it is not one we wrote.
    pub fn decode(data: &[u8]) -> Option<Value> {
        let (&version, mut rest) = data.split_first()?;
        if version != VALUE_V1 && version != VALUE_V2 {
            return None;
        }
        let count = get_varint(&mut rest)?;
        let first = get_varint(&mut rest)?;
        let last = match version {
            VALUE_V1 => get_varint(&mut rest)?,
            _ => first.checked_add(get_varint(&mut rest)?)?,
        };
        let ttl = u32::try_from(get_varint(&mut rest)?).ok()?;
        let (&origin, rest) = rest.split_first()?;
        let origin = Origin::from_bits(origin);
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
/// Pieces (the existing value and the operands) last seen before `cutoff`
/// are expired: when at least one piece is not, the result combines only
/// the pieces that are not; when every piece is, it combines them all (an
/// expired value, which readers hide and compaction removes). Either way
/// the fold stays associative and commutative at a given cutoff, so
/// partial merges agree with full ones. A `cutoff` of 0 expires nothing.
///
/// Operands that do not decode are skipped rather than failing the read: a
/// damaged value must not make every later read of the key an error. Each
/// one is reported to `corrupt`, for the store to count. If nothing
/// decodes, the existing value is kept as it is.
pub fn merge<'a>(
    existing: Option<&'a [u8]>,
    operands: impl Iterator<Item = &'a [u8]>,
    cutoff: u64,
    corrupt: impl FnMut(),
) -> Option<Vec<u8>> {
    match fold(existing, operands, cutoff, corrupt) {
        Some(v) => Some(v.to_vec()),
        None => existing.map(<[u8]>::to_vec),
    }
}

/// [`merge`] before encoding: the merged value, or `None` when nothing
/// decoded.
pub fn fold<'a>(
    existing: Option<&'a [u8]>,
    operands: impl Iterator<Item = &'a [u8]>,
    cutoff: u64,
    mut corrupt: impl FnMut(),
) -> Option<Value> {
    let mut fresh: Option<Value> = None;
    let mut expired: Option<Value> = None;
    let mut add = |v: Value| {
        let acc = if v.is_expired(cutoff) {
            &mut expired
        } else {
            &mut fresh
        };
        *acc = Some(acc.map_or(v, |a| a.combine(v)));
    };
    if let Some(v) = existing.and_then(Value::decode) {
        add(v);
    }
    for op in operands {
        match Value::decode(op) {
            Some(v) => add(v),
            None => corrupt(),
        }
    }
    fresh.or(expired)
}

/// Encodes a last sighting alone (seconds since the epoch): what a `names`
/// entry keeps.
pub fn encode_last_seen(last: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(encoded_last_seen(last).as_slice());
}

fn encoded_last_seen(last: u64) -> Encoded {
    let mut out = Encoded::default();
    out.push(LAST_SEEN);
    out.put_varint(last);
    out
}

/// The last sighting a stored value holds: a [`Value`] of either version or
/// a last sighting alone. `None` if it is none of them (an empty value, as
/// `names` entries written before retention existed have).
pub fn last_seen(data: &[u8]) -> Option<u64> {
    match data.split_first()? {
        (&LAST_SEEN, mut rest) => {
            let last = get_varint(&mut rest)?;
            rest.is_empty().then_some(last)
        }
        _ => Value::decode(data).map(|v| v.last),
    }
}

/// The merge function of last sightings (the `names` column family): the
/// latest of them, encoded alone. Full values left by store format 1 give
/// their `last`. Operands that do not decode are skipped and reported to
/// `corrupt`; if nothing decodes, the existing value is kept as it is.
///
/// The latest sighting is expired exactly when all of them are, so the
/// fold needs no cutoff: an entry expires with the last of its pieces.
pub fn merge_last_seen<'a>(
    existing: Option<&'a [u8]>,
    operands: impl Iterator<Item = &'a [u8]>,
    corrupt: impl FnMut(),
) -> Option<Vec<u8>> {
    match fold_last_seen(existing, operands, corrupt) {
        Some(last) => Some(last_seen_to_vec(last)),
        None => existing.map(<[u8]>::to_vec),
    }
}

/// [`merge_last_seen`] before encoding: the latest sighting, or `None`
/// when nothing decoded.
pub fn fold_last_seen<'a>(
    existing: Option<&'a [u8]>,
    operands: impl Iterator<Item = &'a [u8]>,
    mut corrupt: impl FnMut(),
) -> Option<u64> {
    let mut latest = existing.and_then(last_seen);
    for op in operands {
        match last_seen(op) {
            Some(last) => latest = Some(latest.map_or(last, |l| l.max(last))),
            None => corrupt(),
        }
    }
    latest
}

/// A last sighting alone, encoded ([`encode_last_seen`]).
pub fn last_seen_to_vec(last: u64) -> Vec<u8> {
    encoded_last_seen(last).as_slice().to_vec()
}

/// An encoding built on the stack, so that it can be copied into an
/// allocation of exactly its length (see [`Value::to_vec`]).
struct Encoded {
    bytes: [u8; Encoded::CAPACITY],
    len: usize,
}

impl Encoded {
    /// The longest encoding: two single bytes and four varints of up to
    /// ten bytes.
    const CAPACITY: usize = 2 + 4 * 10;

    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    fn put_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Default for Encoded {
    fn default() -> Self {
        Encoded {
            bytes: [0; Encoded::CAPACITY],
            len: 0,
        }
    }
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
                origin: Origin::from_bits(origin),
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
            let encoded = a.to_vec();
            prop_assert_eq!(Value::decode(&encoded), Some(a));
            prop_assert_eq!(last_seen(&encoded), Some(a.last));
            // What a merge hands RocksDB is not shrunk again (see `to_vec`).
            prop_assert_eq!(encoded.capacity(), encoded.len());
            let mut appended = vec![0xff];
            a.encode(&mut appended);
            prop_assert_eq!(&appended[1..], &encoded[..]);
        }

        #[test]
        fn values_of_any_size_round_trip(
            count in any::<u64>(),
            first in any::<u64>(),
            last in any::<u64>(),
            ttl in any::<u32>(),
        ) {
            // The longest encodings included: every varint ten bytes, and
            // version 1 for a `last` before `first`.
            let a = Value { count, first, last, ttl, origin: Origin::WIRE };
            prop_assert_eq!(Value::decode(&a.to_vec()), Some(a));
            prop_assert_eq!(last_seen(&last_seen_to_vec(last)), Some(last));
        }

        #[test]
        fn values_of_store_format_1_still_decode(a in value()) {
            let v1 = encode_v1(&a);
            prop_assert_eq!(Value::decode(&v1), Some(a));
            prop_assert_eq!(last_seen(&v1), Some(a.last));
            // Version 2 is never longer.
            prop_assert!(a.to_vec().len() <= v1.len());
        }

        #[test]
        fn a_value_last_seen_before_first_keeps_its_last(a in value(), back in 1u64..1000) {
            // Not made by sightings or merges; still encoded without loss.
            let odd = Value { last: a.first.saturating_sub(back), ..a };
            prop_assume!(odd.last < odd.first);
            prop_assert_eq!(Value::decode(&odd.to_vec()), Some(odd));
        }

        #[test]
        fn last_seen_merges_keep_the_latest_in_any_grouping(
            values in proptest::collection::vec(value(), 1..12),
            split in 0usize..12,
        ) {
            // Full values as store format 1 and 2 wrote them, and last
            // sightings alone, mixed as a format-1 database meets new writes.
            let encoded: Vec<Vec<u8>> = values.iter().enumerate().map(|(i, v)| match i % 3 {
                0 => encode_v1(v),
                1 => v.to_vec(),
                _ => { let mut out = Vec::new(); encode_last_seen(v.last, &mut out); out }
            }).collect();
            let latest = values.iter().map(|v| v.last).max();
            let full = merge_last_seen(None, encoded.iter().map(Vec::as_slice), || {}).unwrap();
            prop_assert_eq!(last_seen(&full), latest);
            let split = split.min(encoded.len());
            let left = merge_last_seen(None, encoded[..split].iter().map(Vec::as_slice), || {});
            let right = merge_last_seen(None, encoded[split..].iter().map(Vec::as_slice), || {});
            let parts: Vec<Vec<u8>> = left.into_iter().chain(right).collect();
            prop_assert_eq!(merge_last_seen(None, parts.iter().map(Vec::as_slice), || {}), Some(full.clone()));
            let (head, tail) = encoded.split_first().unwrap();
            prop_assert_eq!(merge_last_seen(Some(head), tail.iter().map(Vec::as_slice), || {}), Some(full));
        }

        #[test]
        fn partial_merges_equal_one_full_merge(
            values in proptest::collection::vec(value(), 1..12),
            split in 0usize..12,
            cutoff in prop_oneof![Just(0u64), 0u64..2_001_000_000],
        ) {
            let encoded: Vec<Vec<u8>> = values.iter().map(Value::to_vec).collect();
            let full = merge(None, encoded.iter().map(Vec::as_slice), cutoff, || {}).unwrap();
            let split = split.min(encoded.len());
            let left = merge(None, encoded[..split].iter().map(Vec::as_slice), cutoff, || {});
            let right = merge(None, encoded[split..].iter().map(Vec::as_slice), cutoff, || {});
            let parts: Vec<Vec<u8>> = left.into_iter().chain(right).collect();
            let staged = merge(None, parts.iter().map(Vec::as_slice), cutoff, || {}).unwrap();
            prop_assert_eq!(&full, &staged);
            // And folding onto an existing value equals including it.
            let (head, tail) = encoded.split_first().unwrap();
            prop_assert_eq!(merge(Some(head), tail.iter().map(Vec::as_slice), cutoff, || {}).unwrap(), full.clone());
            // Expired pieces count only when nothing fresh is there.
            let fresh: Vec<Value> = values.iter().copied().filter(|v| !v.is_expired(cutoff)).collect();
            let want = fresh.iter().copied().reduce(Value::combine)
                .or_else(|| values.iter().copied().reduce(Value::combine));
            prop_assert_eq!(Value::decode(&full), want);
        }

        #[test]
        fn observe_equals_combine_of_single_sightings(ts in proptest::collection::vec((0u64..1000, any::<u32>()), 1..20)) {
            let mut v = Value::seen(ts[0].0, ts[0].1, Origin::WIRE);
            let mut w = v;
            for &(t, ttl) in &ts[1..] {
                v.observe(t, ttl);
                w = w.combine(Value::seen(t, ttl, Origin::WIRE));
            }
            prop_assert_eq!(v, w);
        }
    }

    /// A value as store format 1 wrote it (`last` itself).
    fn encode_v1(v: &Value) -> Vec<u8> {
        let mut out = Encoded::default();
        out.push(VALUE_V1);
        out.put_varint(v.count);
        out.put_varint(v.first);
        out.put_varint(v.last);
        out.put_varint(u64::from(v.ttl));
        out.push(v.origin.bits());
        out.as_slice().to_vec()
    }

    #[test]
    fn a_typical_record_takes_eleven_bytes_instead_of_fifteen() {
        let v = Value {
            count: 3,
            first: 1_700_000_000,
            last: 1_700_000_009,
            ttl: 300,
            origin: Origin::WIRE,
        };
        // Version, count, first (5 bytes), span, ttl (2), origin.
        assert_eq!(
            v.to_vec(),
            [VALUE_V2, 3, 0x80, 0xe2, 0xcf, 0xaa, 0x06, 9, 0xac, 0x02, 1]
        );
        assert_eq!(encode_v1(&v).len(), 15);
    }

    #[test]
    fn last_seen_alone_decodes_strictly() {
        let mut out = Vec::new();
        encode_last_seen(1_700_000_009, &mut out);
        assert_eq!(out.len(), 6);
        assert_eq!(last_seen(&out), Some(1_700_000_009));
        // A last sighting is not a value: nothing counts from it.
        assert_eq!(Value::decode(&out), None);
        out.push(0);
        assert_eq!(last_seen(&out), None, "trailing bytes");
        for bad in [
            &[][..],
            &[LAST_SEEN][..],
            &[LAST_SEEN, 0x80][..],
            &[9, 1][..],
        ] {
            assert_eq!(last_seen(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn last_seen_merges_skip_garbage_and_keep_what_they_cannot_read() {
        let at = |t| {
            let mut out = Vec::new();
            encode_last_seen(t, &mut out);
            out
        };
        let (early, late) = (at(100), at(200));
        let mut corrupt = 0;
        let merged = merge_last_seen(
            Some(&early),
            [&[9u8, 9][..], &late, &[][..]].into_iter(),
            || corrupt += 1,
        );
        assert_eq!(merged, Some(late.clone()));
        assert_eq!(corrupt, 2);
        // An existing value that does not decode (an empty `names` value
        // from before retention) is not counted, and is replaced.
        assert_eq!(
            merge_last_seen(Some(&[][..]), [&early[..]].into_iter(), || {}),
            Some(early)
        );
        assert_eq!(
            merge_last_seen(Some(&[7u8][..]), std::iter::empty(), || {}),
            Some(vec![7])
        );
    }

    #[test]
    fn origins_name_their_bits() {
        assert_eq!(Origin::WIRE.union(Origin::ZEEK).names(), ["wire", "zeek"]);
        assert_eq!(Origin::ZEEK.names(), ["zeek"]);
        assert_eq!(
            Origin::BRO_PDNS.union(Origin::WIRE).names(),
            ["wire", "bro-pdns"]
        );
        assert!(Origin::from_bits(3).contains(Origin::WIRE));
        assert!(!Origin::WIRE.contains(Origin::ZEEK));
    }

    #[test]
    fn ttl_follows_latest_sighting() {
        let old = Value {
            count: 5,
            first: 100,
            last: 200,
            ttl: 3600,
            origin: Origin::WIRE,
        };
        let new = Value {
            count: 1,
            first: 300,
            last: 300,
            ttl: 60,
            origin: Origin::ZEEK,
        };
        let m = old.combine(new);
        assert_eq!(
            m,
            Value {
                count: 6,
                first: 100,
                last: 300,
                ttl: 60,
                origin: Origin::WIRE.union(Origin::ZEEK)
            }
        );
        assert_eq!(new.combine(old), m);
    }

    #[test]
    fn an_expired_base_gives_nothing_to_a_fresh_sighting() {
        let old = Value {
            count: 40,
            first: 1_000,
            last: 2_000,
            ttl: 300,
            origin: Origin::WIRE,
        };
        let new = Value {
            count: 2,
            first: 90_000,
            last: 90_500,
            ttl: 60,
            origin: Origin::ZEEK,
        };
        let merged = |cutoff| {
            let m = merge(
                Some(&old.to_vec()),
                [&new.to_vec()[..]].into_iter(),
                cutoff,
                || {},
            );
            Value::decode(&m.unwrap()).unwrap()
        };
        // Without retention, or with the base still fresh, they add up.
        assert_eq!(merged(0), old.combine(new));
        assert_eq!(merged(2_000), old.combine(new));
        // Expired base: the fresh sightings alone (count, first, origin).
        assert_eq!(merged(2_001), new);
        // Everything expired: still one (expired) value, for compaction.
        assert_eq!(merged(100_000), old.combine(new));
        assert!(merged(100_000).is_expired(100_000));
    }

    #[test]
    fn garbage_operands_are_skipped() {
        let good = Value::seen(10, 5, Origin::WIRE).to_vec();
        let mut corrupt = 0;
        let merged = merge(
            None,
            [&[9u8, 9, 9][..], &good, &[][..]].into_iter(),
            0,
            || corrupt += 1,
        )
        .unwrap();
        assert_eq!(corrupt, 2);
        assert_eq!(
            Value::decode(&merged),
            Some(Value::seen(10, 5, Origin::WIRE))
        );
        assert_eq!(
            merge(Some(&[7u8][..]), std::iter::empty(), 0, || {}),
            Some(vec![7])
        );
        assert_eq!(Value::decode(&[1, 0x80, 0x80]), None);
    }
}
