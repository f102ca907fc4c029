//! The pipeline: decode → extract → aggregate → store, on N threads.
//!
//! A source pushes frames into a [`Pipeline`]. With one thread they are
//! processed inline, in the caller's thread. With more, each frame is copied
//! into a per-worker batch chosen by [`flow_hash`] — symmetric over the IP
//! addresses, so both directions of a TCP stream and every fragment of a
//! datagram reach the same decoder — and batches travel over bounded
//! channels, so a slow store back-pressures the reader instead of growing
//! memory. (Live capture runs one [`Worker`] per ring instead, with the
//! kernel's fanout hash doing this dispatch.)
//!
//! Each worker owns a decoder, an extractor and an aggregator, and hands
//! its aggregates to its own store [`Writer`] thread when the aggregator is
//! full or the flush interval has passed, so decoding goes on while RocksDB
//! writes. [`Pipeline::finish`] flushes everything that
//! is left; nothing pushed before it is lost.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::aggregate::Aggregator;
use crate::decode::{DecodeConfig, DecodeStats, Decoder, Frame, LinkType, Timestamp, flow_hash};
use crate::extract::{Extractor, Sections};
use crate::metrics::METRICS;
use crate::store::{Store, StoreError, Writer};

/// How the pipeline runs.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Decoder threads; 0 means one per core.
    pub threads: usize,
    pub decode: DecodeConfig,
    pub sections: Sections,
    /// Aggregator bound per thread (keys).
    pub max_entries: usize,
    /// Longest time (wall clock) observations wait in memory before being
    /// written: the window a crash can lose.
    pub flush_interval: Duration,
    /// Origin bit stamped on every observation.
    pub origin: u8,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            threads: 0,
            decode: DecodeConfig::default(),
            sections: Sections::default(),
            max_entries: 100_000,
            flush_interval: Duration::from_secs(5),
            origin: crate::store::value::origin::WIRE,
        }
    }
}

impl PipelineConfig {
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
    /// Keys written to the store (after pre-aggregation), per table.
    pub records_written: u64,
    pub negatives_written: u64,
    pub flushes: u64,
}

/// One decoder thread's state: decode → extract → aggregate → store for
/// the frames it is given. [`Pipeline`] runs these on its own threads; a
/// live-capture ring thread owns one directly and feeds it frames borrowed
/// from the ring.
pub struct Worker {
    decoder: Decoder,
    extractor: Extractor,
    aggregator: Aggregator,
    /// Counters of the extract stage (the decoder keeps its own).
    extract_stats: DecodeStats,
    writer: Writer,
    flush_interval: Duration,
    last_flush: Instant,
    since_check: u32,
    /// Aggregator sizes last added to the shared entries gauge.
    published_entries: (i64, i64),
    summary: Summary,
}

impl Worker {
    /// A worker writing to `store` through a writer thread called
    /// `writer_name` (fails only if that thread cannot be started).
    pub fn new(
        config: &PipelineConfig,
        store: Arc<Store>,
        writer_name: &str,
    ) -> Result<Worker, StoreError> {
        Ok(Worker {
            decoder: Decoder::new(&config.decode),
            extractor: Extractor::new(config.sections),
            aggregator: Aggregator::new(config.max_entries, config.origin),
            extract_stats: DecodeStats::default(),
            writer: Writer::spawn(store, writer_name.to_string())?,
            flush_interval: config.flush_interval,
            last_flush: Instant::now(),
            since_check: 0,
            published_entries: (0, 0),
            summary: Summary::default(),
        })
    }

