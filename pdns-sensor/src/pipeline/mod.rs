//! The pipeline: decode → extract → aggregate → store, on N threads.
//!
//! Every source feeds a [`Worker`] (see `worker` for its entry points:
//! frames, DNS messages, rebuilt responses), which owns one thread's
//! decoder, extractor, aggregator and store writer thread. This module also
//! runs several workers side by side for a file source.
//!
//! A file source pushes frames into a [`Pipeline`]. With one thread they are
//! processed inline, in the caller's thread. With more, each frame is copied
//! into a per-worker batch chosen by [`FlowHasher`] — by the question name
//! of a whole UDP datagram, so every message about a name reaches one
//! decoder and one aggregator, and symmetric over the IP addresses for the
//! rest, so both directions of a TCP stream and every fragment of a
//! datagram reach the same decoder — and batches travel over bounded
//! channels, so a slow store back-pressures the reader instead of growing
//! memory. (Live capture runs one [`Worker`] per ring instead, with the
//! kernel's fanout hash doing this dispatch.)
//!
//! [`Pipeline::finish`] flushes everything that is left; nothing pushed
//! before it is lost.

pub mod repeats;
mod worker;
mod writer;

pub use repeats::{Capacity, Repeats};
pub use worker::Worker;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::decode::{DecodeConfig, DecodeStats, FlowHasher};
use crate::extract::{ExtractStats, Sections};
use crate::store::{Store, StoreError};
use crate::vocab::packet::{Frame, LinkType, Timestamp};
use crate::vocab::value::Origin;

/// Why a pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Writing to the store failed (the database, the action and the
    /// cause are in the message).
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a {0} thread panicked")]
    Panicked(&'static str),
    #[error("starting a {0} thread: {1}")]
    Spawn(&'static str, std::io::Error),
}

/// How the pipeline runs.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Decoder threads; 0 means one per core.
    pub threads: usize,
    pub decode: DecodeConfig,
    pub sections: Sections,
    /// Aggregator bound (keys) of all the workers made from this config
    /// together: whoever makes several divides it with
    /// [`PipelineConfig::per_worker`], so memory does not grow with the
    /// number of threads. Each worker's share also sizes what it remembers
    /// of repeated responses ([`Capacity::for_keys`]).
    pub max_entries: usize,
    /// Longest time (wall clock) observations wait in memory before being
    /// written: the window a crash can lose.
    pub flush_interval: Duration,
    /// Origin stamped on every observation.
    pub origin: Origin,
    /// What a store write that fails with an I/O error (a full disk, most
    /// often) does. `None`: the pipeline stops with the error — right for
    /// files, which can be read again once there is room. `Some(stop)`:
    /// the writer keeps the batch and tries it again every few seconds
    /// until it is written or `stop` is set — right for live sources,
    /// which cannot pause the traffic: meanwhile the worker stops taking
    /// frames once its next batch is full too, and what arrives is dropped
    /// (at the ring, by the kernel, and counted there).
    pub wait_for_space: Option<Arc<AtomicBool>>,
    /// Remembered bytes from which the shortcut for repeated responses
    /// works ahead (see [`Repeats`]); a tuning and testing knob.
    pub lookahead_from: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            threads: 0,
            decode: DecodeConfig::default(),
            sections: Sections::default(),
            max_entries: DEFAULT_MAX_ENTRIES,
            flush_interval: Duration::from_secs(5),
            origin: Origin::WIRE,
            wait_for_space: None,
            lookahead_from: repeats::LOOKAHEAD_FROM,
        }
    }
}

/// The default aggregator bound of all workers together. One thread holds
/// all of it: at 100 k names, one thread, 2 M packets, it takes the
/// capture in one batch and recognises 83 % of the responses as repeats
/// (100 000 keys: three batches, 71 %), 1.65 → 1.85 M packets/s; two
/// threads hold 100 000 keys each, as they did before the bound was
/// shared. About 550 bytes per key held at 1 M names (the aggregator, the
/// batch its writer builds, the repeats remembered).
pub const DEFAULT_MAX_ENTRIES: usize = 200_000;

impl PipelineConfig {
    /// The config of one of `workers` workers sharing this one's
    /// aggregator bound (each gets an equal share, at least one key).
    pub fn per_worker(&self, workers: usize) -> PipelineConfig {
        PipelineConfig {
            max_entries: (self.max_entries / workers.max(1)).max(1),
            ..self.clone()
        }
    }

    /// The number of decoder threads this config asks for.
    pub fn thread_count(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        }
    }
}

/// What a pipeline did, summed over its workers.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub decode: DecodeStats,
    pub extract: ExtractStats,
    /// Keys written to the store (after pre-aggregation), per table.
    pub records_written: u64,
    pub negatives_written: u64,
    pub flushes: u64,
    /// Seconds the decoder threads waited for their store writers (handing
    /// over a batch while the previous one was still being written, and at
    /// the end): a pipeline whose decoders wait is bound by its store.
    pub writer_wait_secs: f64,
}

impl Summary {
    /// Adds another worker's totals.
    pub fn add(&mut self, other: &Summary) {
        self.decode.add(&other.decode);
        self.extract.add(&other.extract);
        self.records_written += other.records_written;
        self.negatives_written += other.negatives_written;
        self.flushes += other.flushes;
        self.writer_wait_secs += other.writer_wait_secs;
    }
}

/// Frames copied for a worker thread: one buffer, many frames.
#[derive(Default)]
struct FrameBatch {
    bytes: Vec<u8>,
    frames: Vec<(Timestamp, LinkType, u32, u32)>,
}

