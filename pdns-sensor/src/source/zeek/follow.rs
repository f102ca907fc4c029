//! Following a live `dns.log` across Zeek's rotations, restartably.
//!
//! The follower polls (every `poll_interval`, at most 1 s) and imports the
//! complete lines appended since its last read, through a pipeline
//! [`Worker`]; a partial last line waits for its newline. Every
//! `flush_interval` (at most 2 s) it writes the aggregates together with
//! its read position (see [`super::meta`]) in one atomic batch, so a
//! restart — after a clean stop or a crash — resumes exactly after the last
//! line whose data is in the store: nothing is skipped and nothing counted
//! twice.
//!
//! Rotation is noticed from the path:
//!
//! * **replaced** (Zeek renames `dns.log` away and creates a new one: the
//!   path now names another inode): the old file, still open, is read to
//!   its end — a last line without newline included — and then the new one
//!   from its start. The old file's content hash joins the position's list
//!   of finished files, so importing the rotated archive later (plain or
//!   gzipped) is recognised as already imported;
//! * **truncated** in place (copytruncate): the size drops below the read
//!   position, or the byte before the position is no longer the newline it
//!   was (truncated and rewritten between two polls). Reading restarts at
//!   the beginning. Lines written between the last poll and the truncation
//!   are lost — inherent to copytruncate;
//! * **missing** (between a rename and the new file): the old file keeps
//!   being read until a new one appears.
//!
//! On restart the saved position is checked before it is trusted: same
//! device and inode, and the SHA-256 of the bytes before the offset equal
//! to the saved one (an inode number can be reused by a new file). The
//! bytes before the offset are replayed through the parser without being
//! imported, which also rebuilds the header state. If the file was
//! replaced while the follower was stopped, the old inode is looked for in
//! the same directory (Zeek renames within it) and its tail imported
//! first; if it is gone, the loss is reported with the line it stopped at.
//!
//! A follower starting with no saved position reads the file from its
//! beginning. Only plain files can be followed (Zeek writes them plain and
//! compresses on rotation).

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::import::ImportConfig;
use super::meta::{self, Finished, FollowPosition};
use super::parser::Format;
use super::reader::LineReader;
use super::{FileParser, Warnings, ZeekStats};
use crate::extract::Outcome;
use crate::pipeline::{PipelineError, Worker};
use crate::store::Store;

/// Lines read in one go before the follower checks its timers again.
const LINES_PER_ROUND: usize = 50_000;

#[derive(Clone, Debug)]
pub struct FollowConfig {
    /// Time between checks of a caught-up file (capped at 1 s).
    pub poll_interval: Duration,
    /// Longest time observations wait before being written (capped at 2 s).
    pub flush_interval: Duration,
    pub max_entries: usize,
}

impl Default for FollowConfig {
    fn default() -> Self {
        FollowConfig {
            poll_interval: Duration::from_millis(250),
            flush_interval: Duration::from_secs(1),
            max_entries: 100_000,
        }
    }
}

/// What a follow run did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FollowReport {
    #[serde(rename = "zeek")]
    pub stats: ZeekStats,
    /// Files read to their end (rotated away or truncated).
    pub files_finished: usize,
    pub rotations: usize,
    pub truncations: usize,
    /// Whether the run resumed from a saved position.
    pub resumed: bool,
    pub records_written: u64,
    pub negatives_written: u64,
    pub flushes: u64,
    pub elapsed_secs: f64,
}

/// The file being read.
struct Current {
    dev: u64,
    ino: u64,
    lines: LineReader<File>,
    parser: FileParser,
    line_no: u64,
    warnings: Warnings,
    /// Size at the last check (to notice rewrites).
    last_size: u64,
}

impl Current {
    fn fresh(file: File, dev: u64, ino: u64, label: &str) -> Current {
        Current {
            dev,
            ino,
            lines: LineReader::new(file).with_hash(),
            parser: FileParser::new(),
            line_no: 0,
            warnings: Warnings::new(label.to_string()),
            last_size: 0,
        }
    }

