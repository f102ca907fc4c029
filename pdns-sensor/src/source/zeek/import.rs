//! Batch import of dns.log files and directories, idempotent and
//! resumable.
//!
//! Each file is read twice: a first pass hashes its decompressed content
//! (the file's identity, see [`super::meta`]), and only if that content was
//! never imported does the second pass parse it. The second pass reads
//! exactly the bytes the first one hashed, so a file still growing is
//! imported as the prefix that was hashed. Aggregates are written when the
//! aggregator fills up or the flush interval passes, each time with the
//! file's bookkeeping entry (`partial`, with the offset reached) in the
//! same atomic batch; the last batch marks it `done`. A rerun after a
//! crash therefore resumes at the last committed offset — replaying the
//! header lines before it — and importing a file again is a no-op that
//! says "already imported, skipped".
//!
//! Directories are walked recursively in name order, taking the files
//! whose name starts with `dns` and contains `.log` (`dns.log`,
//! `dns.2024-01-01-00-00-00.log.gz`, `dns.12:00:00-13:00:00.log.gz`);
//! files named on the command line are read whatever their name.
//!
//! A damaged file (truncated or corrupt gzip, I/O error) keeps every line
//! before the damage, is reported with file:line, and the import goes on
//! with the next file.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::meta::{self, FileRecord, FileState};
use super::reader::{self, LineReader};
use super::{FileParser, Warnings, ZeekStats};
use crate::aggregate::Aggregator;
use crate::metrics::METRICS;
use crate::store::value::origin;
use crate::store::{Store, StoreError};

/// How an import runs.
#[derive(Clone, Debug)]
pub struct ImportConfig {
    /// Aggregator bound (distinct keys held before a write).
    pub max_entries: usize,
    /// Longest time observations wait in memory before being written.
    pub flush_interval: Duration,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            max_entries: 100_000,
            flush_interval: Duration::from_secs(5),
        }
    }
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Files read to their end (including resumed ones).
    pub files_imported: usize,
    /// Of those, files a previous run had left partial.
    pub files_resumed: usize,
    /// Files whose content was imported before: skipped.
    pub files_already_imported: usize,
    pub files_empty: usize,
    /// Files that could not be opened or decompressed at all.
    pub files_failed: usize,
    /// Files cut short by damage (lines before it kept).
    pub files_damaged: usize,
    pub stats: ZeekStats,
    /// Decompressed bytes parsed.
    pub bytes: u64,
    pub records_written: u64,
    pub negatives_written: u64,
    pub flushes: u64,
    pub elapsed: Duration,
}

/// Imports files one after another into one store.
pub struct Importer<'a> {
    store: &'a Store,
    config: ImportConfig,
    agg: Aggregator,
    report: ImportReport,
    /// Content hashes of files a follower read to the end.
    followed: HashSet<String>,
    published: ZeekStats,
    last_flush: Instant,
    started: Instant,
}

impl<'a> Importer<'a> {
    pub fn new(store: &'a Store, config: ImportConfig) -> Result<Self, StoreError> {
        Ok(Importer {
            store,
            agg: Aggregator::new(config.max_entries, origin::ZEEK),
            config,
            report: ImportReport::default(),
            followed: meta::followed_files(store)?,
            published: ZeekStats::default(),
            last_flush: Instant::now(),
            started: Instant::now(),
        })
    }

    /// Imports a file, or every dns log below a directory.
    pub fn import_path(&mut self, path: &Path) -> Result<(), StoreError> {
        if path.is_dir() {
            let mut files = Vec::new();
            collect(path, &mut files, 0);
            if files.is_empty() {
                tracing::warn!("{}: no dns*.log* file below this directory", path.display());
            }
            for f in files {
                self.import_file(&f)?;
            }
            Ok(())
        } else {
            self.import_file(path)
        }
    }

