//! Writer: commits a worker's batches on a thread of its own.
//!
//! A decoder thread that waits for RocksDB — memtable inserts of a batch of
//! new keys, or a write stall while level 0 compacts — stops reading its
//! ring, and the kernel drops what arrives meanwhile. With a [`Writer`] the
//! worker hands over a full batch and goes on filling the next one while
//! this thread writes the last: decoding and storing overlap.
//!
//! The hand-over is a rendezvous, so at most two batches exist per worker
//! (one being written, one being filled): memory stays bounded, and a store
//! slower than the traffic still pushes back on the worker rather than
//! queueing without end. The maps of a written batch come back emptied but
//! with their capacity, so the worker does not regrow them every batch.
//!
//! Batches are written in the order they were handed over. A source that
//! must read what it wrote (an importer checking whether a file's content
//! was imported before) first waits with [`Writer::sync`].
//!
//! **A full disk.** A write that fails with an I/O error ends the writer,
//! and so the pipeline, unless the pipeline waits for space
//! ([`PipelineConfig::wait_for_space`](super::PipelineConfig)): then the
//! writer keeps the batch, says so in one log line, raises
//! `pdns_store_write_blocked` and tries the same batch again every
//! [`RETRY`] until it is written (RocksDB recovers from a full disk by
//! itself once there is room again) or the sensor is stopping. Trying
//! again is safe: a failed write changed nothing, neither in the database
//! (a write batch is atomic) nor in the store's memory (the spool and
//! newly-observed-domain bookkeeping move only after a write succeeded).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::PipelineError;
use crate::metrics;
use crate::store::{Store, StoreError, WriteStats};
use crate::vocab::batch::Batch;

/// How long a writer waiting for space waits between two tries.
const RETRY: Duration = Duration::from_secs(2);
/// How often a writer still waiting says so again.
const REMIND: Duration = Duration::from_secs(60);

/// What the writer thread is asked to do, in order.
enum Job {
    Write(Batch),
    /// Answer once every batch handed over before is written.
    Sync(SyncSender<()>),
}

/// A background writer for one worker.
pub(super) struct Writer {
    jobs: Option<SyncSender<Job>>,
    emptied: Receiver<Batch>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
    /// Time spent waiting to hand batches over, and for the end.
    waited: Duration,
}

impl Writer {
    /// Starts a writer thread called `name` for `store`; with
    /// `wait_for_space`, a write failing with an I/O error is tried again
    /// until it succeeds or the flag is set.
    pub(super) fn spawn(
        store: Arc<Store>,
        name: String,
        wait_for_space: Option<Arc<AtomicBool>>,
    ) -> Result<Writer, PipelineError> {
        let (jobs, incoming) = sync_channel::<Job>(0);
        let (give_back, emptied) = sync_channel::<Batch>(1);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                for job in incoming {
                    match job {
                        Job::Write(mut batch) => {
                            let started = Instant::now();
                            let written = write(&store, &batch, wait_for_space.as_deref())?;
                            metrics::publish_store_write(&written, started.elapsed());
                            batch.clear();
                            // The worker may not want it back yet; then it is
                            // dropped.
                            let _ = give_back.try_send(batch);
                        }
                        Job::Sync(done) => {
                            let _ = done.send(());
                        }
                    }
                }
                Ok::<(), StoreError>(())
            })
            .map_err(|e| PipelineError::Spawn("store writer", e))?;
        Ok(Writer {
            jobs: Some(jobs),
            emptied,
            thread: Some(thread),
            waited: Duration::ZERO,
        })
    }

    /// Hands a batch to the writer thread, waiting while it still writes the
    /// previous one. An error is that of an earlier batch: the writer
    /// stopped at it, and nothing handed over since was written.
    pub(super) fn write(&mut self, batch: Batch) -> Result<(), PipelineError> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let sent = self.send(Job::Write(batch));
        let waited = started.elapsed();
        self.waited += waited;
        metrics::publish_writer_wait(waited);
        if sent {
            Ok(())
        } else {
            Err(self.stop().err().unwrap_or_else(stopped))
        }
    }

    /// Waits until every batch handed over is written.
    pub(super) fn sync(&mut self) -> Result<(), PipelineError> {
        let (done, wait) = sync_channel(1);
        if self.send(Job::Sync(done)) && wait.recv().is_ok() {
            return Ok(());
        }
        Err(self.stop().err().unwrap_or_else(stopped))
    }

    fn send(&self, job: Job) -> bool {
        match &self.jobs {
            Some(jobs) => jobs.send(job).is_ok(),
            None => false,
        }
    }

    /// An emptied batch with its capacity, if one is back.
    pub(super) fn emptied(&self) -> Option<Batch> {
        self.emptied.try_recv().ok()
    }

    /// Waits until every batch handed over is written.
    /// Waits for the writer thread to write everything and end; returns
    /// the time the worker waited for it altogether.
    pub(super) fn finish(mut self) -> Result<Duration, PipelineError> {
        let started = Instant::now();
        self.stop()?;
        Ok(self.waited + started.elapsed())
    }

    fn stop(&mut self) -> Result<(), PipelineError> {
        self.jobs = None;
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e.into()),
            Some(Err(_)) => Err(stopped()),
        }
    }
}

