//! `bench ring-read`: the bare ring reader, the live scenario's baseline.
//!
//! It opens the same capture as `pdns-sensor run` — TPACKET_V3 rings of the
//! default geometry in a `PACKET_FANOUT_HASH` group with IPv4
//! defragmentation, behind the same eBPF (or classic) DNS filter, through
//! the sensor library's own [`open_ring`] — and runs the sensor's own ring
//! thread ([`RingThread`]) over each, with a sink that does nothing: frames
//! are walked and counted, nothing is decoded or stored. What it captures
//! at a given offered rate is what the machine can move into userspace;
//! the sensor's figures read as a fraction of that.
//!
//! It runs until SIGINT or SIGTERM (or until a ring thread fails), then
//! stops the rings exactly as the sensor does (the ring thread's own drain
//! protocol), and writes a [`RingReadReport`] as JSON. Readiness is the
//! stderr line `ring-read: capturing on IF ...`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pdns_sensor::capture::filter::Filter;
use pdns_sensor::capture::iface::Interface;
use pdns_sensor::capture::stats::{RingCounters, RingTotals};
use pdns_sensor::capture::thread::{FrameSink, RingThread};
use pdns_sensor::capture::{RingConfig, open_ring};
use pdns_sensor::vocab::packet::Frame;
use serde::{Deserialize, Serialize};

use crate::cli::RingReadArgs;

/// The line (prefix) on stderr that says capture has started.
pub const READY: &str = "ring-read: capturing on";

/// Longest wait in `sigtimedwait()`.
const POLL: Duration = Duration::from_millis(100);

/// What `bench ring-read` writes to its stats file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RingReadReport {
    /// All rings together.
    #[serde(flatten)]
    pub total: RingTotals,
    /// Per ring.
    pub rings: Vec<RingTotals>,
    /// `ebpf` or `classic`.
    pub filter: String,
    pub elapsed_secs: f64,
}

/// A sink that takes frames and does nothing with them: the ring thread
/// counts them.
struct Discard;

impl FrameSink for Discard {
    type Summary = ();

    #[inline]
    fn frame(&mut self, _: &Frame<'_>) -> Result<()> {
        Ok(())
    }

    fn idle(&mut self) -> Result<()> {
        Ok(())
    }

    fn finish(self) -> Result<()> {
        Ok(())
    }
}

/// `bench ring-read`.
pub fn run(args: &RingReadArgs) -> Result<()> {
    // SIGINT and SIGTERM are blocked in every thread (ring threads inherit
    // the mask) and taken synchronously by the main thread.
    let signals = block_stop_signals()?;
    let started = Instant::now();
    let config = RingConfig::default();
    let iface = Interface::resolve(&args.interface)?;
    let mut filter = Filter::load(args.filter, &args.port)?;
    let count = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.threads
    };
    // As `run` does: the kernel-side work per packet is the sensor's.
    filter.set_rings(count)?;
    let mut group = None;
    let rings = (0..count)
        .map(|_| open_ring(&iface, &config, &mut group, filter.fanout()))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("opening a capture ring on {}", iface.name))?;
    for ring in &rings {
        filter.attach(ring.socket())?;
    }
    let stats_file = std::fs::File::create(&args.stats_json)
        .with_context(|| format!("creating {}", args.stats_json.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let interface: Arc<str> = Arc::from(iface.name.as_str());
    let mut counters = Vec::new();
    let threads: Vec<JoinHandle<Result<()>>> = rings
        .into_iter()
        .enumerate()
        .map(|(n, ring)| {
            let ring_counters = Arc::new(RingCounters::default());
            counters.push(Arc::clone(&ring_counters));
            let thread = RingThread {
                interface: Arc::clone(&interface),
                ring,
                sink: Discard,
                counters: ring_counters,
                stop: Arc::clone(&stop),
                retire_timeout: Duration::from_millis(config.retire_timeout_ms as u64),
            };
            std::thread::Builder::new()
                .name(format!("ring-read-{n}"))
                .spawn(move || thread.run())
                .context("starting a ring thread")
        })
        .collect::<Result<_>>()?;
    eprintln!(
        "{READY} {} ({count} ring(s), {} filter, ports {:?})",
        iface.name,
        filter.kind(),
        args.port
    );
    let reason = loop {
        if let Some(sig) = wait_signal(&signals, POLL)? {
            break if sig == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
        }
        if threads.iter().any(|t| t.is_finished()) {
            break "a ring thread stopped";
        }
    };
    stop.store(true, Ordering::Release);
    let mut first_error = None;
    for t in threads {
        if let Err(e) = t
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a ring thread panicked")))
        {
            first_error.get_or_insert(e);
        }
    }
    let rings: Vec<RingTotals> = counters.iter().map(|c| c.totals()).collect();
    let mut total = RingTotals::default();
    for r in &rings {
        total.add(r);
    }
    let report = RingReadReport {
        total,
        rings,
        filter: filter.kind().to_string(),
        elapsed_secs: started.elapsed().as_secs_f64(),
    };
    serde_json::to_writer_pretty(std::io::BufWriter::new(stats_file), &report)
        .with_context(|| format!("writing {}", args.stats_json.display()))?;
    eprintln!(
        "ring-read: {reason}: {} frames, {} drops, {} freezes in {:.1}s",
        total.frames,
        total.drops,
        total.freezes,
        started.elapsed().as_secs_f64()
    );
    match first_error {
        Some(e) => Err(e.context("capture failed")),
        None => Ok(()),
    }
}

fn block_stop_signals() -> Result<libc::sigset_t> {
    // SAFETY: the set is initialised by sigemptyset before any other use;
    // pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            bail!(
                "blocking SIGINT/SIGTERM: {}",
                std::io::Error::from_raw_os_error(rc)
            );
        }
        Ok(set)
    }
}

/// A pending signal of `set`, waiting at most `timeout`.
fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> Result<Option<i32>> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `ts` are valid for the call; no siginfo is asked for.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    if sig > 0 {
        return Ok(Some(sig));
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
        _ => Err(e).context("waiting for a signal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_reads_back() {
        let report = RingReadReport {
            total: RingTotals {
                frames: 3,
                drops: 1,
                ..RingTotals::default()
            },
            rings: vec![RingTotals::default()],
            filter: "ebpf".into(),
            elapsed_secs: 1.5,
        };
        let text = serde_json::to_string(&report).unwrap();
        assert!(text.contains("\"frames\":3"), "{text}");
        assert_eq!(
            serde_json::from_str::<RingReadReport>(&text).unwrap(),
            report
        );
    }

    #[test]
    fn a_blocked_signal_is_taken_synchronously() {
        // The test harness runs tests on threads; blocking in this thread
        // only affects this thread, and the signal goes to it alone.
        let set = block_stop_signals().unwrap();
        assert_eq!(wait_signal(&set, Duration::from_millis(1)).unwrap(), None);
        // SAFETY: sends SIGTERM to this very thread, where it is blocked.
        unsafe {
            libc::pthread_kill(libc::pthread_self(), libc::SIGTERM);
        }
        assert_eq!(
            wait_signal(&set, Duration::from_secs(5)).unwrap(),
            Some(libc::SIGTERM)
        );
    }
}
