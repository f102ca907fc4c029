//! The worker: one thread's decode → extract → aggregate → store, the same
//! for every source.
//!
//! A source hands over what it has, at the step where it belongs:
//!
//! | source has | entry point | steps run |
//! |---|---|---|
//! | captured frames (pcap, live rings) | [`Worker::frame`] | decode, extract, aggregate |
//! | DNS messages (a resolver's dnstap) | [`Worker::message`] | extract, aggregate |
//! | responses rebuilt from a log (Zeek) | [`Worker::response`] | the extraction rules, aggregate |
//!
//! A DNS message, from frames or from dnstap, goes through [`Repeats`]
//! first: a response already extracted in the current batch is counted
//! again without being parsed (see `repeats`).
//!
//! Whatever the entry point, the observations go through the same rules
//! ([`crate::extract::Response::observe`]), into the same aggregator, and
//! leave through the same [`Writer`] thread on the same flush schedule: a
//! batch is handed over when the aggregator is full or the flush interval
//! has passed.
//!
//! Sources whose read position must be stored with the data (Zeek import
//! and follow) do not let the worker flush on its own: they ask
//! [`Worker::flush_due`] and flush with their [`Checkpoint`] themselves, so
//! the position always travels in the batch that covers it. Frame and
//! message sources have no position; their entry points flush when due.
//!
//! At every flush the worker publishes what its stages counted since the
//! last one (decoder, extractor, aggregator sizes) to the metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::repeats::{Capacity, Repeats};
use super::writer::Writer;
use super::{PipelineConfig, PipelineError, Summary};
use crate::aggregate::Aggregator;
use crate::decode::Decoder;
use crate::extract::{ExtractStats, Extractor, Outcome, Response};
use crate::metrics;
use crate::store::Store;
use crate::vocab::batch::Checkpoint;
use crate::vocab::packet::{DnsMessage, Frame};

/// Inputs between two looks at the flush clock.
const CLOCK_EVERY: u32 = 4096;

/// One thread's pipeline state (see the module docs).
pub struct Worker {
    decoder: Decoder,
    extractor: Extractor,
    /// Responses already extracted in this batch (the shortcut for
    /// repeats, see `repeats`).
    repeats: Repeats,
    aggregator: Aggregator,
    /// The extractor's counters since the last flush (the decoder keeps
    /// its own).
    extract_stats: ExtractStats,
    writer: Writer,
    flush_interval: Duration,
    last_flush: Instant,
    since_check: u32,
    /// Aggregator sizes last added to the shared entries gauge.
    published_entries: (usize, usize),
    summary: Summary,
}

impl Worker {
    /// A worker writing to `store` through a writer thread called
    /// `writer_name`.
    pub fn new(
        config: &PipelineConfig,
        store: Arc<Store>,
        writer_name: &str,
    ) -> Result<Worker, PipelineError> {
        Ok(Worker {
            decoder: Decoder::new(&config.decode),
            extractor: Extractor::new(config.sections),
            repeats: Repeats::new(Capacity::for_keys(config.max_entries))
                .with_lookahead_from(config.lookahead_from),
            aggregator: Aggregator::new(config.max_entries, config.origin),
            extract_stats: ExtractStats::default(),
            writer: Writer::spawn(
                store,
                writer_name.to_string(),
                config.wait_for_space.clone(),
            )?,
            flush_interval: config.flush_interval,
            last_flush: Instant::now(),
            since_check: 0,
            published_entries: (0, 0),
            summary: Summary::default(),
        })
    }

    /// A captured frame: decoded, extracted and aggregated; flushes when
    /// due. An error is the store's, from an earlier batch.
    #[inline]
    pub fn frame(&mut self, frame: &Frame<'_>) -> Result<(), PipelineError> {
        let Worker {
            decoder,
            extractor,
            repeats,
            aggregator,
            extract_stats,
            ..
        } = self;
        decoder.decode(frame, &mut |message| {
            repeats.push(&message, extractor, extract_stats, aggregator)
        });
        self.after_input()
    }

    /// A DNS message from a source that sees messages rather than frames:
    /// extracted and aggregated; flushes when due.
    #[inline]
    pub fn message(&mut self, message: &DnsMessage<'_>) -> Result<(), PipelineError> {
        self.repeats.push(
            message,
            &mut self.extractor,
            &mut self.extract_stats,
            &mut self.aggregator,
        );
        self.after_input()
    }

    /// A response a source rebuilt itself: the extraction rules applied and
    /// the observations aggregated. Never flushes: the source flushes with
    /// its position when [`Worker::flush_due`] says so.
    #[inline]
    pub fn response(&mut self, response: &mut Response) -> Outcome {
        let outcome = response.observe(&mut self.aggregator);
        self.extract_stats.observations += outcome.records as u64;
        self.extract_stats.negatives += u64::from(outcome.negative);
        outcome
    }

