//! Batch import of dns.log files and directories, idempotent and
//! resumable.
//!
//! Each file is read twice: a first pass hashes its decompressed content
//! (the file's identity, see [`super::meta`]), and only if that content was
//! never imported does the second pass parse it. The second pass reads
//! exactly the bytes the first one hashed, so a file still growing is
//! imported as the prefix that was hashed. Lines go through a pipeline
//! [`Worker`], like every source's observations; a batch is written when
//! the worker says a flush is due, each time with the file's bookkeeping
//! entry (`partial`, with the offset reached) in the same atomic batch; the
//! last batch marks it `done`. A rerun after a
//! crash therefore resumes at the last committed offset — replaying the
//! header lines before it — and importing a file again is a no-op that
//! says "already imported, skipped".
//!
//! What a `--follow` run imported counts too. A file whose content a
//! follower finished is skipped. A file that starts with the part of a log
//! a follower had read — the log rotated away (gzipped or moved to an
//! archive) while the follower was stopped, which the follower reports as
//! lost — is imported from that point on; the first pass hashes each such
//! prefix on the way. The file a follower stands in is left to it.
//!
//! Directories are walked recursively in name order, taking the files
//! whose name starts with `dns` and contains `.log` (`dns.log`,
//! `dns.2024-01-01-00-00-00.log.gz`, `dns.12:00:00-13:00:00.log.gz`);
//! files named on the command line are read whatever their name.
//!
//! A damaged file (truncated or corrupt gzip, I/O error) keeps every line
//! before the damage, is reported with file:line, and the import goes on
//! with the next file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::meta::{self, FileRecord, FileState};
use super::reader::{self, LineReader};
use super::{FileParser, Warnings, ZeekStats};
use crate::pipeline::{PipelineConfig, PipelineError, Worker};
use crate::source::progress::{ITEMS_BATCH, ReadProgress};
use crate::store::Store;
use crate::vocab::value::Origin;

/// A file's device and inode.
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// How an import runs.
#[derive(Clone, Debug)]
pub struct ImportConfig {
    /// Aggregator bound (distinct keys held before a write).
    pub max_entries: usize,
    /// Longest time observations wait in memory before being written.
    pub flush_interval: Duration,
}

impl ImportConfig {
    /// The worker a Zeek import runs (no decoding, origin `zeek`).
    pub(super) fn pipeline(max_entries: usize, flush_interval: Duration) -> PipelineConfig {
        PipelineConfig {
            threads: 1,
            max_entries,
            flush_interval,
            origin: Origin::ZEEK,
            ..PipelineConfig::default()
        }
    }
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
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
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
    #[serde(rename = "zeek")]
    pub stats: ZeekStats,
    /// Decompressed bytes parsed.
    pub bytes: u64,
    pub records_written: u64,
    pub negatives_written: u64,
    pub flushes: u64,
    pub elapsed_secs: f64,
}

/// Imports files one after another into one store.
pub struct Importer<'a> {
    store: Arc<Store>,
    worker: Worker,
    report: ImportReport,
    /// What followers imported (files they finished, and the part of the
    /// file they stand in before their position).
    followed: Vec<meta::ImportedPrefix>,
    /// Counters as last handed to `progress`.
    published: ZeekStats,
    /// Told the counters' increase at every flush.
    progress: Box<dyn FnMut(&ZeekStats) + 'a>,
    /// Bytes (as stored: compressed for gzip) and lines read, for the
    /// progress display.
    read: Arc<ReadProgress>,
    started: Instant,
}

impl<'a> Importer<'a> {
    /// An importer into `store`; `progress` is told the increase of the
    /// line counters at every flush (for metrics).
    pub fn new(
        store: Arc<Store>,
        config: ImportConfig,
        progress: impl FnMut(&ZeekStats) + 'a,
    ) -> Result<Self, PipelineError> {
        let pipeline = ImportConfig::pipeline(config.max_entries, config.flush_interval);
        Ok(Importer {
            followed: meta::followed_prefixes(&store)?,
            worker: Worker::new(&pipeline, Arc::clone(&store), "pdns-store")?,
            store,
            report: ImportReport::default(),
            published: ZeekStats::default(),
            progress: Box::new(progress),
            read: Arc::default(),
            started: Instant::now(),
        })
    }

    /// How far the import has read: bytes of the files as stored
    /// (compressed bytes for gzip logs), counted during the import pass
    /// (not the hashing one), whole for files skipped; lines.
    pub fn read_progress(&self) -> Arc<ReadProgress> {
        Arc::clone(&self.read)
    }

    /// Imports a file, or every dns log below a directory.
    pub fn import_path(&mut self, path: &Path) -> Result<(), PipelineError> {
        for f in dns_logs(path) {
            self.import_file(&f)?;
        }
        Ok(())
    }