    /// Reopens at a saved position: replays `[0, offset)` (header state,
    /// hash) and checks it against the saved hash. `Err` gives the file
    /// back, rewound, when the position does not hold.
    fn resume(file: File, pos: &FollowPosition, label: &str) -> io::Result<Result<Current, File>> {
        let md = file.metadata()?;
        let mut cur = Current::fresh(file, md.dev(), md.ino(), label);
        let mut stats = ZeekStats::default();
        while cur.lines.pos() < pos.offset {
            let Some(line) = cur.lines.next_line(false)? else {
                break;
            };
            cur.line_no += 1;
            cur.parser.handle(
                line,
                cur.line_no,
                true,
                &mut stats,
                &mut |_| Outcome::default(),
                &mut cur.warnings,
            );
        }
        if cur.lines.pos() == pos.offset
            && cur.lines.hash_hex().as_deref() == Some(pos.prefix_sha256.as_str())
        {
            cur.last_size = md.len();
            return Ok(Ok(cur));
        }
        let mut file = cur.lines.into_inner();
        file.seek(SeekFrom::Start(0))?;
        Ok(Err(file))
    }

    /// Bytes read from the file so far (consumed plus buffered).
    fn read_pos(&self) -> u64 {
        self.lines.pos() + self.lines.buffered() as u64
    }

    fn finished(&self) -> Finished {
        Finished {
            sha256: self.lines.hash_hex().unwrap_or_default(),
            size: self.lines.pos(),
            lines: self.line_no,
        }
    }
}

/// Why following could not go on.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(
        "{0}: compressed; only a plain, growing dns.log can be followed (import archives without --follow)"
    )]
    Compressed(PathBuf),
    #[error("{0}: a directory; --follow takes the live log file (e.g. current/dns.log)")]
    Directory(PathBuf),
}

/// Follows `path` until `stop` is set, then reads what is there, writes
/// everything and returns. `progress` is told the increase of the line
/// counters at every flush (for metrics).
pub fn follow(
    store: Arc<Store>,
    path: &Path,
    config: &FollowConfig,
    stop: &AtomicBool,
    progress: impl FnMut(&ZeekStats),
) -> Result<FollowReport, FollowError> {
    if path.is_dir() {
        return Err(FollowError::Directory(path.to_path_buf()));
    }
    if let Ok(mut file) = File::open(path) {
        let mut magic = [0u8; 2];
        if io::Read::read_exact(&mut file, &mut magic).is_ok() && magic == [0x1f, 0x8b] {
            return Err(FollowError::Compressed(path.to_path_buf()));
        }
    }
    let mut f = Follower::new(store, path, config, progress)?;
    f.start()?;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        f.check_file()?;
        let progressed = f.read_available()?;
        if f.dirty && f.worker.flush_due() {
            f.flush()?;
        }
        if stopping {
            while f.read_available()? {}
            f.flush()?;
            break;
        }
        if !progressed {
            // Sleep in short steps so a stop request is served promptly.
            let until = Instant::now() + f.config.poll_interval;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20).min(f.config.poll_interval));
            }
        }
    }
    let summary = f.worker.finish()?;
    f.report.records_written = summary.records_written;
    f.report.negatives_written = summary.negatives_written;
    f.report.flushes = summary.flushes;
    f.report.elapsed_secs = f.started.elapsed().as_secs_f64();
    Ok(f.report)
}

struct Follower<P> {
    store: Arc<Store>,
    worker: Worker,
    path: PathBuf,
    label: String,
    key: Vec<u8>,
    config: FollowConfig,
    current: Option<Current>,
    finished: Vec<Finished>,
    report: FollowReport,
    /// Counters as last handed to `progress`.
    published: ZeekStats,
    progress: P,
    dirty: bool,
    started: Instant,
}

impl<P: FnMut(&ZeekStats)> Follower<P> {
    fn new(
        store: Arc<Store>,
        path: &Path,
        config: &FollowConfig,
        progress: P,
    ) -> Result<Self, PipelineError> {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut config = config.clone();
        config.poll_interval = config
            .poll_interval
            .clamp(Duration::from_millis(1), Duration::from_secs(1));
        config.flush_interval = config.flush_interval.min(Duration::from_secs(2));
        let pipeline = ImportConfig::pipeline(config.max_entries, config.flush_interval);
        Ok(Follower {
            worker: Worker::new(&pipeline, Arc::clone(&store), "pdns-store")?,
            store,
            key: meta::follow_key(&absolute.to_string_lossy()),
            label: path.display().to_string(),
            path: absolute,
            config,
            current: None,
            finished: Vec::new(),
            report: FollowReport::default(),
            published: ZeekStats::default(),
            progress,
            dirty: false,
            started: Instant::now(),
        })
    }