const BATCH_FRAMES: usize = 512;
const BATCH_BYTES: usize = 512 << 10;
/// Batches queued per worker: bounds memory at workers × this × BATCH_BYTES.
const QUEUE_DEPTH: usize = 8;

impl FrameBatch {
    fn push(&mut self, frame: &Frame<'_>) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(frame.data);
        self.frames
            .push((frame.ts, frame.link, start, frame.data.len() as u32));
    }

    fn is_full(&self) -> bool {
        self.frames.len() >= BATCH_FRAMES || self.bytes.len() >= BATCH_BYTES
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.frames.clear();
    }
}

struct Lane {
    batch: FrameBatch,
    tx: Sender<FrameBatch>,
    handle: JoinHandle<Result<Summary, PipelineError>>,
}

enum Mode {
    Inline(Box<Worker>),
    Threads {
        lanes: Vec<Lane>,
        free: Receiver<FrameBatch>,
        hasher: FlowHasher,
    },
}

/// A running pipeline; push frames, then [`finish`](Pipeline::finish).
pub struct Pipeline {
    mode: Mode,
    /// The error the inline worker stopped at, for `finish` to report.
    failed: Option<PipelineError>,
}

/// A worker of the pipeline has stopped; [`Pipeline::finish`] says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl Pipeline {
    pub fn new(config: &PipelineConfig, store: Arc<Store>) -> Result<Pipeline, PipelineError> {
        let threads = config.thread_count();
        if threads <= 1 {
            return Ok(Pipeline {
                mode: Mode::Inline(Box::new(Worker::new(config, store, "pdns-store")?)),
                failed: None,
            });
        }
        let (free_tx, free_rx) =
            crossbeam_channel::bounded::<FrameBatch>(threads * (QUEUE_DEPTH + 2));
        let config = &config.per_worker(threads);
        let mut lanes = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = crossbeam_channel::bounded::<FrameBatch>(QUEUE_DEPTH);
            let mut worker = Worker::new(config, Arc::clone(&store), &format!("pdns-store-{i}"))?;
            let free_tx = free_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("pdns-decode-{i}"))
                .spawn(move || {
                    for mut batch in rx {
                        for &(ts, link, start, len) in &batch.frames {
                            let data = &batch.bytes[start as usize..(start + len) as usize];
                            worker.frame(&Frame { ts, link, data })?;
                        }
                        batch.clear();
                        let _ = free_tx.try_send(batch);
                    }
                    worker.finish()
                })
                .map_err(|e| PipelineError::Spawn("decoder", e))?;
            lanes.push(Lane {
                batch: FrameBatch::default(),
                tx,
                handle,
            });
        }
        Ok(Pipeline {
            mode: Mode::Threads {
                lanes,
                free: free_rx,
                hasher: FlowHasher::new(&config.decode),
            },
            failed: None,
        })
    }

    /// Feeds one frame. Returns `Err(Stopped)` once a worker has stopped
    /// (the store failed): the caller should stop and call
    /// [`finish`](Pipeline::finish), which says why.
    pub fn push(&mut self, frame: &Frame<'_>) -> Result<(), Stopped> {
        match &mut self.mode {
            Mode::Inline(worker) => {
                if self.failed.is_some() {
                    return Err(Stopped);
                }
                worker.frame(frame).map_err(|e| {
                    self.failed = Some(e);
                    Stopped
                })
            }
            Mode::Threads {
                lanes,
                free,
                hasher,
            } => {
                let n = lanes.len();
                let lane = &mut lanes[FlowHasher::lane(hasher.hash(frame.link, frame.data), n)];
                lane.batch.push(frame);
                if lane.batch.is_full() {
                    let next = free.try_recv().unwrap_or_default();
                    let full = std::mem::replace(&mut lane.batch, next);
                    if lane.tx.send(full).is_err() {
                        // The worker stopped: it failed; finish() says why.
                        return Err(Stopped);
                    }
                }
                Ok(())
            }
        }
    }

    /// Flushes every worker and waits for them; returns the totals, or the
    /// first error a worker stopped at.
    pub fn finish(self) -> Result<Summary, PipelineError> {
        match self.mode {
            Mode::Inline(worker) => match self.failed {
                Some(e) => Err(e),
                None => worker.finish(),
            },
            Mode::Threads { lanes, .. } => {
                let mut total = Summary::default();
                let mut first_error = None;
                for lane in lanes {
                    if !lane.batch.frames.is_empty() {
                        let _ = lane.tx.send(lane.batch);
                    }
                    drop(lane.tx);
                    match lane.handle.join() {
                        Ok(Ok(s)) => total.add(&s),
                        Ok(Err(e)) => first_error = first_error.or(Some(e)),
                        Err(_) => {
                            first_error = first_error.or(Some(PipelineError::Panicked("decoder")))
                        }
                    }
                }
                match first_error {
                    Some(e) => Err(e),
                    None => Ok(total),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_the_aggregator_bound() {
        let config = PipelineConfig::default();
        assert_eq!(config.per_worker(1).max_entries, DEFAULT_MAX_ENTRIES);
        assert_eq!(config.per_worker(2).max_entries, DEFAULT_MAX_ENTRIES / 2);
        assert_eq!(config.per_worker(0).max_entries, DEFAULT_MAX_ENTRIES);
        // Never below one key, however many share it.
        let tiny = PipelineConfig {
            max_entries: 3,
            ..PipelineConfig::default()
        };
        assert_eq!(tiny.per_worker(2).max_entries, 1);
        assert_eq!(tiny.per_worker(8).max_entries, 1);
        // Only the bound changes.
        let shared = config.per_worker(4);
        assert_eq!(shared.flush_interval, config.flush_interval);
        assert_eq!(shared.lookahead_from, config.lookahead_from);
    }
}