    /// Imports one file (see the module docs).
    pub fn import_file(&mut self, path: &Path) -> Result<(), PipelineError> {
        let start = self.read.bytes();
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let result = self.import_one(path);
        self.read.finish_file(start, size);
        result
    }

    fn import_one(&mut self, path: &Path) -> Result<(), PipelineError> {
        let label = path.display().to_string();
        let mut prefixes: Vec<(u64, String)> = self
            .followed
            .iter()
            .map(|p| (p.offset, String::new()))
            .collect();
        let hash = match reader::hash_content_and_prefixes(path, &mut prefixes) {
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
        // Earlier files' bookkeeping may still be on its way to the store.
        self.worker.sync()?;
        let prior: Option<FileRecord> = meta::get(&self.store, &key)?;
        // The longest start of this file a follower imported: the file
        // itself if it finished it, else a copy of the file it was reading
        // (gzipped or moved by the rotation) or a longer copy of either.
        let followed = self
            .followed
            .iter()
            .zip(&prefixes)
            .filter(|(p, (_, hash))| *hash == p.sha256)
            .map(|(p, _)| p)
            .max_by_key(|p| p.offset);
        let resume = match (&prior, followed) {
            (Some(r), _) if r.state == FileState::Done => {
                tracing::info!(
                    "{label}: already imported (same content as {}), skipped",
                    r.path
                );
                self.report.files_already_imported += 1;
                return Ok(());
            }
            (_, Some(f)) if f.offset == hash.len => {
                tracing::info!("{label}: already imported by --follow, skipped");
                self.report.files_already_imported += 1;
                return Ok(());
            }
            (_, Some(f)) if f.followed_at.is_some() && file_id(path) == f.followed_at => {
                tracing::warn!(
                    "{label}: being followed (--follow stands at line {}); its lines are the \
                     follower's, skipped",
                    f.line + 1
                );
                self.report.files_already_imported += 1;
                return Ok(());
            }
            (prior, followed) => {
                let partial = prior.as_ref().map_or(0, |r| r.offset.min(hash.len));
                let by_follow = followed.map_or(0, |f| f.offset);
                if by_follow > partial {
                    tracing::info!(
                        "{label}: --follow imported its first {} line(s); importing the rest",
                        followed.map_or(0, |f| f.line)
                    );
                    self.report.files_resumed += 1;
                    by_follow
                } else if let Some(r) = prior {
                    tracing::info!(
                        "{label}: resuming an interrupted import at line {}",
                        r.line + 1
                    );
                    self.report.files_resumed += 1;
                    partial
                } else {
                    0
                }
            }
        };
        let stream = match reader::open_counted(path, &self.read) {
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
            if line_no.is_multiple_of(ITEMS_BATCH) {
                self.read.add_items(ITEMS_BATCH);
            }
            let worker = &mut self.worker;
            file.handle(
                line,
                line_no,
                before < resume,
                &mut self.report.stats,
                &mut |response| worker.response(response),
                &mut warnings,
            );
            if self.worker.flush_due() {
                record.offset = lines.pos();
                record.line = line_no;
                self.flush(&key, &mut record)?;
            }
        }
        warnings.finish();
        self.read.add_items(line_no % ITEMS_BATCH);
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

    /// Hands what was read to the store with the file's position.
    fn flush(&mut self, key: &[u8], record: &mut FileRecord) -> Result<(), PipelineError> {
        record.updated = meta::now();
        self.worker
            .flush_with(vec![(key.to_vec(), meta::encode(record))])?;
        let delta = self.report.stats.since(&self.published);
        (self.progress)(&delta);
        self.published = self.report.stats.clone();
        Ok(())
    }

    /// Ends the import: waits until everything is written, and reports.
    pub fn finish(mut self) -> Result<ImportReport, PipelineError> {
        let summary = self.worker.finish()?;
        self.report.records_written = summary.records_written;
        self.report.negatives_written = summary.negatives_written;
        self.report.flushes = summary.flushes;
        self.report.elapsed_secs = self.started.elapsed().as_secs_f64();
        Ok(self.report)
    }
}

/// Whether a file found in a directory walk is a Zeek DNS log.
pub fn is_dns_log_name(name: &str) -> bool {
    name.starts_with("dns") && name.contains(".log")
}

/// The files a path names: itself, or every dns log below a directory (in
/// name order; see the module docs).
pub(crate) fn dns_logs(path: &Path) -> Vec<PathBuf> {
    if !path.is_dir() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    collect(path, &mut files, 0);
    if files.is_empty() {
        tracing::warn!("{}: no dns*.log* file below this directory", path.display());
    }
    files
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
