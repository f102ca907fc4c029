//! A ring thread: one ring, one [`FrameSink`], until told to stop.
//!
//! The thread blocks in `poll()` on its ring (100 ms at most, so it notices
//! the stop flag and can tell an idle sink that time passes), hands every
//! frame of a block to the sink in place and only then hands the block
//! back to the kernel.
//!
//! Stopping loses nothing that reached the ring: the thread first swaps its
//! socket's filter for a drop-everything program, so the kernel stops
//! adding packets, then keeps reading until the kernel has retired the
//! last, partly filled block (it does so after the ring's retire timeout),
//! reads the final kernel statistics and finishes the sink.
//!
//! Under the classic filter, the thread also follows its interface: when
//! the watcher in `run` changes the wanted interface index (the interface
//! was deleted, or created again), the thread attaches the classic program
//! for the new index to its own socket (`SO_ATTACH_FILTER` needs no
//! capability). The eBPF filter follows through its map instead.
//!
//! Socket errors should not happen (the socket is bound to every device,
//! so none goes away under it); if one does, it is counted
//! ([`RingCounters::socket_errors`]) and logged once, then at most once a
//! minute, and the thread goes on.
//!
//! The sensor's sink is the pipeline's worker; the benchmark's bare ring
//! reader uses a sink that only counts, and so measures exactly this loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::cbpf;
use super::filter::ClassicFollow;
use super::ring::{Block, Ring};
use super::stats::RingCounters;
use crate::vocab::packet::{Frame, LinkType};

/// What a ring thread feeds its frames to.
pub trait FrameSink {
    /// What the sink returns when it is finished.
    type Summary;

    /// One frame, borrowed from the ring block for the duration of the call.
    fn frame(&mut self, frame: &Frame<'_>) -> Result<()>;

    /// No frame arrived for a while (up to a poll interval): time-based
    /// work, such as flushing, is due now if ever.
    fn idle(&mut self) -> Result<()>;

    /// The ring is drained: last chance to write anything held.
    fn finish(self) -> Result<Self::Summary>;
}

/// Longest wait in `poll()`.
const POLL: Duration = Duration::from_millis(100);
/// How often the kernel ring statistics are read.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Everything a ring thread owns.
pub struct RingThread<S> {
    pub interface: Arc<str>,
    pub ring: Ring,
    pub sink: S,
    pub counters: Arc<RingCounters>,
    pub stop: Arc<AtomicBool>,
    /// The ring's retire timeout: how long a partly filled block may wait.
    pub retire_timeout: Duration,
}

impl<S: FrameSink> RingThread<S> {
    /// Runs until `stop` is set, then drains the ring and finishes the
    /// sink.
    pub fn run(self) -> Result<S::Summary> {
        self.run_following(None)
    }

    /// [`RingThread::run`], attaching the classic program for the wanted
    /// interface index whenever it changes (see the module docs).
    pub fn run_following(mut self, follow: Option<ClassicFollow>) -> Result<S::Summary> {
        let mut last_stats = Instant::now();
        // None: attach at once, whatever was attached during setup.
        let mut attached: Option<u32> = None;
        let mut errors = ErrorLog::default();
        while !self.stop.load(Ordering::Acquire) {
            if let Some(follow) = &follow {
                let wanted = follow.wanted();
                if attached != Some(wanted) {
                    follow
                        .attach(self.ring.socket(), wanted)
                        .with_context(|| format!("{}: following the interface", self.interface))?;
                    attached = Some(wanted);
                }
            }
            match self.ring.next_block(POLL) {
                Ok(Some(block)) => process(&self.counters, &mut self.sink, block)?,
                Ok(None) => self.sink.idle()?,
                // A socket error: not expected on a socket bound to every
                // device, but not a reason to stop capturing either.
                Err(e) if e.raw_os_error().is_some_and(|c| c != libc::EBADF) => {
                    self.counters.socket_errors.fetch_add(1, Ordering::Relaxed);
                    errors.log(&self.interface, &e);
                    self.sink.idle()?;
                    std::thread::sleep(POLL);
                }
                Err(e) => return Err(e).context("reading the ring"),
            }
            if last_stats.elapsed() >= STATS_EVERY {
                last_stats = Instant::now();
                self.read_kernel_stats();
            }
        }
        // No more packets in; read what the kernel already holds.
        cbpf::attach(self.ring.socket(), &cbpf::drop_all()).context("closing the filter")?;
        let quiet = self.retire_timeout * 2 + Duration::from_millis(50);
        let mut last_block = Instant::now();
        while last_block.elapsed() < quiet {
            if let Some(block) = self.ring.next_block(Duration::from_millis(10))? {
                process(&self.counters, &mut self.sink, block)?;
                last_block = Instant::now();
            }
        }
        self.read_kernel_stats();
        self.sink.finish()
    }

    fn read_kernel_stats(&mut self) {
        match self.ring.socket().take_stats() {
            Ok(k) => self.counters.add_kernel(k),
            Err(e) => tracing::warn!("{}: reading ring statistics: {e}", self.interface),
        }
        let bad = std::mem::take(&mut self.ring.bad_frames);
        if bad > 0 {
            self.counters.bad_frames.fetch_add(bad, Ordering::Relaxed);
            tracing::warn!(
                "{}: {bad} ring frames with impossible offsets skipped",
                self.interface
            );
        }
    }
}

/// Logs socket errors: the first at once, then a summary at most once a
/// minute.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl ErrorLog {
    const EVERY: Duration = Duration::from_secs(60);

    fn log(&mut self, interface: &str, e: &std::io::Error) {
        self.unlogged += 1;
        if self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        tracing::warn!(
            "{interface}: capture socket error: {e} ({} since the last such line)",
            self.unlogged
        );
        self.last = Some(Instant::now());
        self.unlogged = 0;
    }
}

/// Hands every frame of a block to the sink; the block goes back to the
/// kernel when it is dropped at the end, after the last frame.
fn process<S: FrameSink>(counters: &RingCounters, sink: &mut S, block: Block<'_>) -> Result<()> {
    let mut frames = 0u64;
    let mut bytes = 0u64;
    let mut tagged = 0u64;
    for f in block.frames() {
        frames += 1;
        bytes += f.data.len() as u64;
        tagged += f.vlan.is_some() as u64;
        sink.frame(&Frame {
            ts: f.ts,
            link: LinkType::Ethernet,
            data: f.data,
        })?;
    }
    drop(block);
    counters.add_frames(frames, bytes, tagged);
    Ok(())
}
