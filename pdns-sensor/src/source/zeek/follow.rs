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
//!   are read from the copy, when it is a plain file next to the log (found
//!   as below: it starts with exactly what was read); otherwise they are
//!   lost;
//! * **missing** (between a rename and the new file): the old file keeps
//!   being read until a new one appears.
//!
//! A rotation can also hide a whole file: two rotations between two polls,
//! or several while the follower was stopped (Zeek rotates hourly; a
//! sensor down for two hours misses one file completely). So whenever a
//! rotation is noticed, the directory is searched for the files rotated
//! out of the path since the one just finished: plain files named like it
//! (`dns.*` for `dns.log`: Zeek's `dns.2024-01-01-00-00-00.log`,
//! logrotate's `dns.log.1`) whose status-change time (set by the rename)
//! is not older than that file's. They are read whole, oldest first,
//! unless their content hash says they were already imported (by this
//! follower, by another, or by `import-zeek`). Gzipped files are left to
//! `import-zeek`: a rotation that compresses writes them while we look.
//!
//! On restart the saved position is checked before it is trusted: same
//! device and inode, and the SHA-256 of the bytes before the offset equal
//! to the saved one (an inode number can be reused by a new file). The
//! bytes before the offset are replayed through the parser without being
//! imported, which also rebuilds the header state. If the file was
//! replaced while the follower was stopped, the old inode is looked for in
//! the same directory (Zeek renames within it) and its tail imported
//! first, then the files rotated after it. If the old inode is gone, a
//! plain copy of it (logrotate's `copytruncate` leaves one) is recognised
//! among the files changed since the last commit by its first `offset`
//! bytes, which hash to the saved prefix; its tail is imported from there.
//! If neither is there, the loss is reported with the line it stopped at.
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
use super::reader::{self, LineReader};
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
    /// Files found rotated away unread (see the module docs) and read.
    pub files_caught_up: usize,
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

/// A file's status-change time (seconds, nanoseconds): set by a rename.
type ChangeTime = (i64, i64);

fn change_time(md: &std::fs::Metadata) -> ChangeTime {
    (md.ctime(), md.ctime_nsec())
}

/// How long before the previous check a `copytruncate` copy may have been
/// written (a large file takes a while to copy).
const COPY_MARGIN_SECS: i64 = 60;

fn wall_clock() -> ChangeTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (
        i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
        i64::from(now.subsec_nanos()),
    )
}