    /// Decodes one frame; flushes when the aggregator is full or the flush
    /// interval has passed (checked every few thousand frames).
    #[inline]
    pub fn process(&mut self, frame: &Frame<'_>) -> Result<(), StoreError> {
        let Worker {
            decoder,
            extractor,
            aggregator,
            extract_stats,
            ..
        } = self;
        decoder.decode(frame, &mut |payload| {
            extractor.extract(&payload, extract_stats, aggregator)
        });
        self.since_check += 1;
        if self.aggregator.is_full() {
            self.flush()?;
        } else if self.since_check >= 4096 {
            self.since_check = 0;
            self.publish_entries();
            if self.last_flush.elapsed() >= self.flush_interval {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Moves the shared `pdns_aggregator_entries` gauge by this worker's
    /// change since it last reported (workers share the gauge).
    fn publish_entries(&mut self) {
        let now = (
            self.aggregator.records.len() as i64,
            self.aggregator.negatives.len() as i64,
        );
        let gauge = &METRICS.aggregator_entries;
        gauge
            .with_label_values(&["records"])
            .add(now.0 - self.published_entries.0);
        gauge
            .with_label_values(&["negative"])
            .add(now.1 - self.published_entries.1);
        self.published_entries = now;
    }

    /// Flushes if the flush interval has passed; for callers that may go
    /// a while without frames (an idle ring).
    pub fn tick(&mut self) -> Result<(), StoreError> {
        if self.last_flush.elapsed() >= self.flush_interval {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands the aggregates to the writer thread and publishes counters.
    /// An error is the store's, from an earlier batch.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.since_check = 0;
        self.last_flush = Instant::now();
        let aggregates = self.aggregator.take_reusing(self.writer.emptied());
        self.publish_entries();
        self.summary.records_written += aggregates.records.len() as u64;
        self.summary.negatives_written += aggregates.negatives.len() as u64;
        self.summary.flushes += 1;
        self.writer.write(aggregates)?;
        let mut delta = self.decoder.stats.take();
        delta.add(&self.extract_stats.take());
        METRICS.add_decode(&delta);
        self.summary.decode.add(&delta);
        Ok(())
    }

    /// Ends the input (releasing the DNS messages the decoder still held),
    /// flushes what is left and returns the worker's totals.
    pub fn finish(mut self) -> Result<Summary, StoreError> {
        let Worker {
            decoder,
            extractor,
            aggregator,
            extract_stats,
            ..
        } = &mut self;
        decoder.finish(&mut |payload| extractor.extract(&payload, extract_stats, aggregator));
        self.flush()?;
        self.writer.finish()?;
        Ok(self.summary)
    }
}

/// Frames copied for a worker thread: one buffer, many frames.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    frames: Vec<(Timestamp, LinkType, u32, u32)>,
}

const BATCH_FRAMES: usize = 512;
const BATCH_BYTES: usize = 512 << 10;
/// Batches queued per worker: bounds memory at workers × this × BATCH_BYTES.
const QUEUE_DEPTH: usize = 8;

impl Batch {
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
    batch: Batch,
    tx: Sender<Batch>,
    handle: JoinHandle<Result<Summary, StoreError>>,
}

enum Mode {
    Inline(Box<Worker>),
    Threads {
        lanes: Vec<Lane>,
        free: Receiver<Batch>,
    },
}

/// A running pipeline; push frames, then [`finish`](Pipeline::finish).
pub struct Pipeline {
    mode: Mode,
}

impl Pipeline {
    pub fn new(config: &PipelineConfig, store: Arc<Store>) -> Result<Pipeline, StoreError> {
        let threads = config.thread_count();
        if threads <= 1 {
            return Ok(Pipeline {
                mode: Mode::Inline(Box::new(Worker::new(config, store, "pdns-store")?)),
            });
        }
        let (free_tx, free_rx) = crossbeam_channel::bounded::<Batch>(threads * (QUEUE_DEPTH + 2));
        let mut lanes = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = crossbeam_channel::bounded::<Batch>(QUEUE_DEPTH);
            let mut worker = Worker::new(config, Arc::clone(&store), &format!("pdns-store-{i}"))?;
            let free_tx = free_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("pdns-decode-{i}"))
                .spawn(move || {
                    for mut batch in rx {
                        for &(ts, link, start, len) in &batch.frames {
                            let data = &batch.bytes[start as usize..(start + len) as usize];
                            worker.process(&Frame { ts, link, data })?;
                        }
                        batch.clear();
                        let _ = free_tx.try_send(batch);
                    }
                    worker.finish()
                })?;
            lanes.push(Lane {
                batch: Batch::default(),
                tx,
                handle,
            });
        }
        Ok(Pipeline {
            mode: Mode::Threads {
                lanes,
                free: free_rx,
            },
        })
    }

    /// Feeds one frame. Returns an error once the store failed; the
    /// caller should stop and call [`finish`](Pipeline::finish).
    pub fn push(&mut self, frame: &Frame<'_>) -> Result<(), StoreError> {
        match &mut self.mode {
            Mode::Inline(worker) => worker.process(frame),
            Mode::Threads { lanes, free } => {
                let n = lanes.len() as u64;
                let lane = &mut lanes[(flow_hash(frame.link, frame.data) % n) as usize];
                lane.batch.push(frame);
                if lane.batch.is_full() {
                    let next = free.try_recv().unwrap_or_default();
                    let full = std::mem::replace(&mut lane.batch, next);
                    if lane.tx.send(full).is_err() {
                        // The worker stopped: it failed; finish() reports why.
                        return Err(StoreError::Io(std::io::Error::other(
                            "a decoder thread stopped",
                        )));
                    }
                }
                Ok(())
            }
        }
    }

    /// Flushes every worker and waits for them; returns the totals.
    pub fn finish(self) -> Result<Summary, StoreError> {
        match self.mode {
            Mode::Inline(worker) => worker.finish(),
            Mode::Threads { lanes, .. } => {
                let mut total = Summary::default();
                let mut first_error = None;
                for lane in lanes {
                    if !lane.batch.frames.is_empty() {
                        let _ = lane.tx.send(lane.batch);
                    }
                    drop(lane.tx);
                    match lane.handle.join() {
                        Ok(Ok(s)) => {
                            total.decode.add(&s.decode);
                            total.records_written += s.records_written;
                            total.negatives_written += s.negatives_written;
                            total.flushes += s.flushes;
                        }
                        Ok(Err(e)) => first_error = first_error.or(Some(e)),
                        Err(_) => {
                            first_error = first_error.or(Some(StoreError::Io(
                                std::io::Error::other("a decoder thread panicked"),
                            )))
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
