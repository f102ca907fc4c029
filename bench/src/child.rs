//! Runs a child process and measures it: wall time, CPU time and peak RSS.
//!
//! The child is reaped with `wait4(2)` directly instead of `Child::wait`,
//! which discards the rusage (CPU times). Peak RSS is *not* taken from
//! `ru_maxrss`: a spawned child starts life as a copy of this process, and
//! the kernel keeps that copy's high-water mark across `exec`, so a small
//! peer started by a large harness would report the harness's size. The
//! child's own `VmHWM` (reset by `exec`) is sampled from `/proc` instead
//! while it runs; `ru_maxrss` is the fallback if no sample was taken.

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
pub fn run_measured(cmd: Command, log_dir: &Path) -> Result<Measured> {
    spawn_measured(cmd, log_dir)?.wait()
}

/// A child started by [`spawn_measured`], measured until [`Running::wait`]
/// reaps it; killed and reaped if dropped before.
pub struct Running {
    pid: libc::pid_t,
    start: Instant,
    sampler: Option<HwmSampler>,
    err: File,
    reaped: bool,
}

/// Starts `cmd` (stdout/stderr sent to files in `log_dir`) for a caller
/// that has work to do while it runs: signal it, then [`Running::wait`].
pub fn spawn_measured(mut cmd: Command, log_dir: &Path) -> Result<Running> {
    let out = File::create(log_dir.join("stdout.log"))?;
    let err = File::options()
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
    Ok(Running {
        pid: child.id() as libc::pid_t,
        start,
        sampler: Some(HwmSampler::start(child.id())),
        err,
        reaped: false,
    })
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: libc::c_int) -> Result<()> {
        // SAFETY: kill(2) with our own unreaped child's pid.
        if unsafe { libc::kill(self.pid, signal) } != 0 {
            bail!(
                "signalling pid {}: {}",
                self.pid,
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// The last lines the child wrote to stderr so far.
    pub fn stderr_tail(&mut self) -> String {
        let mut tail = String::new();
        let Ok(len) = self.err.seek(SeekFrom::End(0)) else {
            return tail;
        };
        if self
            .err
            .seek(SeekFrom::Start(len.saturating_sub(2000)))
            .is_ok()
        {
            self.err.read_to_string(&mut tail).ok();
        }
        let tail: Vec<&str> = tail.lines().rev().take(5).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// [`Running::wait`], killing the child (SIGKILL) if it has not exited
    /// within `limit`.
    pub fn wait_within(self, limit: Duration) -> Result<Measured> {
        let pid = self.pid;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let watchdog = std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while !flag.load(std::sync::atomic::Ordering::Acquire) {
                if Instant::now() >= deadline {
                    // SAFETY: kill(2); the child is not reaped yet (the
                    // flag is set right after it is).
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let measured = self.wait();
        done.store(true, std::sync::atomic::Ordering::Release);
        let _ = watchdog.join();
        measured
    }

    /// Waits for the child to exit and says what it cost.
    pub fn wait(mut self) -> Result<Measured> {
        let mut status: libc::c_int = 0;
        // SAFETY: zeroed rusage is a valid out-parameter for wait4.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = loop {
            // SAFETY: pid is our own unreaped child; pointers are valid for the call.
            let r = unsafe { libc::wait4(self.pid, &mut status, 0, &mut usage) };
            if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            }
            break r;
        };
        let wall = self.start.elapsed();
        let sampled_kib = self.sampler.take().and_then(HwmSampler::stop);
        if reaped != self.pid {
            bail!("wait4 failed: {}", std::io::Error::last_os_error());
        }
        self.reaped = true;
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Ok(Measured {
            exit_code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
            signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
            wall,
            user_secs: tv(usage.ru_utime),
            sys_secs: tv(usage.ru_stime),
            max_rss_kib: sampled_kib.unwrap_or(usage.ru_maxrss.max(0) as u64),
            stderr_tail: self.stderr_tail(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // SAFETY: our own child, not yet reaped: kill it and reap it so it
        // neither outlives the harness nor stays a zombie.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
        if let Some(s) = self.sampler.take() {
            s.stop();
        }
    }
}

/// Samples a process's `VmHWM` (peak resident set of its current program)
/// every few milliseconds until stopped. `VmHWM` only grows, so the last
/// sample before the process exits carries its peak, short of what it
/// allocates in its final milliseconds.
struct HwmSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<u64>>,
}

impl HwmSampler {
    fn start(pid: u32) -> HwmSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            let mut peak = None;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(kib) = std::fs::read_to_string(&path)
                    .ok()
                    .as_deref()
                    .and_then(vm_hwm_kib)
                {
                    peak = peak.max(Some(kib));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        HwmSampler { stop, thread }
    }

    /// Stops sampling; the largest `VmHWM` seen, in KiB.
    fn stop(self) -> Option<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// The `VmHWM:` line of a `/proc/PID/status` text, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
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
    fn peak_rss_is_the_childs_own_not_the_harness_size() {
        // The harness holds 256 MiB, touched, while it spawns children.
        let ballast = vec![1u8; 256 << 20];
        let dir = tempfile::tempdir().unwrap();
        let mut small = Command::new("sleep");
        small.arg("0.2");
        let m = run_measured(small, dir.path()).unwrap();
        assert!(
            m.max_rss_kib < 32 << 10,
            "sleep peaked at {} KiB",
            m.max_rss_kib
        );
        let mut big = Command::new("python3");
        big.args([
            "-c",
            "import time; x = bytearray(96 << 20); time.sleep(0.2)",
        ]);
        let m = run_measured(big, dir.path()).unwrap();
        assert!(m.success());
        assert!(
            (96 << 10..200 << 10).contains(&m.max_rss_kib),
            "python peaked at {} KiB",
            m.max_rss_kib
        );
        assert_eq!(ballast.iter().map(|&b| b as u64).sum::<u64>(), 256 << 20);
        assert_eq!(
            vm_hwm_kib("Name:\tx\nVmPeak:\t  10 kB\nVmHWM:\t    1234 kB\n"),
            Some(1234)
        );
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
