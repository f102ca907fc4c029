//! Backups: a consistent copy of a database while another process writes
//! it.
//!
//! A RocksDB checkpoint is the consistent cut (every committed batch up to
//! one point, across all column families, and none after), but only the
//! primary instance can take a sound one. A reader (a RocksDB *secondary*)
//! accepts the call and returns success, yet the checkpoint is wrong: it
//! copies the write-ahead log only as far as the secondary has read it
//! (nothing, in our trial: 1 000 of 2 000 committed keys were missing), and
//! nothing stops the writer from deleting files while they are linked.
//! RocksDB's BackupEngine has the same need for the primary.
//!
//! So the writer takes it. Every writer (`run`, `ingest`, `import-zeek`:
//! whoever opened the database with [`Store::open`](super::Store::open))
//! listens on the Unix socket `backup.sock` in the database directory.
//! [`backup`] connects and asks; the writer makes a checkpoint (memtables
//! flushed, SST files hard-linked: instant, whatever the size) under
//! `backup-staging/` in the database directory and answers with its name;
//! the client copies it to the destination as its own user and hangs up;
//! the writer then deletes the staging copy. The staging copy lives exactly
//! as long as the connection, so a client that dies leaves nothing behind,
//! and a writer that dies leaves it for the next writer to delete at open.
//! When no writer runs, `backup` opens the database itself (as the writer,
//! for the time of the copy) and asks itself the same way: one path.
//!
//! Who may ask: the socket is mode 0600, so the database's owner (and
//! root), who can read the files anyway.
//!
//! The copy is a complete database: `dump` and `serve` read it as it is,
//! and restoring is putting it where the writer expects its database (see
//! the README).

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocksdb::DB;
use rocksdb::checkpoint::Checkpoint;

use super::{Store, StoreError};

/// The socket a writer listens on, in the database directory.
pub const SOCKET: &str = "backup.sock";
/// Where a writer puts checkpoints while a client copies them.
pub const STAGING: &str = "backup-staging";
/// How long a client waits for the writer's checkpoint (it flushes the
/// memtables first, which waits out a write stall).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a request line may take to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a held connection checks whether the writer is stopping.
const POLL: Duration = Duration::from_millis(200);

/// What went wrong with a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} already exists: backup writes a new directory (choose another name)")]
    Exists(PathBuf),
    #[error("{path}: {action}: {cause}")]
    Io {
        path: PathBuf,
        action: &'static str,
        cause: std::io::Error,
    },
    #[error("the writer of {db} could not make a checkpoint: {message}")]
    Writer { db: PathBuf, message: String },
    #[error(
        "database {0} is in use by a process that does not answer backup requests (a pdns-sensor \
         from before `backup`?): stop it, or upgrade it"
    )]
    NoAnswer(PathBuf),
}

fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> BackupError {
    move |cause| BackupError::Io {
        path: path.to_path_buf(),
        action,
        cause,
    }
}

/// What a backup did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct BackupReport {
    /// Whether a running writer made the checkpoint (otherwise `backup`
    /// opened the idle database itself).
    pub from_running_writer: bool,
    pub files: u64,
    pub bytes: u64,
    pub elapsed_secs: f64,
}

/// The socket's address. Unix socket paths are limited to 107 bytes; a
/// longer one is reached through the directory's descriptor
/// (`/proc/self/fd/N/backup.sock`), which the kernel resolves like the
/// directory itself.
struct SocketAddr {
    path: PathBuf,
    /// Keeps the descriptor of the long path's directory open.
    _dir: Option<File>,
}

impl SocketAddr {
    fn new(db: &Path) -> std::io::Result<SocketAddr> {
        let direct = db.join(SOCKET);
        if direct.as_os_str().len() < 100 {
            return Ok(SocketAddr {
                path: direct,
                _dir: None,
            });
        }
        let dir = File::open(db)?;
        Ok(SocketAddr {
            path: PathBuf::from(format!("/proc/self/fd/{}/{SOCKET}", dir.as_raw_fd())),
            _dir: Some(dir),
        })
    }
}

/// A writer's side: answers backup requests on a thread of its own until
/// dropped.
pub(super) struct BackupService {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    socket: SocketAddr,
    /// The socket's plain path, to delete at the end.
    file: PathBuf,
}

impl BackupService {
    /// Deletes what a previous writer left behind and starts listening.
    /// A database that cannot have a socket still works, without backups
    /// while it is open (logged).
    pub(super) fn start(db_path: &Path, db: Arc<DB>) -> Option<BackupService> {
        let staging = db_path.join(STAGING);
        if staging.exists()
            && let Err(e) = std::fs::remove_dir_all(&staging)
        {
            tracing::warn!("could not delete {}: {e}", staging.display());
        }
        let file = db_path.join(SOCKET);
        let started = (|| {
            let socket = SocketAddr::new(db_path)?;
            // A socket left by a writer that died: we hold the database's
            // lock, so no one else listens on it.
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let listener = UnixListener::bind(&socket.path)?;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            Ok((socket, listener))
        })();
        let (socket, listener) = match started {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "backups unavailable while this process writes {}: cannot listen on {}: {e}",
                    db_path.display(),
                    file.display()
                );
                return None;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            let db_path = db_path.to_path_buf();
            std::thread::Builder::new()
                .name("pdns-backup".into())
                .spawn(move || serve(&listener, &db, &db_path, &stop))
        };
        match thread {
            Ok(thread) => Some(BackupService {
                stop,
                thread: Some(thread),
                socket,
                file,
            }),
            Err(e) => {
                tracing::warn!("backups unavailable: cannot start their thread: {e}");
                let _ = std::fs::remove_file(&file);
                None
            }
        }
    }
}

