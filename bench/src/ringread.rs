//! `bench ring-read`: the bare ring reader, the live scenario's baseline.
//!
//! It opens the same capture as `pdns-sensor run` — TPACKET_V3 rings of the
//! default geometry in a `PACKET_FANOUT_HASH` group with IPv4
//! defragmentation, behind the same eBPF (or classic) DNS filter, through
//! the sensor library's own [`open_ring`] — and then only walks each block's
//! frame headers and counts them: no decoding, no store. What it captures
//! at a given offered rate is what the machine can move into userspace;
//! the sensor's figures read as a fraction of that.
//!
//! It runs until SIGINT or SIGTERM (or until a ring thread fails), then
//! stops the rings the way the sensor does (drop-everything filter, read
//! until the last partly filled block is retired), reads the kernel's
//! `PACKET_STATISTICS` and writes `{frames, drops, ...}` as JSON.
//! Readiness is the stderr line `ring-read: capturing on IF ...`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pdns_sensor::capture::filter::Filter;
use pdns_sensor::capture::iface::Interface;
use pdns_sensor::capture::ring::{Block, Ring};
use pdns_sensor::capture::{RingConfig, cbpf, open_ring};
use serde::Serialize;

use crate::cli::RingReadArgs;

/// The line (prefix) on stderr that says capture has started.
pub const READY: &str = "ring-read: capturing on";

/// Longest wait in `poll()`, and in `sigtimedwait()`.
const POLL: Duration = Duration::from_millis(100);
/// How often the kernel statistics are read (its counters are 32-bit).
const STATS_EVERY: Duration = Duration::from_secs(1);

/// What one ring (or all of them) saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Frames read from the ring.
    pub frames: u64,
    /// Their captured bytes.
    pub bytes: u64,
    /// Kernel: packets offered to the ring, drops included.
    pub packets: u64,
    /// Kernel: packets dropped because the ring was full.
    pub drops: u64,
    /// Kernel: times every block of the ring was full.
    pub freezes: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.packets += o.packets;
        self.drops += o.drops;
        self.freezes += o.freezes;
    }

    fn block(&mut self, block: &Block<'_>) {
        for f in block.frames() {
            self.frames += 1;
            self.bytes += f.data.len() as u64;
        }
    }

    fn kernel(&mut self, ring: &Ring) -> Result<()> {
        let k = ring
            .socket()
            .take_stats()
            .context("reading PACKET_STATISTICS")?;
        self.packets += k.packets;
        self.drops += k.drops;
        self.freezes += k.freezes;
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
    let filter = Filter::load(args.filter, &args.port)?;
    let count = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.threads
    };
    let mut group = None;
    let rings = (0..count)
        .map(|_| open_ring(&iface, &config, &mut group))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("opening a capture ring on {}", iface.name))?;
    for ring in &rings {
        filter.attach(ring.socket())?;
    }
    let stats_file = std::fs::File::create(&args.stats_json)
        .with_context(|| format!("creating {}", args.stats_json.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let retire = Duration::from_millis(config.retire_timeout_ms as u64);
    let threads: Vec<JoinHandle<Result<Counts>>> = rings
        .into_iter()
        .enumerate()
        .map(|(n, ring)| {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("ring-read-{n}"))
                .spawn(move || read_ring(ring, &stop, retire))
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
    let mut total = Counts::default();
    let mut per_ring = Vec::new();
    let mut first_error = None;
    for t in threads {
        match t
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a ring thread panicked")))
        {
            Ok(c) => {
                total.add(&c);
                per_ring.push(c);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    write_stats(
        stats_file,
        &args.stats_json,
        &total,
        &per_ring,
        filter.kind(),
        started.elapsed(),
    )?;
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

/// One ring until `stop`, then drained like the sensor's ring threads.
fn read_ring(mut ring: Ring, stop: &AtomicBool, retire: Duration) -> Result<Counts> {
    let mut c = Counts::default();
    let mut last_stats = Instant::now();
    while !stop.load(Ordering::Acquire) {
        if let Some(block) = ring.next_block(POLL).context("reading the ring")? {
            c.block(&block);
        }
        if last_stats.elapsed() >= STATS_EVERY {
            last_stats = Instant::now();
            c.kernel(&ring)?;
        }
    }
    cbpf::attach(ring.socket(), &cbpf::drop_all()).context("closing the filter")?;
    let quiet = retire * 2 + Duration::from_millis(50);
    let mut last_block = Instant::now();
    while last_block.elapsed() < quiet {
        if let Some(block) = ring.next_block(Duration::from_millis(10))? {
            c.block(&block);
            last_block = Instant::now();
        }
    }
    c.kernel(&ring)?;
    Ok(c)
}

fn write_stats(
    file: std::fs::File,
    path: &Path,
    total: &Counts,
    rings: &[Counts],
    filter: &str,
    elapsed: Duration,
) -> Result<()> {
    let v = serde_json::json!({
        "frames": total.frames,
        "bytes": total.bytes,
        "packets": total.packets,
        "drops": total.drops,
        "freezes": total.freezes,
        "rings": rings,
        "filter": filter,
        "elapsed_secs": elapsed.as_secs_f64(),
    });
    serde_json::to_writer_pretty(std::io::BufWriter::new(file), &v)
        .with_context(|| format!("writing {}", path.display()))
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
    fn counts_add_up() {
        let mut t = Counts::default();
        let r = Counts {
            frames: 3,
            bytes: 300,
            packets: 4,
            drops: 1,
            freezes: 0,
        };
        t.add(&r);
        t.add(&r);
        assert_eq!((t.frames, t.bytes, t.packets, t.drops), (6, 600, 8, 2));
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
