//! Bookkeeping entries: what was imported, and where a follower stands.
//!
//! Both kinds live in the store's bookkeeping space and are written in the
//! same atomic batch as the data they describe (`Store::write_with_meta`),
//! so after a crash the records and the position can never disagree: either
//! both the data of a batch and the position after it are there, or
//! neither.
//!
//! * `zeek/file/<sha256>`: one per imported file, keyed by the SHA-256 of
//!   its decompressed content. `partial` while an import is under way (with
//!   the byte offset and line reached, so a rerun resumes there), `done`
//!   when the whole file is in. Keyed by content, not path: the same log
//!   renamed, moved, or gzipped by Zeek's rotation is recognised, and two
//!   different files at one path are not confused.
//! * `zeek/follow/<absolute path>`: a follower's read position — device and
//!   inode of the file, byte offset and line after the last line imported,
//!   SHA-256 of the bytes before the offset (to tell the same file from a
//!   new one that reuses the inode), the header state as header lines, and
//!   the hashes of the last files it finished following (a rotated log the
//!   follower read to the end counts as imported for a later batch import).
//!
//! Values are JSON, readable with any RocksDB tool.

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

pub const FILE_PREFIX: &str = "zeek/file/";
pub const FOLLOW_PREFIX: &str = "zeek/follow/";
/// Finished files a follow position remembers.
pub const FINISHED_KEPT: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    Partial,
    Done,
}

/// The bookkeeping of one imported file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub state: FileState,
    /// Path it was imported from (the last time), for people.
    pub path: String,
    /// Decompressed bytes imported (the resume offset while partial).
    pub offset: u64,
    /// Lines read up to `offset` (header lines included).
    pub line: u64,
    /// Decompressed size of the whole file.
    pub size: u64,
    /// Wall-clock time of the write, epoch seconds.
    pub updated: u64,
}

pub fn file_key(sha256: &str) -> Vec<u8> {
    format!("{FILE_PREFIX}{sha256}").into_bytes()
}

/// A file a follower is done with, and what it read of it: all of it, but
/// for a file rotated away while the follower was stopped (its part before
/// the saved position).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub sha256: String,
    pub size: u64,
    pub lines: u64,
}

/// A follower's persisted read position.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowPosition {
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    /// Bytes consumed: the next line starts here.
    pub offset: u64,
    /// Lines consumed (header lines included).
    pub line: u64,
    /// SHA-256 of the file's bytes `[0, offset)`.
    pub prefix_sha256: String,
    /// `tsv`, `json`, or empty when no line was seen yet.
    pub format: String,
    /// Header lines rebuilding the TSV header state.
    pub header: Vec<String>,
    pub finished: Vec<Finished>,
    pub updated: u64,
}

impl FollowPosition {
    /// The position at the end of what a follower read of `done`.
    pub fn after(done: &Finished) -> FollowPosition {
        FollowPosition {
            offset: done.size,
            line: done.lines,
            prefix_sha256: done.sha256.clone(),
            ..FollowPosition::default()
        }
    }
}

pub fn follow_key(path: &str) -> Vec<u8> {
    format!("{FOLLOW_PREFIX}{path}").into_bytes()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Reads a bookkeeping entry; an entry that does not decode is treated as
/// absent (and logged), never as an error that blocks imports.
pub fn get<T: for<'de> Deserialize<'de>>(
    store: &Store,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    let Some(raw) = store.meta_get(key)? else {
        return Ok(None);
    };
    match serde_json::from_slice(&raw) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            tracing::warn!(
                "ignoring unreadable bookkeeping entry {}: {e}",
                String::from_utf8_lossy(key)
            );
            Ok(None)
        }
    }
}

/// Content a follower imported: its first `offset` bytes hash to
/// `sha256`, and hold `line` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedPrefix {
    pub offset: u64,
    pub sha256: String,
    pub line: u64,
    /// The file's device and inode, when it is where a follower stands (it
    /// will go on reading it), not a file it finished.
    pub followed_at: Option<(u64, u64)>,
}

/// Every prefix of a file a follower imported: the files it finished
/// (whole) and the part before each saved position.
pub fn followed_prefixes(store: &Store) -> Result<Vec<ImportedPrefix>, StoreError> {
    let mut out = Vec::new();
    for (_, raw) in store.meta_scan(FOLLOW_PREFIX.as_bytes())? {
        let Ok(pos) = serde_json::from_slice::<FollowPosition>(&raw) else {
            continue;
        };
        if pos.offset > 0 {
            out.push(ImportedPrefix {
                offset: pos.offset,
                sha256: pos.prefix_sha256,
                line: pos.line,
                followed_at: Some((pos.dev, pos.ino)),
            });
        }
        out.extend(pos.finished.into_iter().map(|f| ImportedPrefix {
            offset: f.size,
            sha256: f.sha256,
            line: f.lines,
            followed_at: None,
        }));
    }
    Ok(out)
}

/// Every file a follower finished (of every followed path).
pub fn followed_finished(store: &Store) -> Result<Vec<Finished>, StoreError> {
    let mut out = Vec::new();
    for (_, raw) in store.meta_scan(FOLLOW_PREFIX.as_bytes())? {
        if let Ok(pos) = serde_json::from_slice::<FollowPosition>(&raw) {
            out.extend(pos.finished);
        }
    }
    Ok(out)
}