    /// Picks up from the saved position (see the module docs).
    fn start(&mut self) -> Result<(), PipelineError> {
        let saved: Option<FollowPosition> = meta::get(&self.store, &self.key)?;
        let Some(saved) = saved else {
            tracing::info!(
                "{}: following from the beginning (no saved position)",
                self.label
            );
            return Ok(());
        };
        self.finished = saved.finished.clone();
        if saved.ino == 0 {
            return Ok(());
        }
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("{}: {e}; waiting for it", self.label);
                return Ok(());
            }
        };
        let md = match file.metadata() {
            Ok(md) => md,
            Err(e) => {
                tracing::warn!("{}: {e}", self.label);
                return Ok(());
            }
        };
        if (md.dev(), md.ino()) == (saved.dev, saved.ino) {
            match Current::resume(file, &saved, &self.label) {
                Ok(Ok(cur)) => {
                    tracing::info!("{}: resuming at line {}", self.label, saved.line + 1);
                    self.report.resumed = true;
                    self.current = Some(cur);
                }
                Ok(Err(file)) => {
                    tracing::warn!(
                        "{}: the file no longer starts with what was imported (rewritten or truncated while stopped); reading it from the beginning",
                        self.label
                    );
                    self.current = Some(Current::fresh(file, md.dev(), md.ino(), &self.label));
                    self.dirty = true;
                }
                Err(e) => tracing::warn!("{}: {e}", self.label),
            }
            return Ok(());
        }
        // Replaced while stopped: finish the old file if it is still near.
        match self.find_old(&saved) {
            Some(old) => {
                tracing::info!(
                    "{}: rotated while stopped; reading the rest of the previous file ({}) from line {}",
                    self.label,
                    old.display(),
                    saved.line + 1
                );
                let resumed =
                    File::open(&old).and_then(|f| Current::resume(f, &saved, &self.label));
                match resumed {
                    Ok(Ok(cur)) => {
                        self.current = Some(cur);
                        self.drain_and_finish()?;
                    }
                    _ => self.report_lost(&saved),
                }
            }
            None => self.report_lost(&saved),
        }
        self.current = Some(Current::fresh(file, md.dev(), md.ino(), &self.label));
        self.report.rotations += 1;
        self.dirty = true;
        self.flush()?;
        Ok(())
    }

    fn report_lost(&self, saved: &FollowPosition) {
        tracing::warn!(
            "{}: the file was replaced while not followed and the previous one is not in its directory any more; \
             its lines after line {} (byte {}) were not imported — import the rotated file with `import-zeek` if it still exists \
             (lines before that point would then be counted again)",
            self.label,
            saved.line,
            saved.offset
        );
    }

    /// A file in the followed path's directory with the saved inode.
    fn find_old(&self, saved: &FollowPosition) -> Option<PathBuf> {
        let dir = self.path.parent()?;
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .find_map(|e| {
                let md = e.metadata().ok()?;
                (md.is_file() && md.dev() == saved.dev && md.ino() == saved.ino).then(|| e.path())
            })
    }

    /// Notices a new, replaced or truncated file.
    fn check_file(&mut self) -> Result<(), PipelineError> {
        let md = match std::fs::metadata(&self.path) {
            Ok(md) => md,
            Err(_) => return Ok(()), // missing: keep reading what is open
        };
        let Some(cur) = &mut self.current else {
            match File::open(&self.path) {
                Ok(file) => {
                    if let Ok(m) = file.metadata() {
                        tracing::info!("{}: found, reading", self.label);
                        self.current = Some(Current::fresh(file, m.dev(), m.ino(), &self.label));
                        self.dirty = true;
                    }
                }
                Err(e) => tracing::debug!("{}: {e}", self.label),
            }
            return Ok(());
        };
        if (md.dev(), md.ino()) != (cur.dev, cur.ino) {
            self.drain_and_finish()?;
            self.report.rotations += 1;
            match File::open(&self.path) {
                Ok(file) => {
                    let m = file.metadata().ok();
                    let (dev, ino) = m.map_or((md.dev(), md.ino()), |m| (m.dev(), m.ino()));
                    tracing::info!("{}: rotated; reading the new file", self.label);
                    self.current = Some(Current::fresh(file, dev, ino, &self.label));
                }
                Err(e) => tracing::warn!(
                    "{}: rotated, but the new file cannot be opened: {e}",
                    self.label
                ),
            }
            self.dirty = true;
            return self.flush();
        }
        let size = cur.lines.get_ref().metadata().map_or(md.len(), |m| m.len());
        let mut truncated = size < cur.read_pos();
        if !truncated && size != cur.last_size && cur.lines.pos() > 0 {
            let mut byte = [0u8; 1];
            truncated = matches!(cur.lines.get_ref().read_at(&mut byte, cur.lines.pos() - 1), Ok(1) if byte[0] != b'\n');
        }
        cur.last_size = size;
        if truncated {
            tracing::warn!(
                "{}: truncated after line {}; reading it again from the beginning",
                self.label,
                cur.line_no
            );
            cur.warnings.finish();
            let done = cur.finished();
            self.remember_finished(done);
            self.report.truncations += 1;
            self.report.files_finished += 1;
            let Some(old) = self.current.take() else {
                return Ok(());
            };
            let mut file = old.lines.into_inner();
            if let Err(e) = file.seek(SeekFrom::Start(0)) {
                tracing::warn!("{}: {e}", self.label);
                return Ok(());
            }
            self.current = Some(Current::fresh(file, md.dev(), md.ino(), &self.label));
            self.dirty = true;
            return self.flush();
        }
        Ok(())
    }

    /// Reads the current file to its very end (a rotated file: its last
    /// line needs no newline) and records it as finished.
    fn drain_and_finish(&mut self) -> Result<(), PipelineError> {
        while self.read_lines(true)? {}
        if let Some(mut cur) = self.current.take() {
            cur.warnings.finish();
            let done = cur.finished();
            self.remember_finished(done);
            self.report.files_finished += 1;
        }
        self.dirty = true;
        Ok(())
    }

    fn remember_finished(&mut self, done: Finished) {
        if done.size == 0 {
            return;
        }
        self.finished.push(done);
        let excess = self.finished.len().saturating_sub(meta::FINISHED_KEPT);
        self.finished.drain(..excess);
    }

    /// Imports the complete lines available now; whether any was read.
    fn read_available(&mut self) -> Result<bool, PipelineError> {
        self.read_lines(false)
    }

    fn read_lines(&mut self, take_partial: bool) -> Result<bool, PipelineError> {
        let Some(cur) = &mut self.current else {
            return Ok(false);
        };
        let mut progressed = false;
        for _ in 0..LINES_PER_ROUND {
            let line = match cur.lines.next_line(take_partial) {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("{}: read error: {e}", self.label);
                    break;
                }
            };
            cur.line_no += 1;
            progressed = true;
            let worker = &mut self.worker;
            cur.parser.handle(
                line,
                cur.line_no,
                false,
                &mut self.report.stats,
                &mut |response| worker.response(response),
                &mut cur.warnings,
            );
            if self.worker.is_full() {
                break;
            }
        }
        if progressed {
            self.dirty = true;
            if self.worker.is_full() {
                self.flush()?;
            }
        }
        Ok(progressed)
    }

    fn position(&self) -> FollowPosition {
        let mut pos = FollowPosition {
            path: self.path.to_string_lossy().into_owned(),
            finished: self.finished.clone(),
            updated: meta::now(),
            ..FollowPosition::default()
        };
        if let Some(cur) = &self.current {
            pos.dev = cur.dev;
            pos.ino = cur.ino;
            pos.offset = cur.lines.pos();
            pos.line = cur.line_no;
            pos.prefix_sha256 = cur.lines.hash_hex().unwrap_or_default();
            pos.format = cur
                .parser
                .parser
                .format()
                .map(Format::as_str)
                .unwrap_or_default()
                .to_string();
            pos.header = cur
                .parser
                .parser
                .header_lines()
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
        }
        pos
    }

    /// Hands the aggregates and the position to the store in one batch.
    fn flush(&mut self) -> Result<(), PipelineError> {
        let position = self.position();
        self.worker
            .flush_with(vec![(self.key.clone(), meta::encode(&position))])?;
        self.dirty = false;
        let delta = self.report.stats.since(&self.published);
        (self.progress)(&delta);
        self.published = self.report.stats.clone();
        Ok(())
    }
}