/// The start of the second `epoch_secs`, as a change time.
fn since_secs(epoch_secs: u64) -> ChangeTime {
    (i64::try_from(epoch_secs).unwrap_or(i64::MAX), 0)
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
    /// When the path was last looked at (wall clock, as a change time).
    last_check: ChangeTime,
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
            last_check: wall_clock(),
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
                    let here = (md.dev(), md.ino());
                    if !self.catch_up_rotated(
                        Some(&saved),
                        since_secs(saved.updated),
                        &[here],
                        true,
                    )? {
                        self.report_lost(&saved);
                    }
                    self.current = Some(Current::fresh(file, md.dev(), md.ino(), &self.label));
                    self.report.truncations += 1;
                    self.dirty = true;
                    self.flush()?;
                }
                Err(e) => tracing::warn!("{}: {e}", self.label),
            }
            return Ok(());
        }
        // Replaced while stopped: finish the old file if it is still near,
        // then whatever was rotated out after it.
        let here = (md.dev(), md.ino());
        match self.find_old(&saved) {
            Some((old, since)) => {
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
                self.catch_up_rotated(None, since, &[here, (saved.dev, saved.ino)], true)?;
            }
            None => {
                if !self.catch_up_rotated(Some(&saved), since_secs(saved.updated), &[here], true)? {
                    self.report_lost(&saved);
                }
            }
        }
        self.current = Some(Current::fresh(file, md.dev(), md.ino(), &self.label));
        self.report.rotations += 1;
        self.dirty = true;
        self.flush()?;
        Ok(())
    }

    /// Reports the saved file as lost, and remembers what was read of it
    /// as finished: `import-zeek` of its archive then reads only the rest.
    fn report_lost(&mut self, saved: &FollowPosition) {
        self.remember_finished(Finished {
            sha256: saved.prefix_sha256.clone(),
            size: saved.offset,
            lines: saved.line,
        });
        tracing::warn!(
            "{}: the file was replaced while not followed and the previous one is not in its directory any more; \
             its lines after line {} (byte {}) were not imported — import the rotated file (plain or gzipped) with \
             `import-zeek`: it recognises the lines imported here and reads only the rest",
            self.label,
            saved.line,
            saved.offset
        );
    }

    /// A file in the followed path's directory with the saved inode, and
    /// its status-change time.
    fn find_old(&self, saved: &FollowPosition) -> Option<(PathBuf, ChangeTime)> {
        let dir = self.path.parent()?;
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .find_map(|e| {
                let md = e.metadata().ok()?;
                (md.is_file() && md.dev() == saved.dev && md.ino() == saved.ino)
                    .then(|| (e.path(), change_time(&md)))
            })
    }

    /// The plain files of the followed path's directory named like it
    /// (`dns.*` for `dns.log`), not in `skip`, whose status changed at or
    /// after `since`: oldest first.
    fn rotated_since(&self, since: ChangeTime, skip: &[(u64, u64)]) -> Vec<PathBuf> {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return Vec::new();
        };
        let name = name.as_encoded_bytes();
        let stem = name.split(|&b| b == b'.').next().unwrap_or(name);
        let prefix = [stem, b"."].concat();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut found: Vec<(ChangeTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let file_name = e.file_name();
                let bytes = file_name.as_encoded_bytes();
                if bytes == name || !bytes.starts_with(&prefix) {
                    return None;
                }
                let md = e.metadata().ok()?;
                let changed = change_time(&md);
                (md.is_file() && changed >= since && !skip.contains(&(md.dev(), md.ino())))
                    .then(|| (changed, e.path()))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, path)| path).collect()
    }

    /// Reads what nobody imported of the files rotated out of the path
    /// since `since` (see the module docs), oldest first.
    ///
    /// A file that starts with content already read — the saved position
    /// (`saved`, when the saved file was not found by inode) or a file a
    /// follower finished — is that file under another name or a longer copy
    /// of it (`copytruncate`): only what follows that prefix is read. Other
    /// files are read whole if `whole`, unless `import-zeek` has them.
    /// Returns whether a file continued `saved`.
    fn catch_up_rotated(
        &mut self,
        saved: Option<&FollowPosition>,
        since: ChangeTime,
        skip: &[(u64, u64)],
        whole: bool,
    ) -> Result<bool, PipelineError> {
        let candidates = self.rotated_since(since, skip);
        if candidates.is_empty() {
            return Ok(false);
        }
        // Every prefix known to be imported, as the position after it.
        let mut known: Vec<FollowPosition> = saved.into_iter().cloned().collect();
        let finished = self
            .finished
            .iter()
            .cloned()
            .chain(meta::followed_finished(&self.store)?);
        known.extend(finished.map(|f| FollowPosition::after(&f)));
        let saved_index = saved.is_some_and(|s| s.offset > 0).then_some(0);
        let mut continued_saved = false;
        for path in candidates {
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) => {
                    tracing::warn!("{}: {e}", path.display());
                    continue;
                }
            };
            let mut magic = [0u8; 2];
            if file.read_at(&mut magic, 0).is_ok_and(|n| n == 2) && magic == [0x1f, 0x8b] {
                continue; // compressed: left to import-zeek
            }
            let mut prefixes: Vec<(u64, String)> =
                known.iter().map(|k| (k.offset, String::new())).collect();
            let content = match reader::hash_content_and_prefixes(&path, &mut prefixes) {
                Ok(c) if c.error.is_none() => c,
                Ok(_) | Err(_) => continue,
            };
            // The longest imported prefix this file starts with.
            let start = (0..known.len())
                .filter(|&i| known[i].offset > 0 && prefixes[i].1 == known[i].prefix_sha256)
                .max_by_key(|&i| known[i].offset);
            continued_saved |= start.is_some() && start == saved_index;
            let record: Option<meta::FileRecord> =
                meta::get(&self.store, &meta::file_key(&content.sha256))?;
            if let Some(record) = record {
                tracing::info!(
                    "{}: {} was rotated away unread, and import-zeek has it ({:?}); left to it",
                    self.label,
                    path.display(),
                    record.state
                );
                continue;
            }
            match start.map(|i| &known[i]) {
                Some(k) if k.offset == content.len => continue, // all imported
                Some(k) => {
                    let k = k.clone();
                    match Current::resume(file, &k, &self.label) {
                        Ok(Ok(cur)) => {
                            tracing::info!(
                                "{}: {} continues a file already read; reading it from line {}",
                                self.label,
                                path.display(),
                                k.line + 1
                            );
                            self.current = Some(cur);
                        }
                        Ok(Err(_)) | Err(_) => continue, // changed since hashed
                    }
                }
                None if whole => {
                    let Ok(md) = file.metadata() else { continue };
                    if let Err(e) = file.seek(SeekFrom::Start(0)) {
                        tracing::warn!("{}: {e}", path.display());
                        continue;
                    }
                    tracing::info!(
                        "{}: {} was rotated away before it was read; reading it whole",
                        self.label,
                        path.display()
                    );
                    self.current = Some(Current::fresh(file, md.dev(), md.ino(), &self.label));
                }
                None => continue,
            }
            self.drain_and_finish()?;
            self.report.files_caught_up += 1;
            if let Some(done) = self.finished.last() {
                known.push(FollowPosition::after(done));
            }
        }
        Ok(continued_saved)
    }

    /// Notices a new, replaced or truncated file.
    fn check_file(&mut self) -> Result<(), PipelineError> {
        let previous_check = std::mem::replace(&mut self.last_check, wall_clock());
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
            let old = (cur.dev, cur.ino);
            let since = cur.lines.get_ref().metadata().map(|m| change_time(&m));
            self.drain_and_finish()?;
            self.report.rotations += 1;
            let new = File::open(&self.path).and_then(|file| {
                let m = file.metadata()?;
                Ok((file, m.dev(), m.ino()))
            });
            // Two rotations between two polls leave a file in between.
            if let Ok(since) = since {
                let here = new.as_ref().map_or((md.dev(), md.ino()), |n| (n.1, n.2));
                self.catch_up_rotated(None, since, &[old, here], true)?;
            }
            match new {
                Ok((file, dev, ino)) => {
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
            // `copytruncate` copied the file first: its lines written
            // after our last read are in that copy.
            let here = (md.dev(), md.ino());
            let since = (previous_check.0 - COPY_MARGIN_SECS, previous_check.1);
            self.catch_up_rotated(None, since, &[here], false)?;
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
