//! The capturing process of a run — `pdns-sensor run` or `bench ring-read`
//! — in the rx namespace: started, awaited until it says it captures,
//! stopped with SIGTERM, reaped with its CPU time, and its stats read.
//! A [`Capture`] that is dropped without [`Capture::stop`] kills and reaps
//! its process, so no run leaves one behind. [`RingSize`] is the ring
//! geometry a run asks for: the library default, or a small one for the
//! starved-ring series.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use pdns_sensor::capture::RingConfig;
use pdns_sensor::report::RunReport;

use crate::ringread::RingReadReport;

use super::veth::RX_IF;
use crate::netns::Netns;
use crate::report::SENSOR;
use crate::ringread;

/// System name of the bare ring reader.
pub(crate) const RING_READ: &str = "ring-read";

/// Longest wait for a process to start capturing.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a process to stop after SIGTERM (the sensor flushes
/// its store first).
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// What captures: the sensor or the bare ring reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum System {
    Sensor,
    RingRead,
}

impl System {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            System::Sensor => SENSOR,
            System::RingRead => RING_READ,
        }
    }

    /// The stderr line that says capture has started.
    fn ready(&self) -> &'static str {
        match self {
            System::Sensor => "capturing DNS on",
            System::RingRead => ringread::READY,
        }
    }
}

/// The geometry of each capture ring: `blocks` blocks of `block_size`
/// bytes (`--ring-blocks`, `--ring-block-size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingSize {
    pub blocks: u32,
    pub block_size: u32,
}

impl RingSize {
    /// The library's default ring, which `pdns-sensor run` uses without
    /// ring flags and `bench ring-read` always uses.
    pub(crate) fn default_ring() -> RingSize {
        let c = RingConfig::default();
        RingSize {
            blocks: c.block_count,
            block_size: c.block_size,
        }
    }

    /// Bytes mapped per ring.
    pub(crate) fn bytes(&self) -> u64 {
        u64::from(self.blocks) * u64::from(self.block_size)
    }

    pub(crate) fn is_default(&self) -> bool {
        *self == RingSize::default_ring()
    }
}

/// `4 × 64 KiB`.
impl fmt::Display for RingSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} × {}",
            self.blocks,
            binary_size(self.block_size.into())
        )
    }
}