impl Drop for Writer {
    /// A writer dropped without [`Writer::finish`] (its worker failed)
    /// still writes what it was given before the thread ends.
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Writes `batch`; with `stop`, an I/O error is waited out (see the module
/// documentation) until the write succeeds or `stop` is set.
fn write(
    store: &Store,
    batch: &Batch,
    stop: Option<&AtomicBool>,
) -> Result<WriteStats, StoreError> {
    let mut waiting: Option<(Instant, Instant)> = None;
    loop {
        let error = match store.write(batch) {
            Ok(written) => {
                if let Some((since, _)) = waiting {
                    metrics::set_store_write_blocked(false);
                    tracing::warn!(
                        "store writes resumed after {:.0} s; the batch held meanwhile is written",
                        since.elapsed().as_secs_f64()
                    );
                }
                return Ok(written);
            }
            Err(e) => e,
        };
        let Some(stop) = stop.filter(|_| error.is_io()) else {
            return Err(error);
        };
        metrics::store_write_failed();
        match &mut waiting {
            None => {
                metrics::set_store_write_blocked(true);
                tracing::error!(
                    "store write failed: {error}; holding the batch ({} records, {} negative \
                     answers) and trying again every {} s until it can be written (RocksDB \
                     recovers once there is room). Meanwhile capture drops what it cannot \
                     hold, counted as ring drops",
                    batch.records.len(),
                    batch.negatives.len(),
                    RETRY.as_secs()
                );
                let now = Instant::now();
                waiting = Some((now, now));
            }
            Some((since, reminded)) if reminded.elapsed() >= REMIND => {
                tracing::error!(
                    "store writes still failing after {:.0} s: {error}",
                    since.elapsed().as_secs_f64()
                );
                *reminded = Instant::now();
            }
            Some(_) => {}
        }
        if stop.load(Ordering::Acquire) {
            tracing::error!(
                "stopping while store writes fail: the held batch ({} records) is lost",
                batch.records.len()
            );
            return Err(error);
        }
        std::thread::sleep(RETRY);
    }
}

/// The thread is gone without an error of its own: it panicked.
fn stopped() -> PipelineError {
    PipelineError::Panicked("store writer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::store::{Filter, Selector};
    use crate::vocab::Rtype;
    use crate::vocab::name;
    use crate::vocab::observation::ObservationSink;
    use crate::vocab::value::Origin;

    fn batch(owner: &str, addresses: std::ops::Range<u8>) -> Batch {
        let mut agg = Aggregator::new(1000, Origin::WIRE);
        let owner = name::encode_presentation(owner).unwrap();
        for a in addresses {
            agg.record(&owner, Rtype::A, &[192, 0, 2, a], 300, 1000 + u64::from(a));
        }
        agg.take()
    }

    fn count(store: &Store, owner: &str) -> usize {
        let selector = Selector::Owner {
            name: name::encode_presentation(owner).unwrap(),
            wildcard: false,
        };
        store.records(&selector, &Filter::default()).count()
    }

    #[test]
    fn every_batch_handed_over_is_written_by_finish() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let mut writer = Writer::spawn(Arc::clone(&store), "test-writer".into(), None).unwrap();
        for i in 0..20u8 {
            writer.write(batch("a.test", i * 10..i * 10 + 10)).unwrap();
        }
        writer.write(batch("a.test", 0..10)).unwrap();
        writer.finish().unwrap();
        let selector = Selector::Owner {
            name: name::encode_presentation("a.test").unwrap(),
            wildcard: false,
        };
        let filter = Filter::default();
        let records: Vec<_> = store
            .records(&selector, &filter)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 200);
        let first = records
            .iter()
            .find(|r| r.rdata == [192, 0, 2, 0])
            .expect("192.0.2.0 stored");
        assert_eq!(first.value.count, 2);
    }

    #[test]
    fn sync_returns_once_everything_before_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let mut writer = Writer::spawn(Arc::clone(&store), "test-writer".into(), None).unwrap();
        for round in 0..5u8 {
            writer.write(batch("s.test", 0..(round + 1) * 40)).unwrap();
            writer.sync().unwrap();
            assert_eq!(count(&store, "s.test"), usize::from(round + 1) * 40);
        }
        writer.finish().unwrap();
    }

    #[test]
    fn checkpoints_are_written_with_their_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let mut writer = Writer::spawn(Arc::clone(&store), "test-writer".into(), None).unwrap();
        let mut b = batch("c.test", 0..3);
        b.checkpoints.push((b"test/pos".to_vec(), b"3".to_vec()));
        writer.write(b).unwrap();
        // A batch of bookkeeping alone is written too.
        let mut alone = Batch::default();
        alone
            .checkpoints
            .push((b"test/pos".to_vec(), b"4".to_vec()));
        writer.write(alone).unwrap();
        writer.finish().unwrap();
        assert_eq!(count(&store, "c.test"), 3);
        assert_eq!(store.meta_get(b"test/pos").unwrap(), Some(b"4".to_vec()));
    }

    #[test]
    fn emptied_batches_come_back_empty_with_their_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let mut writer = Writer::spawn(store, "test-writer".into(), None).unwrap();
        writer.write(batch("b.test", 0..200)).unwrap();
        // The rendezvous returns once the thread took the batch; the
        // emptied maps follow when it is written.
        writer.write(batch("b.test", 0..1)).unwrap();
        let back = (0..1000)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(2));
                writer.emptied()
            })
            .expect("a batch came back");
        assert!(back.is_empty());
        assert!(back.records.capacity() >= 200);
        writer.finish().unwrap();
    }
}
