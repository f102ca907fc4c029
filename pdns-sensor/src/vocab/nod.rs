//! Newly observed domains: the registrable domain of a name, and the entry
//! kept for each domain the first time it is seen.
//!
//! The registrable domain is the public suffix list's (`www.example.co.uk.`
//! → `example.co.uk.`), as the API's `bailiwick` computes it, but taken
//! straight from the reversed encoding: its labels already run from the
//! root down, the order the list is searched in, so no text is built.
//!
//! An entry (the value of a `nod` time-index key, see [`super::key`]) is: one
//! version byte, the first-seen time (LEB128), a flag byte (warm-up, seen in
//! rdata), the record type (two bytes, big-endian), then the reversed
//! encoding of the first owner name it was seen in.

use domain::base::iana::Rtype;
use psl::Psl;

use super::name;

const ENTRY_VERSION: u8 = 1;
const FLAG_WARMUP: u8 = 1;
const FLAG_RDATA: u8 = 2;

/// The length of the registrable domain's labels at the front of an
/// encoded name (without the root byte): the domain is
/// `encoded[..len]` followed by a zero byte. `None` when the name is a
/// public suffix itself, the root, or has labels the list cannot hold
/// (dots inside a label).
pub fn registrable_len(encoded: &[u8]) -> Option<usize> {
    // Labels with a dot inside would be split by the list's dotted view.
    let info = psl::List.find(name::labels(encoded));
    if info.len == 0 {
        return None;
    }
    // The suffix's length is that of its dotted form: count whole labels.
    let mut dotted = 0usize;
    let mut pos = 0usize;
    let mut suffix_end = None;
    for label in name::labels(encoded) {
        if label.contains(&b'.') {
            return None;
        }
        dotted += label.len() + usize::from(dotted > 0);
        pos += 1 + label.len();
        if suffix_end.is_some() {
            return Some(pos);
        }
        if dotted >= info.len {
            if dotted != info.len {
                return None;
            }
            suffix_end = Some(pos);
        }
    }
    None
}

/// The registrable domain of an encoded name, encoded (with its root byte).
pub fn registrable(encoded: &[u8]) -> Option<Vec<u8>> {
    let len = registrable_len(encoded)?;
    let mut out = Vec::with_capacity(len + 1);
    out.extend_from_slice(&encoded[..len]);
    out.push(0);
    Some(out)
}

/// What is kept about a domain the first time it is seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodEntry {
    /// Observation time (epoch seconds) of the first sighting.
    pub first_seen: u64,
    /// The owner name of the record it was first seen in (reversed
    /// encoding).
    pub rrname: Vec<u8>,
    /// That record's type.
    pub rrtype: Rtype,
    /// First seen during the database's warm-up: "new" only because the
    /// database had not seen much yet.
    pub warmup: bool,
    /// Seen in a name inside the rdata (CNAME target, NS host, ...) rather
    /// than as part of the owner name.
    pub in_rdata: bool,
}

impl NodEntry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(ENTRY_VERSION);
        let mut v = self.first_seen;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        let mut flags = 0;
        if self.warmup {
            flags |= FLAG_WARMUP;
        }
        if self.in_rdata {
            flags |= FLAG_RDATA;
        }
        out.push(flags);
        out.extend_from_slice(&self.rrtype.to_int().to_be_bytes());
        out.extend_from_slice(&self.rrname);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.rrname.len());
        self.encode(&mut out);
        out
    }

    /// Decodes an entry; `None` if it is not one we wrote.
    pub fn decode(data: &[u8]) -> Option<NodEntry> {
        let (&version, mut rest) = data.split_first()?;
        if version != ENTRY_VERSION {
            return None;
        }
        let mut first_seen: u64 = 0;
        let mut shift = 0u32;
        loop {
            let (&b, tail) = rest.split_first()?;
            rest = tail;
            first_seen |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift >= 64 {
                return None;
            }
        }
        let (&flags, rest) = rest.split_first()?;
        let rrtype = Rtype::from_int(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
        let rrname = &rest[2..];
        let (owner, tail) = name::split(rrname)?;
        if !tail.is_empty() {
            return None;
        }
        Some(NodEntry {
            first_seen,
            rrname: owner.to_vec(),
            rrtype,
            warmup: flags & FLAG_WARMUP != 0,
            in_rdata: flags & FLAG_RDATA != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> Vec<u8> {
        name::encode_presentation(s).unwrap()
    }

    fn domain_of(s: &str) -> Option<String> {
        registrable(&enc(s)).map(|d| name::presentation(&d))
    }

    #[test]
    fn registrable_domains_follow_the_public_suffix_list() {
        assert_eq!(
            domain_of("www.example.com").as_deref(),
            Some("example.com.")
        );
        assert_eq!(domain_of("example.com").as_deref(), Some("example.com."));
        assert_eq!(
            domain_of("a.b.example.co.uk").as_deref(),
            Some("example.co.uk.")
        );
        assert_eq!(
            domain_of("WWW.Example.COM").as_deref(),
            Some("example.com.")
        );
        // Private section: each bucket is its own registrable domain.
        assert_eq!(
            domain_of("x.foo.s3.amazonaws.com").as_deref(),
            Some("foo.s3.amazonaws.com.")
        );
        assert_eq!(
            domain_of("1.2.10.in-addr.arpa").as_deref(),
            Some("10.in-addr.arpa.")
        );
        // Public suffixes and the root have none.
        assert_eq!(domain_of("com"), None);
        assert_eq!(domain_of("co.uk"), None);
        assert_eq!(domain_of("."), None);
        // A label holding a dot is not a name the list can judge (below
        // the registrable domain, it does not matter).
        assert_eq!(domain_of("x.a\\.b.com"), None);
        assert_eq!(
            domain_of("a\\.b.example.com").as_deref(),
            Some("example.com.")
        );
    }

    #[test]
    fn registrable_matches_the_text_lookup() {
        for n in [
            "www.example.com",
            "deep.a.b.c.example.org",
            "x.github.io",
            "y.x.github.io",
            "a.b.unknowntld",
            "b.unknowntld",
            "foo.bar.ck",
            "www.ck",
            "a.b.c.kawasaki.jp",
            "city.kawasaki.jp",
        ] {
            let expected = psl::domain_str(n).map(|d| format!("{d}."));
            assert_eq!(domain_of(n), expected, "{n}");
        }
    }

    #[test]
    fn entries_round_trip() {
        for (first_seen, warmup, in_rdata) in [(0, false, false), (1_700_000_000, true, true)] {
            let e = NodEntry {
                first_seen,
                rrname: enc("www.example.com"),
                rrtype: Rtype::AAAA,
                warmup,
                in_rdata,
            };
            assert_eq!(NodEntry::decode(&e.to_vec()), Some(e.clone()));
            let bytes = e.to_vec();
            assert_eq!(NodEntry::decode(&bytes[..bytes.len() - 1]), None);
        }
        assert_eq!(NodEntry::decode(b""), None);
        assert_eq!(NodEntry::decode(b"\x02\x00"), None);
    }
}
