//! Key layouts of the store: what the aggregator builds and the store
//! writes, reads and takes apart again.
//!
//! * `records`: `owner ‖ rtype ‖ rdata` — owner is a reversed name (see
//!   [`super::name`]), rtype two bytes big-endian, rdata the canonical wire
//!   form (names uncompressed and lowercased). Exact-name lookups and
//!   `*.example.com` are prefix scans.
//! * `rdata`: the inverted index, one entry per record whose rdata is an
//!   address or holds a name, carrying the same merged value as `records` so
//!   an rdata query is a single range scan with no second lookup:
//!   - `0x04 ‖ ipv4 (4) ‖ owner ‖ rtype` — addresses are binary and
//!     big-endian, so a CIDR block is one contiguous key range;
//!   - `0x06 ‖ ipv6 (16) ‖ owner ‖ rtype` — likewise;
//!   - `0x4e ‖ rdata-name ‖ rtype ‖ owner ‖ rdata` — the name inside the rdata
//!     (CNAME target, NS host, MX exchange, ...), reversed, so both exact
//!     names and whole subtrees are prefix scans.
//! * `negative`: `qname ‖ qtype ‖ rcode` — rcode two bytes, 0 meaning NODATA
//!   (NOERROR with an empty answer), otherwise the full (extended) RCODE.
//! * `names` (keyed by [`super::name::forward`] alone): every owner once,
//!   in forward label order, for right-hand wildcards.
//! * `nod` (newly observed domains): two entries per registrable domain
//!   (reversed encoding):
//!   - `0x64 ('d') ‖ domain` → first_seen (8, big-endian): is it known, and
//!     since when (what a writer looks up for every candidate);
//!   - `0x74 ('t') ‖ first_seen (8, big-endian) ‖ domain` → its
//!     [`super::nod::NodEntry`]: the feed, in first-seen order, so
//!     `since=T` is one range scan and a page cursor is the key's tail.
//!
//! Compared with balboa (one flat key per observation, a separate inverse
//! table holding only keys) and dnstable (four entry types in one sorted
//! file), the index carries its own counts and keeps addresses binary, so
//! `rdata/ip/198.51.100.0/24` reads exactly the matching keys and nothing
//! else.

use domain::base::iana::{OptRcode, Rtype};

use super::name;

pub const INDEX_IPV4: u8 = 0x04;
pub const INDEX_IPV6: u8 = 0x06;
pub const INDEX_NAME: u8 = 0x4e;

pub const NOD_DOMAIN: u8 = b'd';
pub const NOD_TIME: u8 = b't';

/// Record types (besides A and AAAA) whose rdata holds a name worth
/// indexing, with the byte offset of that name in the canonical rdata.
pub fn rdata_name_offset(rtype: Rtype) -> Option<usize> {
    match rtype.to_int() {
        2 | 5 | 12 | 39 => Some(0), // NS, CNAME, PTR, DNAME
        15 | 36 => Some(2),         // MX, KX
        33 => Some(6),              // SRV
        64 | 65 => Some(2),         // SVCB, HTTPS
        _ => None,
    }
}

/// Appends a `records` key.
#[inline]
pub fn record_key(out: &mut Vec<u8>, owner: &[u8], rtype: Rtype, rdata: &[u8]) {
    out.extend_from_slice(owner);
    out.extend_from_slice(&rtype.to_int().to_be_bytes());
    out.extend_from_slice(rdata);
}

/// A `records` key taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordKey<'a> {
    pub owner: &'a [u8],
    pub rtype: Rtype,
    pub rdata: &'a [u8],
}

pub fn parse_record_key(key: &[u8]) -> Option<RecordKey<'_>> {
    let (owner, rest) = name::split(key)?;
    let rtype = be_rtype(rest.get(..2)?)?;
    Some(RecordKey {
        owner,
        rtype,
        rdata: &rest[2..],
    })
}