impl Drop for BackupService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept.
        drop(UnixStream::connect(&self.socket.path));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Answers requests one at a time until told to stop.
fn serve(listener: &UnixListener, db: &DB, db_path: &Path, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        match conn {
            Ok(conn) => {
                if let Err(e) = answer(conn, db, db_path, stop) {
                    tracing::warn!("backup request: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("backup socket: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// One request: a checkpoint, held until the client hangs up.
fn answer(mut conn: UnixStream, db: &DB, db_path: &Path, stop: &AtomicBool) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    conn.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut request = String::new();
    BufReader::new(&conn).take(64).read_line(&mut request)?;
    if request.trim() != "checkpoint" {
        return writeln!(conn, "error unknown request {:?}", request.trim());
    }
    let name = format!(
        "{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let staging = db_path.join(STAGING);
    let target = staging.join(&name);
    let made = std::fs::create_dir_all(&staging)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            Checkpoint::new(db)
                .and_then(|c| c.create_checkpoint(&target))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&target);
        return writeln!(conn, "error {e}");
    }
    tracing::info!("backup: checkpoint {} made for a client", target.display());
    let held = writeln!(conn, "ok {name}").and_then(|()| hold(&mut conn, stop));
    let removed = std::fs::remove_dir_all(&target);
    // Gone too once no other copy is staged.
    let _ = std::fs::remove_dir(&staging);
    held.and(removed)
}

/// Waits until the client hangs up or the writer stops.
fn hold(conn: &mut UnixStream, stop: &AtomicBool) -> std::io::Result<()> {
    conn.set_read_timeout(Some(POLL))?;
    let mut buf = [0u8; 64];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if stop.load(Ordering::Acquire) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Ok(()),
        }
    }
}

/// Copies the database at `db` to the new directory `dest`, consistently,
/// whether or not another process is writing it.
pub fn backup(db: &Path, dest: &Path) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    if !db.join("CURRENT").exists() {
        return Err(StoreError::Missing(db.to_path_buf()).into());
    }
    if dest.exists() {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent, "creating the directory"))?;
    let work = tempfile::Builder::new()
        .prefix(".pdns-backup-")
        .tempdir_in(&parent)
        .map_err(io(&parent, "creating a temporary directory"))?;
    let copy = work.path().join("db");

    let socket = SocketAddr::new(db).map_err(io(db, "opening the database directory"))?;
    // A running writer answers; otherwise open the idle database, which
    // then answers itself. A writer that is starting up holds the lock a
    // moment before it listens: ask again for a few seconds.
    let mut own: Option<Store> = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    let conn = loop {
        match UnixStream::connect(&socket.path) {
            Ok(conn) => break conn,
            Err(e) if !matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
                return Err(io(db, "connecting to the writer's backup socket")(e));
            }
            Err(_) if own.is_some() => return Err(BackupError::NoAnswer(db.to_path_buf())),
            Err(_) => match Store::open(db) {
                Ok(store) => own = Some(store),
                Err(StoreError::InUse(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(StoreError::InUse(_)) => return Err(BackupError::NoAnswer(db.to_path_buf())),
                Err(e) => return Err(e.into()),
            },
        }
    };
    let (files, bytes) = fetch(conn, db, &copy)?;
    let from_running_writer = own.is_none();
    drop(own);
    sync_dir(&copy)?;
    std::fs::rename(&copy, dest).map_err(io(dest, "moving the copy into place"))?;
    sync_dir(&parent)?;
    // The copy must open as a database of ours.
    drop(Store::open_reader(dest)?);
    Ok(BackupReport {
        from_running_writer,
        files,
        bytes,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

/// Asks for a checkpoint over `conn` and copies it to `copy`; returns the
/// files and bytes copied.
fn fetch(mut conn: UnixStream, db: &Path, copy: &Path) -> Result<(u64, u64), BackupError> {
    let to_writer = io(db, "asking the writer for a checkpoint");
    conn.set_read_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| conn.write_all(b"checkpoint\n"))
        .map_err(to_writer)?;
    let mut answer = String::new();
    BufReader::new(&conn)
        .take(4096)
        .read_line(&mut answer)
        .map_err(io(db, "waiting for the writer's checkpoint"))?;
    let answer = answer.trim_end();
    let name = match answer.split_once(' ') {
        Some(("ok", name)) if !name.contains('/') && !name.starts_with('.') => name,
        Some(("error", message)) => {
            return Err(BackupError::Writer {
                db: db.to_path_buf(),
                message: message.to_string(),
            });
        }
        _ => {
            return Err(BackupError::Writer {
                db: db.to_path_buf(),
                message: if answer.is_empty() {
                    "it hung up without answering".to_string()
                } else {
                    format!("unexpected answer {answer:?}")
                },
            });
        }
    };
    let staging = db.join(STAGING).join(name);
    let copied = copy_dir(&staging, copy);
    // Hanging up lets the writer delete its staging copy.
    drop(conn);
    copied
}

/// Copies the files of a checkpoint directory (it holds no
/// subdirectories), each synced to disk.
fn copy_dir(from: &Path, to: &Path) -> Result<(u64, u64), BackupError> {
    std::fs::create_dir(to).map_err(io(to, "creating the directory"))?;
    let mut files = 0;
    let mut bytes = 0;
    let entries = std::fs::read_dir(from).map_err(io(from, "reading the checkpoint"))?;
    for entry in entries {
        let entry = entry.map_err(io(from, "reading the checkpoint"))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        bytes += std::fs::copy(&src, &dst).map_err(io(&src, "copying"))?;
        File::open(&dst)
            .and_then(|f| f.sync_all())
            .map_err(io(&dst, "syncing"))?;
        files += 1;
    }
    Ok((files, bytes))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir, "syncing the directory"))
}
