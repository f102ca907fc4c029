//! balboa's two processes in its namespace: `balboa-rocksdb` (the
//! backend) and `balboa serve` (GraphQL frontend plus one socket feeder in
//! gamelinux format), started until both listen, watched (a dead one ends
//! any wait at once, with the end of its output), measured (peak RSS) and
//! stopped. Each runs under a [`Proc`] guard, so no error path leaves one
//! behind.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::http::NsHttp;
use super::{BACKEND_PORT, FRONTEND_PORT, wait_until};
use crate::netns::Netns;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Both balboa processes. Fields drop in order: the frontend stops first.
pub(super) struct Balboa {
    frontend: Proc,
    backend: Proc,
    /// The feeder's unix socket.
    pub(super) socket: PathBuf,
}

impl Balboa {
    /// Starts the backend on `db_dir` and the frontend inside `ns`, with
    /// their configuration and logs in `dir`, and waits until both listen
    /// (and the feeder socket exists).
    pub(super) fn start(ns: &Netns, http: &NsHttp, dir: &Path, db_dir: &Path) -> Result<Balboa> {
        let backend = Proc::spawn(
            ns.cmd("balboa-rocksdb").arg("-d").arg(db_dir).args([
                "-l",
                "127.0.0.1",
                "-p",
                &BACKEND_PORT.to_string(),
            ]),
            "balboa-rocksdb",
            dir,
        )?;
        wait_until(READY_TIMEOUT, "balboa-rocksdb to listen", || {
            backend.alive()?;
            Ok(http.connects(BACKEND_PORT))
        })?;
        let socket = dir.join("feed.sock");
        let feeders = dir.join("feeders.yaml");
        fs::write(
            &feeders,
            format!(
                "feeder:\n    - name: bench\n      type: socket\n      path: {}\n      input_format: gamelinux\n",
                socket.display()
            ),
        )?;
        let frontend = Proc::spawn(
            ns.cmd("balboa")
                .args(["serve", "-H", &format!("127.0.0.1:{BACKEND_PORT}"), "-f"])
                .arg(&feeders)
                .arg("-l")
                .arg(dir.join("balboa.log"))
                .args(["-p", &FRONTEND_PORT.to_string()]),
            "balboa",
            dir,
        )?;
        let balboa = Balboa {
            frontend,
            backend,
            socket,
        };
        wait_until(READY_TIMEOUT, "balboa serve to listen", || {
            balboa.alive()?;
            Ok(balboa.socket.exists() && http.connects(FRONTEND_PORT))
        })?;
        Ok(balboa)
    }

    /// An error (with the end of its output) if either process has exited.
    pub(super) fn alive(&self) -> Result<()> {
        self.backend.alive()?;
        self.frontend.alive()
    }

    /// Backend + frontend peak RSS (VmHWM), MiB.
    pub(super) fn peak_rss_mib(&self) -> Option<f64> {
        [&self.backend, &self.frontend]
            .iter()
            .map(|p| p.vm_hwm_kib())
            .sum::<Option<u64>>()
            .map(|k| k as f64 / 1024.0)
    }

    /// Stops the frontend, then the backend.
    pub(super) fn stop(&self) {
        self.frontend.stop();
        self.backend.stop();
    }
}

/// A child process (stdout and stderr to `NAME.out` in the work
/// directory): SIGTERM, then SIGKILL after 10 s, when stopped or dropped.
struct Proc {
    child: RefCell<Child>,
    name: &'static str,
    log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, name: &'static str, dir: &Path) -> Result<Proc> {
        let log = dir.join(format!("{name}.out"));
        let out = fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            child: RefCell::new(child),
            name,
            log,
        })
    }

    /// An error (with the end of its output) if the process has exited.
    fn alive(&self) -> Result<()> {
        if let Some(status) = self.child.borrow_mut().try_wait()? {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("{} exited ({status}): {}", self.name, tail.join("\n"));
        }
        Ok(())
    }

    /// Peak resident set (`VmHWM`), KiB. `ip netns exec` execs the program,
    /// so the child's PID is the program's.
    fn vm_hwm_kib(&self) -> Option<u64> {
        let pid = self.child.borrow().id();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    fn stop(&self) {
        let mut child = self.child.borrow_mut();
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: signalling our own child, not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