/// Appends the index key for a record, if its rdata is indexed. Returns
/// whether a key was written.
pub fn index_key(out: &mut Vec<u8>, record: &RecordKey<'_>) -> bool {
    match (record.rtype, record.rdata.len()) {
        (Rtype::A, 4) => {
            out.push(INDEX_IPV4);
            out.extend_from_slice(record.rdata);
            out.extend_from_slice(record.owner);
            out.extend_from_slice(&record.rtype.to_int().to_be_bytes());
            true
        }
        (Rtype::AAAA, 16) => {
            out.push(INDEX_IPV6);
            out.extend_from_slice(record.rdata);
            out.extend_from_slice(record.owner);
            out.extend_from_slice(&record.rtype.to_int().to_be_bytes());
            true
        }
        _ => {
            let Some(offset) = rdata_name_offset(record.rtype) else {
                return false;
            };
            let Some(wire) = record.rdata.get(offset..) else {
                return false;
            };
            let start = out.len();
            out.push(INDEX_NAME);
            if !name::encode_wire(wire, out) {
                out.truncate(start);
                return false;
            }
            out.extend_from_slice(&record.rtype.to_int().to_be_bytes());
            out.extend_from_slice(record.owner);
            out.extend_from_slice(record.rdata);
            true
        }
    }
}

/// Takes an index key apart into the record it points at.
pub fn parse_index_key(key: &[u8]) -> Option<RecordKey<'_>> {
    let (&kind, rest) = key.split_first()?;
    match kind {
        INDEX_IPV4 | INDEX_IPV6 => {
            let len = if kind == INDEX_IPV4 { 4 } else { 16 };
            let rdata = rest.get(..len)?;
            let (owner, tail) = name::split(&rest[len..])?;
            let rtype = be_rtype(tail)?;
            Some(RecordKey {
                owner,
                rtype,
                rdata,
            })
        }
        INDEX_NAME => {
            let (_, tail) = name::split(rest)?;
            let rtype = be_rtype(tail.get(..2)?)?;
            let (owner, rdata) = name::split(&tail[2..])?;
            Some(RecordKey {
                owner,
                rtype,
                rdata,
            })
        }
        _ => None,
    }
}

/// Appends a `negative` key.
#[inline]
pub fn negative_key(out: &mut Vec<u8>, qname: &[u8], qtype: Rtype, rcode: OptRcode) {
    out.extend_from_slice(qname);
    out.extend_from_slice(&qtype.to_int().to_be_bytes());
    out.extend_from_slice(&rcode.to_int().to_be_bytes());
}

/// A `negative` key taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NegativeKey<'a> {
    pub qname: &'a [u8],
    pub qtype: Rtype,
    /// NOERROR means NODATA, otherwise the (extended) RCODE.
    pub rcode: OptRcode,
}

pub fn parse_negative_key(key: &[u8]) -> Option<NegativeKey<'_>> {
    let (qname, rest) = name::split(key)?;
    if rest.len() != 4 {
        return None;
    }
    Some(NegativeKey {
        qname,
        qtype: Rtype::from_int(u16::from_be_bytes([rest[0], rest[1]])),
        rcode: OptRcode::masked_from_int(u16::from_be_bytes([rest[2], rest[3]])),
    })
}

/// Appends the `nod` key of a domain (reversed encoding).
pub fn nod_domain_key(out: &mut Vec<u8>, domain: &[u8]) {
    out.push(NOD_DOMAIN);
    out.extend_from_slice(domain);
}

/// Appends the `nod` time-index key of a domain first seen at `first_seen`.
pub fn nod_time_key(out: &mut Vec<u8>, first_seen: u64, domain: &[u8]) {
    out.push(NOD_TIME);
    out.extend_from_slice(&first_seen.to_be_bytes());
    out.extend_from_slice(domain);
}

/// Takes a `nod` time-index key apart: first seen and domain.
pub fn parse_nod_time_key(key: &[u8]) -> Option<(u64, &[u8])> {
    let rest = key.strip_prefix(&[NOD_TIME])?;
    let first_seen = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let (domain, tail) = name::split(&rest[8..])?;
    tail.is_empty().then_some((first_seen, domain))
}

