//! Key layouts of the three column families.
//!
//! * `records`: `owner ‖ rtype ‖ rdata` — owner is a reversed name (see
//!   [`crate::name`]), rtype two bytes big-endian, rdata the canonical wire
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
//!
//! Compared with balboa (one flat key per observation, a separate inverse
//! table holding only keys) and dnstable (four entry types in one sorted
//! file), the index carries its own counts and keeps addresses binary, so
//! `rdata/ip/198.51.100.0/24` reads exactly the matching keys and nothing
//! else.

use crate::name;

pub const INDEX_IPV4: u8 = 0x04;
pub const INDEX_IPV6: u8 = 0x06;
pub const INDEX_NAME: u8 = 0x4e;

/// Record types (besides A and AAAA) whose rdata holds a name worth
/// indexing, with the byte offset of that name in the canonical rdata.
pub fn rdata_name_offset(rtype: u16) -> Option<usize> {
    match rtype {
        2 | 5 | 12 | 39 => Some(0), // NS, CNAME, PTR, DNAME
        15 | 36 => Some(2),         // MX, KX
        33 => Some(6),              // SRV
        64 | 65 => Some(2),         // SVCB, HTTPS
        _ => None,
    }
}

/// Appends a `records` key.
pub fn record_key(out: &mut Vec<u8>, owner: &[u8], rtype: u16, rdata: &[u8]) {
    out.extend_from_slice(owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(rdata);
}

/// A `records` key taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordKey<'a> {
    pub owner: &'a [u8],
    pub rtype: u16,
    pub rdata: &'a [u8],
}

pub fn parse_record_key(key: &[u8]) -> Option<RecordKey<'_>> {
    let (owner, rest) = name::split(key)?;
    let rtype = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
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
        (1, 4) => {
            out.push(INDEX_IPV4);
            out.extend_from_slice(record.rdata);
            out.extend_from_slice(record.owner);
            out.extend_from_slice(&record.rtype.to_be_bytes());
            true
        }
        (28, 16) => {
            out.push(INDEX_IPV6);
            out.extend_from_slice(record.rdata);
            out.extend_from_slice(record.owner);
            out.extend_from_slice(&record.rtype.to_be_bytes());
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
            if !wire_name_reversed(wire, out) {
                out.truncate(start);
                return false;
            }
            out.extend_from_slice(&record.rtype.to_be_bytes());
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
            let rtype = u16::from_be_bytes(tail.try_into().ok()?);
            Some(RecordKey {
                owner,
                rtype,
                rdata,
            })
        }
        INDEX_NAME => {
            let (_, tail) = name::split(rest)?;
            let rtype = u16::from_be_bytes(tail.get(..2)?.try_into().ok()?);
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

/// Appends the `names` key of an owner: the same length-prefixed,
/// lowercase labels as the reversed encoding, but in the order they are
/// written (`\x03www\x07example\x03com\x00`), so every name starting with
/// `www.example` shares a prefix.
pub fn forward_name(reversed: &[u8], out: &mut Vec<u8>) {
    name::push_labels_reversed(name::encoded_labels(reversed), false, out);
}

/// The reversed encoding of a `names` key (the inverse of
/// [`forward_name`]; the same transformation, as it only reverses labels).
pub fn reversed_name(forward: &[u8], out: &mut Vec<u8>) {
    forward_name(forward, out)
}

/// Appends a `negative` key.
pub fn negative_key(out: &mut Vec<u8>, qname: &[u8], qtype: u16, rcode: u16) {
    out.extend_from_slice(qname);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&rcode.to_be_bytes());
}

/// A `negative` key taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NegativeKey<'a> {
    pub qname: &'a [u8],
    pub qtype: u16,
    /// 0 = NODATA, otherwise the RCODE.
    pub rcode: u16,
}

pub fn parse_negative_key(key: &[u8]) -> Option<NegativeKey<'_>> {
    let (qname, rest) = name::split(key)?;
    if rest.len() != 4 {
        return None;
    }
    Some(NegativeKey {
        qname,
        qtype: u16::from_be_bytes([rest[0], rest[1]]),
        rcode: u16::from_be_bytes([rest[2], rest[3]]),
    })
}

/// Converts an uncompressed wire-format name at the start of `wire` into the
/// reversed encoding. Returns false if it is not a valid uncompressed name.
pub fn wire_name_reversed(wire: &[u8], out: &mut Vec<u8>) -> bool {
    let mut labels = 0;
    let mut pos = 0;
    loop {
        let Some(&len) = wire.get(pos) else {
            return false;
        };
        if len == 0 {
            break;
        }
        if len > 63 || labels == 128 || pos + 1 + len as usize > wire.len() {
            return false;
        }
        labels += 1;
        pos += 1 + len as usize;
    }
    name::push_labels_reversed(name::encoded_labels(&wire[..pos]), true, out);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(s: &str) -> Vec<u8> {
        name::encode_str(s).unwrap()
    }

    #[test]
    fn record_keys_round_trip() {
        let o = owner("www.example.com");
        let mut key = Vec::new();
        record_key(&mut key, &o, 1, &[192, 0, 2, 1]);
        let parsed = parse_record_key(&key).unwrap();
        assert_eq!(
            parsed,
            RecordKey {
                owner: &o,
                rtype: 1,
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
                rtype: 1,
                rdata: &[198, 51, 100, 7],
            },
        );
        index_key(
            &mut hi,
            &RecordKey {
                owner: &o,
                rtype: 1,
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
            rtype: 15,
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
                rtype: 16,
                rdata: b"\x02hi"
            }
        ));
        assert!(!index_key(
            &mut key,
            &RecordKey {
                owner: &o,
                rtype: 5,
                rdata: b"\x05ab"
            }
        ));
        assert!(!index_key(
            &mut key,
            &RecordKey {
                owner: &o,
                rtype: 1,
                rdata: &[1, 2, 3]
            }
        ));
        assert!(key.is_empty());
    }

    #[test]
    fn forward_names_reverse_back() {
        let o = owner("www.Example.com");
        let mut f = Vec::new();
        forward_name(&o, &mut f);
        assert_eq!(f, b"\x03www\x07example\x03com\x00".to_vec());
        let mut back = Vec::new();
        reversed_name(&f, &mut back);
        assert_eq!(back, o);
    }

    #[test]
    fn negative_keys_round_trip() {
        let q = owner("nx.example");
        let mut key = Vec::new();
        negative_key(&mut key, &q, 28, 3);
        assert_eq!(
            parse_negative_key(&key),
            Some(NegativeKey {
                qname: &q,
                qtype: 28,
                rcode: 3
            })
        );
        assert_eq!(parse_negative_key(&key[..key.len() - 1]), None);
    }
}