    /// Counts an input; flushes if the aggregator is full or, looked at
    /// every few thousand inputs, the flush interval has passed.
    #[inline]
    fn after_input(&mut self) -> Result<(), PipelineError> {
        self.since_check += 1;
        if self.aggregator.is_full() {
            self.flush()?;
        } else if self.since_check >= CLOCK_EVERY {
            self.since_check = 0;
            self.publish_entries();
            if self.last_flush.elapsed() >= self.flush_interval {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Whether a flush is due: the aggregator is full, or the flush
    /// interval has passed since the last one.
    pub fn flush_due(&self) -> bool {
        self.aggregator.is_full() || self.last_flush.elapsed() >= self.flush_interval
    }

    /// Flushes if the flush interval has passed; for sources that may go a
    /// while without input (an idle ring).
    pub fn tick(&mut self) -> Result<(), PipelineError> {
        if self.last_flush.elapsed() >= self.flush_interval {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands the aggregates to the writer thread and publishes counters.
    /// An error is the store's, from an earlier batch.
    pub fn flush(&mut self) -> Result<(), PipelineError> {
        self.flush_with(Vec::new())
    }

    /// [`Worker::flush`], with bookkeeping entries written atomically with
    /// the batch (even if it holds no observation).
    pub fn flush_with(&mut self, checkpoints: Vec<Checkpoint>) -> Result<(), PipelineError> {
        self.drain();
        self.since_check = 0;
        self.last_flush = Instant::now();
        let mut batch = self.aggregator.take_reusing(self.writer.emptied());
        batch.checkpoints = checkpoints;
        self.publish_entries();
        if !batch.is_empty() {
            self.summary.records_written += batch.records.len() as u64;
            self.summary.negatives_written += batch.negatives.len() as u64;
            self.summary.flushes += 1;
            self.writer.write(batch)?;
        }
        let decode = self.decoder.take_stats();
        let extract = self.extract_stats.take();
        metrics::publish_decode(&decode);
        metrics::publish_extract(&extract);
        self.summary.decode.add(&decode);
        self.summary.extract.add(&extract);
        Ok(())
    }

    /// Flushes and waits until everything handed over is written: what
    /// this worker wrote can be read back from the store afterwards.
    pub fn sync(&mut self) -> Result<(), PipelineError> {
        self.drain();
        if !self.aggregator.is_empty() {
            self.flush()?;
        }
        self.writer.sync()
    }

    /// Extracts the messages [`Repeats`] holds back (a few at most, see
    /// its *Lookahead*): called before every flush, so a message waits no
    /// longer than the aggregates do.
    fn drain(&mut self) {
        self.repeats.drain(
            &mut self.extractor,
            &mut self.extract_stats,
            &mut self.aggregator,
        );
    }

    /// Whether the aggregator reached its bound (a flush is due now,
    /// whatever the clock says).
    pub fn is_full(&self) -> bool {
        self.aggregator.is_full()
    }

    /// Moves the shared `pdns_aggregator_entries` gauge by this worker's
    /// change since it last reported (workers share the gauge).
    fn publish_entries(&mut self) {
        let now = self.aggregator.table_lens();
        metrics::publish_aggregator_entries(now, self.published_entries);
        self.published_entries = now;
    }

    /// Ends the input (releasing the DNS messages the decoder still held),
    /// flushes what is left, waits for the writer and returns the worker's
    /// totals.
    pub fn finish(self) -> Result<Summary, PipelineError> {
        self.finish_with(Vec::new())
    }

    /// [`Worker::finish`], the last batch carrying `checkpoints`.
    pub fn finish_with(mut self, checkpoints: Vec<Checkpoint>) -> Result<Summary, PipelineError> {
        let Worker {
            decoder,
            extractor,
            repeats,
            aggregator,
            extract_stats,
            ..
        } = &mut self;
        decoder.finish(&mut |message| repeats.push(&message, extractor, extract_stats, aggregator));
        self.flush_with(checkpoints)?;
        self.summary.writer_wait_secs = self.writer.finish()?.as_secs_f64();
        Ok(self.summary)
    }
}

/// A live-capture ring thread feeds its worker.
impl crate::capture::thread::FrameSink for Worker {
    type Summary = Summary;

    #[inline]
    fn frame(&mut self, frame: &Frame<'_>) -> anyhow::Result<()> {
        Ok(Worker::frame(self, frame)?)
    }

    fn idle(&mut self) -> anyhow::Result<()> {
        Ok(self.tick()?)
    }

    fn finish(self) -> anyhow::Result<Summary> {
        Ok(Worker::finish(self)?)
    }
}