/// A big-endian record type from exactly two bytes.
fn be_rtype(bytes: &[u8]) -> Option<Rtype> {
    Some(Rtype::from_int(u16::from_be_bytes(bytes.try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(s: &str) -> Vec<u8> {
        name::encode_presentation(s).unwrap()
    }

    #[test]
    fn record_keys_round_trip() {
        let o = owner("www.example.com");
        let mut key = Vec::new();
        record_key(&mut key, &o, Rtype::A, &[192, 0, 2, 1]);
        let parsed = parse_record_key(&key).unwrap();
        assert_eq!(
            parsed,
            RecordKey {
                owner: &o,
                rtype: Rtype::A,
                rdata: &[192, 0, 2, 1]
            }
        );
    }

    #[test]
    fn address_index_keys_sort_by_address() {
        let o = owner("a.test");
        let mut lo = Vec::new();
        let mut hi = Vec::new();
        index_key(
            &mut lo,
            &RecordKey {
                owner: &o,
                rtype: Rtype::A,
                rdata: &[198, 51, 100, 7],
            },
        );
        index_key(
            &mut hi,
            &RecordKey {
                owner: &o,
                rtype: Rtype::A,
                rdata: &[198, 51, 101, 0],
            },
        );
        assert!(lo < hi);
        assert_eq!(parse_index_key(&lo).unwrap().rdata, &[198, 51, 100, 7]);
        assert_eq!(parse_index_key(&lo).unwrap().owner, &o[..]);
    }

    #[test]
    fn name_index_key_points_back_to_record() {
        let o = owner("www.a.test");
        // MX 10 mail.example.com.
        let rdata = b"\x00\x0a\x04mail\x07example\x03com\x00";
        let rec = RecordKey {
            owner: &o,
            rtype: Rtype::MX,
            rdata,
        };
        let mut key = Vec::new();
        assert!(index_key(&mut key, &rec));
        assert!(key[1..].starts_with(&owner("mail.example.com")));
        assert_eq!(parse_index_key(&key), Some(rec));
    }

    #[test]
    fn unindexed_or_broken_rdata_writes_nothing() {
        let o = owner("t.test");
        let mut key = Vec::new();
        assert!(!index_key(
            &mut key,
            &RecordKey {
                owner: &o,
                rtype: Rtype::TXT,
                rdata: b"\x02hi"
            }
        ));
        assert!(!index_key(
            &mut key,
            &RecordKey {
                owner: &o,
                rtype: Rtype::CNAME,
                rdata: b"\x05ab"
            }
        ));
        assert!(!index_key(
            &mut key,
            &RecordKey {
                owner: &o,
                rtype: Rtype::A,
                rdata: &[1, 2, 3]
            }
        ));
        assert!(key.is_empty());
    }

    #[test]
    fn nod_keys_round_trip_and_sort_by_time() {
        let d = owner("example.com");
        let mut key = Vec::new();
        nod_time_key(&mut key, 1_700_000_000, &d);
        assert_eq!(parse_nod_time_key(&key), Some((1_700_000_000, &d[..])));
        assert_eq!(parse_nod_time_key(&key[..key.len() - 1]), None);
        let mut later = Vec::new();
        nod_time_key(&mut later, 1_700_000_001, &owner("a.test"));
        assert!(key < later);
        let mut dkey = Vec::new();
        nod_domain_key(&mut dkey, &d);
        assert_eq!(dkey[0], NOD_DOMAIN);
        assert_eq!(&dkey[1..], &d[..]);
        assert_eq!(parse_nod_time_key(&dkey), None);
    }

    #[test]
    fn negative_keys_round_trip() {
        let q = owner("nx.example");
        let mut key = Vec::new();
        negative_key(&mut key, &q, Rtype::AAAA, OptRcode::NXDOMAIN);
        assert_eq!(
            parse_negative_key(&key),
            Some(NegativeKey {
                qname: &q,
                qtype: Rtype::AAAA,
                rcode: OptRcode::NXDOMAIN
            })
        );
        assert_eq!(parse_negative_key(&key[..key.len() - 1]), None);
    }
}