    /// Imports one file (see the module docs).
    pub fn import_file(&mut self, path: &Path) -> Result<(), StoreError> {
        let label = path.display().to_string();
        let hash = match reader::hash_content(path) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("{label}: {e}");
                self.report.files_failed += 1;
                return Ok(());
            }
        };
        if hash.len == 0 {
            match hash.error {
                Some(e) => {
                    tracing::error!("{label}: {e}");
                    self.report.files_failed += 1;
                }
                None => {
                    tracing::info!("{label}: empty, nothing to import");
                    self.report.files_empty += 1;
                }
            }
            return Ok(());
        }
        let key = meta::file_key(&hash.sha256);
        let prior: Option<FileRecord> = meta::get(self.store, &key)?;
        let resume = match &prior {
            Some(r) if r.state == FileState::Done => {
                tracing::info!(
                    "{label}: already imported (same content as {}), skipped",
                    r.path
                );
                self.report.files_already_imported += 1;
                return Ok(());
            }
            _ if self.followed.contains(&hash.sha256) => {
                tracing::info!("{label}: already imported by --follow, skipped");
                self.report.files_already_imported += 1;
                return Ok(());
            }
            Some(r) => {
                tracing::info!(
                    "{label}: resuming an interrupted import at line {}",
                    r.line + 1
                );
                self.report.files_resumed += 1;
                r.offset.min(hash.len)
            }
            None => 0,
        };
        let stream = match reader::open(path) {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::error!("{label}: {e}");
                self.report.files_failed += 1;
                return Ok(());
            }
        };
        let mut lines = LineReader::new(stream.take(hash.len));
        let mut file = FileParser::new();
        let mut warnings = Warnings::new(label.clone());
        let mut line_no = 0u64;
        let mut record = FileRecord {
            state: FileState::Partial,
            path: label.clone(),
            offset: 0,
            line: 0,
            size: hash.len,
            updated: 0,
        };
        let mut read_error = None;
        loop {
            let before = lines.pos();
            let line = match lines.next_line(true) {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            line_no += 1;
            let observe = before >= resume;
            file.handle(
                line,
                line_no,
                observe,
                &mut self.report.stats,
                &mut self.agg,
                &mut warnings,
            );
            if self.agg.is_full() || self.last_flush.elapsed() >= self.config.flush_interval {
                record.offset = lines.pos();
                record.line = line_no;
                self.flush(&key, &mut record)?;
            }
        }
        warnings.finish();
        self.report.bytes += lines.pos().saturating_sub(resume);
        record.offset = lines.pos();
        record.line = line_no;
        if let Some(e) = read_error {
            // The file changed between the two passes: keep what was read,
            // as partial, so a rerun resumes (or re-hashes a new content).
            tracing::error!(
                "{label}:{}: read error: {e}; kept the lines before it",
                line_no + 1
            );
            self.flush(&key, &mut record)?;
            self.report.files_damaged += 1;
            return Ok(());
        }
        record.state = FileState::Done;
        self.flush(&key, &mut record)?;
        self.report.files_imported += 1;
        if let Some(e) = hash.error {
            tracing::warn!(
                "{label}:{}: {} ({e}); kept the {line_no} line(s) before it",
                line_no + 1,
                match hash.compression {
                    reader::Compression::Gzip => "truncated or corrupt gzip stream",
                    reader::Compression::Plain => "read error",
                }
            );
            self.report.files_damaged += 1;
        }
        Ok(())
    }

    fn flush(&mut self, key: &[u8], record: &mut FileRecord) -> Result<(), StoreError> {
        record.updated = meta::now();
        let aggregates = self.agg.take();
        let written = self
            .store
            .write_with_meta(&aggregates, key, &meta::encode(record))?;
        self.report.records_written += written.records as u64;
        self.report.negatives_written += written.negatives as u64;
        self.report.flushes += 1;
        self.last_flush = Instant::now();
        let delta = self.report.stats.since(&self.published);
        METRICS.add_zeek(&delta);
        self.published = self.report.stats.clone();
        Ok(())
    }

    /// Ends the import (everything is already written) and reports.
    pub fn finish(mut self) -> ImportReport {
        self.report.elapsed = self.started.elapsed();
        self.report
    }
}

/// Whether a file found in a directory walk is a Zeek DNS log.
pub fn is_dns_log_name(name: &str) -> bool {
    name.starts_with("dns") && name.contains(".log")
}

/// Directory levels walked (a bound against symlink loops).
const MAX_DEPTH: usize = 16;

fn collect(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > MAX_DEPTH {
        tracing::warn!(
            "{}: deeper than {MAX_DEPTH} levels, not walked",
            dir.display()
        );
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("{}: {e}", dir.display());
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect(&p, out, depth + 1);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_dns_log_name)
        {
            out.push(p);
        }
    }
}