/// `256 KiB`, `64 MiB`, `1.5 GiB`, `100 B`: bytes in binary units.
pub fn binary_size(bytes: u64) -> String {
    let mut v = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return if v.fract() == 0.0 {
                format!("{v} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    unreachable!("the loop returns at GiB")
}

/// The binaries of both systems.
#[derive(Clone, Debug)]
pub(crate) struct Programs {
    pub sensor: PathBuf,
    /// The `bench` binary (for `bench ring-read`), if found.
    pub bench: Option<PathBuf>,
}

impl Programs {
    pub(crate) fn new(sensor: &Path) -> Programs {
        Programs {
            sensor: sensor.to_path_buf(),
            bench: bench_binary(),
        }
    }
}

/// This `bench` binary, or, when running as a test binary
/// (`target/*/deps/bench-HASH`), the `bench` binary next to `deps`.
fn bench_binary() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    if me.file_name().is_some_and(|n| n == "bench") {
        return Some(me);
    }
    let sibling = me.parent()?.parent()?.join("bench");
    sibling.is_file().then_some(sibling)
}

/// What a stopped capture reported.
#[derive(Clone, Debug, Default)]
pub(crate) struct Captured {
    pub frames: Option<f64>,
    pub drops: Option<f64>,
    /// Sensor only.
    pub dns_responses: Option<f64>,
    /// User + system CPU of the capturing process.
    pub cpu_secs: f64,
    /// The sensor's whole stats file (sensor only).
    pub report: Option<Box<RunReport>>,
}

/// A running capture.
pub(crate) struct Capture {
    system: System,
    child: Option<Child>,
    log: Option<JoinHandle<String>>,
    stats: PathBuf,
    /// Holds the stats file and the sensor's database.
    dir: tempfile::TempDir,
}

impl Capture {
    /// Starts `system` with `threads` rings of size `ring` on the rx end and
    /// waits until it captures. The ring reader has the default ring only.
    pub(crate) fn start(
        rx: &Netns,
        programs: &Programs,
        system: System,
        threads: u32,
        ring: RingSize,
    ) -> Result<Capture> {
        Capture::start_with(rx, programs, system, threads, ring, &[])
    }

    /// As [`Capture::start`], with `extra` arguments for the sensor; with
    /// `--listen` among them the sensor serves its API (else `--no-api`).
    pub(crate) fn start_with(
        rx: &Netns,
        programs: &Programs,
        system: System,
        threads: u32,
        ring: RingSize,
        extra: &[&std::ffi::OsStr],
    ) -> Result<Capture> {
        let dir = tempfile::tempdir()?;
        let stats = dir.path().join("stats.json");
        let mut cmd = match system {
            System::Sensor => {
                let mut c = rx.cmd(programs.sensor.to_str().context("sensor path")?);
                c.args(["run", "-i", RX_IF]);
                if !extra.iter().any(|a| *a == "--listen") {
                    c.arg("--no-api");
                }
                c.args(extra);
                c.args([
                    "--status-interval",
                    "3600",
                    "--threads",
                    &threads.to_string(),
                    "--ring-blocks",
                    &ring.blocks.to_string(),
                    "--ring-block-size",
                    &ring.block_size.to_string(),
                ])
                .arg("--db")
                .arg(dir.path().join("db"));
                c
            }
            System::RingRead => {
                ensure!(
                    ring.is_default(),
                    "bench ring-read has the default ring only, not {ring}"
                );
                let bench = programs.bench.as_ref().context("no bench binary")?;
                let mut c = rx.cmd(bench.to_str().context("bench path")?);
                c.args([
                    "ring-read",
                    "--interface",
                    RX_IF,
                    "--threads",
                    &threads.to_string(),
                ]);
                c
            }
        };
        cmd.arg("--stats-json")
            .arg(&stats)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", system.name()))?;
        let stderr = child.stderr.take().context("stderr")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let marker = system.ready();
        // Collects stderr until the process exits; says when it is ready.
        // If the process dies first, the sender is dropped and the wait
        // below ends at once.
        let log = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(marker) {
                    let _ = ready_tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut capture = Capture {
            system,
            child: Some(child),
            log: Some(log),
            stats,
            dir,
        };
        if let Err(e) = ready_rx.recv_timeout(START_TIMEOUT) {
            let how = match capture.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => format!("exited ({status})"),
                _ if e == mpsc::RecvTimeoutError::Timeout => {
                    format!("not ready within {} s", START_TIMEOUT.as_secs())
                }
                _ => "closed its stderr".into(),
            };
            capture.kill();
            let log = tail(&capture.take_log());
            let sep = if log.is_empty() { "" } else { ": " };
            bail!("{} did not start capturing: {how}{sep}{log}", system.name());
        }
        Ok(capture)
    }

    /// SIGTERM, reap (with CPU time), read the stats file.
    pub(crate) fn stop(self) -> Result<Captured> {
        self.stop_keeping().map(|(c, _dir)| c)
    }

    /// As [`Capture::stop`], and hands over the directory holding the
    /// sensor's database (`db` in it), to be read before it is dropped.
    pub(crate) fn stop_keeping(mut self) -> Result<(Captured, tempfile::TempDir)> {
        let child = self.child.take().context("already stopped")?;
        let pid = child.id() as libc::pid_t;
        // SAFETY: `pid` is our unreaped child, so it cannot be recycled.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value to be overwritten.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            // SAFETY: `pid` is our own child; the pointers are valid for the call.
            let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
            if r == pid {
                break;
            }
            if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                bail!("wait4: {}", std::io::Error::last_os_error());
            }
            if Instant::now() > deadline {
                self.child = Some(child);
                self.kill();
                bail!(
                    "{} did not stop within {} s of SIGTERM",
                    self.system.name(),
                    STOP_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.take_log();
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            bail!(
                "{} exited with status {status:#x}: {}",
                self.system.name(),
                tail(&log)
            );
        }
        let text = std::fs::read_to_string(&self.stats).with_context(|| {
            format!("no stats JSON from {}: {}", self.system.name(), tail(&log))
        })?;
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let mut c = parse_stats(self.system, &text).context("stats JSON")?;
        c.cpu_secs = tv(usage.ru_utime) + tv(usage.ru_stime);
        // An empty directory takes the place of the real one in `self`,
        // which is dropped right after.
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir()?);
        Ok((c, dir))
    }

    /// The capturing process's pid (`ip netns exec` execs it).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything the process wrote to stderr (it must have exited).
    fn take_log(&mut self) -> String {
        self.log
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.kill();
        self.take_log();
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.trim().lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// The figures of either system's stats file, read as its report type.
fn parse_stats(system: System, text: &str) -> serde_json::Result<Captured> {
    Ok(match system {
        System::Sensor => {
            let report: RunReport = serde_json::from_str(text)?;
            let iface = report.interfaces.get(RX_IF);
            Captured {
                frames: iface.map(|t| t.frames as f64),
                drops: iface.map(|t| t.drops as f64),
                dns_responses: Some(report.totals.dns_responses as f64),
                cpu_secs: 0.0,
                report: Some(Box::new(report)),
            }
        }
        System::RingRead => {
            let report: RingReadReport = serde_json::from_str(text)?;
            Captured {
                frames: Some(report.total.frames as f64),
                drops: Some(report.total.drops as f64),
                dns_responses: None,
                cpu_secs: 0.0,
                report: None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pdns_sensor::capture::stats::RingTotals;

    #[test]
    fn both_stats_shapes_parse() {
        let mut sensor = RunReport::default();
        sensor.interfaces.insert(
            RX_IF.to_string(),
            RingTotals {
                frames: 10,
                drops: 2,
                ..RingTotals::default()
            },
        );
        sensor.totals.dns_responses = 4;
        let c = parse_stats(System::Sensor, &serde_json::to_string(&sensor).unwrap()).unwrap();
        assert_eq!(
            (c.frames, c.drops, c.dns_responses),
            (Some(10.0), Some(2.0), Some(4.0))
        );
        let rr = RingReadReport {
            total: RingTotals {
                frames: 7,
                ..RingTotals::default()
            },
            ..RingReadReport::default()
        };
        let c = parse_stats(System::RingRead, &serde_json::to_string(&rr).unwrap()).unwrap();
        assert_eq!(
            (c.frames, c.drops, c.dns_responses),
            (Some(7.0), Some(0.0), None)
        );
        assert!(parse_stats(System::RingRead, "{}").is_err());
        assert_eq!(tail("a\nb\nc\nd\ne\nf\n"), "b\nc\nd\ne\nf");
    }

    #[test]
    fn ring_sizes() {
        let d = RingSize::default_ring();
        assert!(d.is_default());
        assert_eq!(d.bytes(), RingConfig::default().bytes() as u64);
        let small = RingSize {
            blocks: 4,
            block_size: 65536,
        };
        assert!(!small.is_default());
        assert_eq!(small.bytes(), 262_144);
        assert_eq!(small.to_string(), "4 × 64 KiB");
        assert_eq!(binary_size(262_144), "256 KiB");
        assert_eq!(binary_size(64 << 20), "64 MiB");
        assert_eq!(binary_size(1536), "1.5 KiB");
        assert_eq!(binary_size(100), "100 B");
        assert_eq!(binary_size(3 << 30), "3 GiB");
    }
}
