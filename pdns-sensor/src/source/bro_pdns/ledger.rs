//! What each bro-pdns source already contributed, so that importing it
//! again adds only what grew.
//!
//! A bro-pdns row holds totals. The store adds counts on merge, so the
//! import must add each sighting once however often it runs. Per source
//! and per row the ledger keeps the count, first and last seen that were
//! added; an import adds `count - contributed` (nothing when the row did
//! not change) and writes the new ledger entry in the same atomic batch as
//! the record (`Batch::checkpoints`), so a crash leaves both or neither.
//!
//! A *source* is named by `--source-id`, by default the database's
//! location: `sqlite:<canonical path>` or `postgres://<host>:<port>/<db>`
//! (no user, no password). The same file moved elsewhere is a new source
//! unless it is given its old id.
//!
//! Keys, in the store's bookkeeping space:
//! * `bro-pdns/row/<source>/<row>`: `<source>` the first 8 bytes of the
//!   SHA-256 of the source id, `<row>` the first 16 of the SHA-256 of
//!   generation, query (as stored), type and answer, both in hex; the value
//!   is 24 bytes, big-endian count, first, last (epoch seconds).
//! * `bro-pdns/source/<source>`: JSON for people (id, generations, last
//!   import).

use sha2::{Digest, Sha256};

use super::schema::Generation;
use crate::store::{Store, StoreError};

pub const ROW_PREFIX: &str = "bro-pdns/row/";
pub const SOURCE_PREFIX: &str = "bro-pdns/source/";

/// What one row contributed so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Contribution {
    pub count: u64,
    pub first: u64,
    pub last: u64,
}

impl Contribution {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.first.to_be_bytes());
        out.extend_from_slice(&self.last.to_be_bytes());
        out
    }

    pub fn decode(raw: &[u8]) -> Option<Contribution> {
        let field = |i: usize| {
            raw.get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        };
        (raw.len() == 24).then_some(())?;
        Some(Contribution {
            count: field(0)?,
            first: field(1)?,
            last: field(2)?,
        })
    }
}

/// What to add for a row now, given what it contributed before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delta {
    /// Nothing changed since the last import.
    Unchanged,
    /// Add this many sightings (0 when only the times moved), then record
    /// `ledger`.
    Add {
        count: u64,
        ledger: Contribution,
        /// The row had contributed before.
        grown: bool,
        /// Its count is below what was contributed.
        shrunk: bool,
    },
}

/// The rule (see the module docs).
pub fn delta(now: Contribution, before: Option<Contribution>) -> Delta {
    let Some(before) = before else {
        return Delta::Add {
            count: now.count,
            ledger: now,
            grown: false,
            shrunk: false,
        };
    };
    if now.count <= before.count && now.first >= before.first && now.last <= before.last {
        return Delta::Unchanged;
    }
    Delta::Add {
        count: now.count.saturating_sub(before.count),
        ledger: Contribution {
            count: now.count.max(before.count),
            first: now.first.min(before.first),
            last: now.last.max(before.last),
        },
        grown: true,
        shrunk: now.count < before.count,
    }
}

/// The ledger of one source.
pub struct Ledger {
    source_hex: String,
    key: Vec<u8>,
}

impl Ledger {
    pub fn new(source_id: &str) -> Ledger {
        let digest = Sha256::digest(source_id.as_bytes());
        Ledger {
            source_hex: hex(&digest[..8]),
            key: Vec::with_capacity(64),
        }
    }

    /// The ledger key of a row.
    pub fn row_key(
        &mut self,
        generation: Generation,
        query: &[u8],
        qtype: &[u8],
        answer: &[u8],
    ) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(generation.as_str().as_bytes());
        for part in [query, qtype, answer] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        let digest = h.finalize();
        self.key.clear();
        self.key.extend_from_slice(ROW_PREFIX.as_bytes());
        self.key.extend_from_slice(self.source_hex.as_bytes());
        self.key.push(b'/');
        self.key.extend_from_slice(hex(&digest[..16]).as_bytes());
        self.key.clone()
    }

    /// What the row of `key` contributed before (an undecodable entry
    /// counts as none: it was not written by this import).
    pub fn get(store: &Store, key: &[u8]) -> Result<Option<Contribution>, StoreError> {
        Ok(store
            .meta_get(key)?
            .and_then(|raw| Contribution::decode(&raw)))
    }

    pub fn source_key(&self) -> Vec<u8> {
        format!("{SOURCE_PREFIX}{}", self.source_hex).into_bytes()
    }
}

/// The people-readable entry of a source.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SourceRecord {
    pub id: String,
    pub generations: Vec<Generation>,
    pub rows: u64,
    /// Wall-clock time of the import, epoch seconds.
    pub imported: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(count: u64, first: u64, last: u64) -> Contribution {
        Contribution { count, first, last }
    }

    #[test]
    fn growth_only() {
        assert!(matches!(
            delta(c(5, 10, 20), None),
            Delta::Add {
                count: 5,
                grown: false,
                ..
            }
        ));
        assert_eq!(delta(c(5, 10, 20), Some(c(5, 10, 20))), Delta::Unchanged);
        assert_eq!(
            delta(c(8, 10, 30), Some(c(5, 10, 20))),
            Delta::Add {
                count: 3,
                ledger: c(8, 10, 30),
                grown: true,
                shrunk: false
            }
        );
        assert_eq!(
            delta(c(2, 5, 40), Some(c(5, 10, 20))),
            Delta::Add {
                count: 0,
                ledger: c(5, 5, 40),
                grown: true,
                shrunk: true
            }
        );
        assert_eq!(delta(c(2, 12, 18), Some(c(5, 10, 20))), Delta::Unchanged);
        assert_eq!(Contribution::decode(&c(1, 2, 3).encode()), Some(c(1, 2, 3)));
        assert_eq!(Contribution::decode(b"short"), None);
    }

    #[test]
    fn keys_separate_sources_and_rows() {
        let mut a = Ledger::new("sqlite:/a.db");
        let mut b = Ledger::new("sqlite:/b.db");
        let k = a.row_key(Generation::Go, b"moc.x", b"A", b"1.2.3.4");
        assert_ne!(k, b.row_key(Generation::Go, b"moc.x", b"A", b"1.2.3.4"));
        assert_ne!(k, a.row_key(Generation::Python, b"moc.x", b"A", b"1.2.3.4"));
        assert_ne!(k, a.row_key(Generation::Go, b"moc.x", b"A1", b".2.3.4"));
        assert!(k.starts_with(ROW_PREFIX.as_bytes()));
    }
}
