//! Runs a child process and measures it: wall time, CPU time and peak RSS.
//!
//! Peak RSS is only available from the kernel's accounting when the child is
//! reaped, so the child is reaped with `wait4(2)` directly instead of
//! `Child::wait`, which discards the rusage.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What a finished child cost.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Exit code, or `None` if killed by a signal.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub wall: Duration,
    pub user_secs: f64,
    pub sys_secs: f64,
    /// Peak resident set size in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    /// Last lines of the child's stderr (for failure reports).
    pub stderr_tail: String,
}

impl Measured {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    pub fn describe_failure(&self) -> String {
        let how = match (self.exit_code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => "unknown status".into(),
        };
        let tail = self.stderr_tail.trim();
        if tail.is_empty() {
            how
        } else {
            format!("{how}: {tail}")
        }
    }
}

/// Runs `cmd` to completion with stdout/stderr sent to files in `log_dir`.
pub fn run_measured(mut cmd: Command, log_dir: &Path) -> Result<Measured> {
    let out = File::create(log_dir.join("stdout.log"))?;
    let mut err = File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(log_dir.join("stderr.log"))?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err.try_clone()?);
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is a valid out-parameter for wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = loop {
        // SAFETY: pid is our own unreaped child; pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    let wall = start.elapsed();
    if reaped != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let mut tail = String::new();
    let len = err.seek(SeekFrom::End(0))?;
    err.seek(SeekFrom::Start(len.saturating_sub(2000)))?;
    err.read_to_string(&mut tail).ok();
    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
    Ok(Measured {
        exit_code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        wall,
        user_secs: tv(usage.ru_utime),
        sys_secs: tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
        stderr_tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

/// Total size of the regular files under `dir` (what the store occupies).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "head -c 20000000 /dev/zero | tail -c 1 >/dev/null; echo oops >&2; exit 3",
        ]);
        let m = run_measured(c, dir.path()).unwrap();
        assert_eq!(m.exit_code, Some(3));
        assert!(!m.success());
        assert!(m.max_rss_kib > 0);
        assert!(m.describe_failure().contains("oops"));
    }

    #[test]
    fn sizes_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 5]).unwrap();
        assert_eq!(dir_bytes(dir.path()), 15);
    }
}
