//! Private network namespaces for the scenarios that must not touch the
//! machine's network: the live scenario's veth pair
//! ([`crate::scenario::live`]) and balboa's GraphQL frontend, which binds
//! every interface ([`crate::peers::balboa`]). One implementation, so both
//! get the same guarantees:
//!
//! - a [`Netns`] is deleted when dropped, whatever happens, and its name
//!   (`pdns-bench-TAG-PID-N`) says which run made it;
//! - programs run inside with `ip netns exec` ([`Netns::cmd`]), which execs
//!   them, so a child's pid is the program's own (for signals and `/proc`);
//! - every setup command runs with a time limit ([`run_bounded`]);
//! - code of this process can run inside too, on a thread that joined the
//!   namespace ([`NsThread`]; `setns` moves only the calling thread);
//! - a run killed by a signal (Ctrl-C) runs no drop guard, so the next run
//!   deletes what it left behind first ([`sweep_stale`]): the pid in the
//!   name tells whether its run is still alive.

use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// Longest any setup command (`ip`, `sysctl`) may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A named network namespace with loopback up, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `pdns-bench-{tag}-{pid}-{n}` and brings its loopback up.
    pub fn new(tag: &str) -> Result<Netns> {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "pdns-bench-{tag}-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        run_bounded(
            Command::new("ip").args(["netns", "add", &name]),
            SETUP_TIMEOUT,
        )?;
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Turns IPv6 off inside (no neighbour discovery or router
    /// solicitations on the namespace's links).
    pub fn disable_ipv6(&self) -> Result<()> {
        for s in [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ] {
            self.run(&["sysctl", "-qw", s])?;
        }
        Ok(())
    }

    /// `program` run inside the namespace (`ip netns exec` execs it, so
    /// the child's pid is the program's).
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `argv` inside within [`SETUP_TIMEOUT`]; its output.
    pub fn run(&self, argv: &[&str]) -> Result<String> {
        run_bounded(self.cmd(argv[0]).args(&argv[1..]), SETUP_TIMEOUT)
    }

    /// A thread of this process inside the namespace.
    pub fn thread(&self) -> Result<NsThread> {
        NsThread::new(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_bounded(
            Command::new("ip").args(["netns", "del", &self.name]),
            SETUP_TIMEOUT,
        );
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread that has joined a network namespace and runs closures there,
/// one at a time (sockets it opens live in the namespace). It ends when
/// dropped; drop it before the namespace.
pub struct NsThread {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl NsThread {
    fn new(netns: &str) -> Result<NsThread> {
        let file = std::fs::File::open(format!("/run/netns/{netns}"))
            .with_context(|| format!("opening network namespace {netns}"))?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let (joined_tx, joined) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd; affects this thread only.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            let ok = r == 0;
            let _ = joined_tx.send(if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            });
            if ok {
                for job in queue {
                    job();
                }
            }
        });
        joined
            .recv()
            .context("namespace thread")?
            .context("joining the network namespace (setns)")?;
        Ok(NsThread {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `f` on the thread inside the namespace and returns its result.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .as_ref()
            .expect("open until dropped")
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| anyhow!("namespace thread gone"))?;
        rx.recv().context("namespace thread gone")
    }
}

impl Drop for NsThread {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Deletes the namespaces of bench runs that are gone (`pdns-bench-*-PID-N`
/// whose PID no longer exists), killing whatever still runs inside each
/// first, and returns their names. Namespaces of live runs, and any other
/// namespace, are left alone.
pub fn sweep_stale() -> Result<Vec<String>> {
    let list = run_bounded(Command::new("ip").args(["netns", "list"]), SETUP_TIMEOUT)?;
    let mut removed = Vec::new();
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = creator_pid(name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let inside = run_bounded(
            Command::new("ip").args(["netns", "pids", name]),
            SETUP_TIMEOUT,
        )?;
        for pid in inside
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill(2) with a pid the kernel listed in that namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        run_bounded(
            Command::new("ip").args(["netns", "delete", name]),
            SETUP_TIMEOUT,
        )?;
        removed.push(name.to_string());
    }
    Ok(removed)
}

/// The pid of the run that made `pdns-bench-TAG-PID-N`.
fn creator_pid(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix("pdns-bench-")?.rsplitn(3, '-');
    parts.next()?.parse::<u64>().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next().filter(|tag| !tag.is_empty())?;
    Some(pid)
}

/// Runs `cmd` to completion within `timeout` (killed after that) and
/// returns its stdout followed by its stderr; a non-zero exit is an error.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<String> {
    // Files, not pipes: a chatty child can never block on a full pipe.
    let mut out = tempfile::tempfile()?;
    let mut err = tempfile::tempfile()?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(err.try_clone()?)
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd:?} did not finish within {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut text = String::new();
    for f in [&mut out, &mut err] {
        f.seek(SeekFrom::Start(0))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
    if !status.success() {
        bail!("{cmd:?}: {status}: {}", text.trim());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::{have, is_root};

    #[test]
    fn bounded_runs() {
        let text = run_bounded(
            Command::new("sh").args(["-c", "echo out; echo err >&2"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(text, "out\nerr\n");
        let e = run_bounded(
            Command::new("sh").args(["-c", "echo nope >&2; exit 2"]),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("nope"));
        let start = Instant::now();
        let e =
            run_bounded(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert!(format!("{e:#}").contains("did not finish"));
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn creator_pid_comes_from_the_name() {
        assert_eq!(creator_pid("pdns-bench-rx-4242-0"), Some(4242));
        assert_eq!(creator_pid("pdns-bench-a-b-17-3"), Some(17));
        assert_eq!(creator_pid("pdns-bench-17-3"), None);
        assert_eq!(creator_pid("pdns-bench--17-3"), None);
        assert_eq!(creator_pid("pdns-bench-rx-x-0"), None);
        assert_eq!(creator_pid("other-rx-4242-0"), None);
    }

    /// A namespace of a dead run, with a process still inside, is swept;
    /// one of this (live) run is not.
    #[test]
    fn stale_namespaces_are_swept() {
        assert!(is_root(), "needs root (network namespaces)");
        assert!(have("ip"), "needs ip (cargo xtask setup)");
        let mut gone = Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        let stale = format!("pdns-bench-sweep-{dead}-0");
        run_bounded(
            Command::new("ip").args(["netns", "add", &stale]),
            SETUP_TIMEOUT,
        )
        .unwrap();
        let mut inside = Command::new("ip")
            .args(["netns", "exec", &stale, "sleep", "60"])
            .spawn()
            .unwrap();
        let ours = Netns::new("sweep").unwrap();
        // Until `ip netns exec` has moved the sleeper in.
        let deadline = Instant::now() + Duration::from_secs(10);
        while run_bounded(
            Command::new("ip").args(["netns", "pids", &stale]),
            SETUP_TIMEOUT,
        )
        .unwrap()
        .trim()
        .is_empty()
        {
            assert!(Instant::now() < deadline, "sleeper never entered {stale}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let removed = sweep_stale().unwrap();
        assert!(removed.contains(&stale), "{removed:?}");
        assert!(!removed.iter().any(|n| n == ours.name()), "{removed:?}");
        let status = inside.wait().unwrap();
        assert!(!status.success(), "the sleeper was killed");
        let listed =
            run_bounded(Command::new("ip").args(["netns", "list"]), SETUP_TIMEOUT).unwrap();
        assert!(!listed.contains(&stale));
        assert!(listed.contains(ours.name()));
    }

    /// Needs root and `ip`; passes trivially without them (the live and
    /// balboa runs say "not run" in that case).
    #[test]
    fn namespace_lifecycle() {
        // Privileged like the live tests: without root or `ip` this fails
        // rather than passing without checking anything.
        assert!(is_root(), "needs root (network namespaces)");
        assert!(have("ip"), "needs ip (cargo xtask setup)");
        let net = |p: &str| std::fs::read_link(p).unwrap();
        let ns = Netns::new("unit").unwrap();
        let name = ns.name().to_string();
        assert!(name.starts_with(&format!("pdns-bench-unit-{}-", std::process::id())));
        let lo = ns.run(&["ip", "-o", "link", "show", "lo"]).unwrap();
        assert!(lo.contains("UP"), "{lo}");
        ns.disable_ipv6().unwrap();
        let inside = ns
            .thread()
            .unwrap()
            .run(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap())
            .unwrap();
        assert_ne!(inside, net("/proc/thread-self/ns/net"));
        let listed = || run_bounded(Command::new("ip").args(["netns", "list"]), SETUP_TIMEOUT);
        assert!(listed().unwrap().contains(&name));
        drop(ns);
        assert!(!listed().unwrap().contains(&name));
    }
}
