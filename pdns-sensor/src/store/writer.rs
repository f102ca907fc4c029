//! Writer: commits a decoder's aggregates on a thread of its own.
//!
//! A decoder thread that waits for RocksDB — memtable inserts of a batch of
//! new keys, or a write stall while level 0 compacts — stops reading its
//! ring, and the kernel drops what arrives meanwhile. With a [`Writer`] the
//! decoder hands over a full aggregator and goes on filling the next one
//! while this thread writes the last: decoding and storing overlap.
//!
//! The hand-over is a rendezvous, so at most two batches exist per decoder
//! (one being written, one being filled): memory stays bounded, and a store
//! slower than the traffic still pushes back on the decoder rather than
//! queueing without end. The maps of a written batch come back emptied but
//! with their capacity, so the decoder does not regrow them every batch.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::aggregate::Aggregates;
use crate::metrics::METRICS;
use crate::store::{Store, StoreError};

/// A background writer for one decoder thread.
pub struct Writer {
    batches: Option<SyncSender<Aggregates>>,
    emptied: Receiver<Aggregates>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
}

impl Writer {
    /// Starts a writer thread called `name` for `store`.
    pub fn spawn(store: Arc<Store>, name: String) -> std::io::Result<Writer> {
        let (batches, incoming) = sync_channel::<Aggregates>(0);
        let (give_back, emptied) = sync_channel::<Aggregates>(1);
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            for mut aggregates in incoming {
                store.write(&aggregates)?;
                aggregates.records.clear();
                aggregates.negatives.clear();
                // The decoder may not want it back yet; then it is dropped.
                let _ = give_back.try_send(aggregates);
            }
            Ok(())
        })?;
        Ok(Writer {
            batches: Some(batches),
            emptied,
            thread: Some(thread),
        })
    }

    /// Hands a batch to the writer thread, waiting while it still writes the
    /// previous one. An error is that of an earlier batch: the writer
    /// stopped at it, and nothing handed over since was written.
    pub fn write(&mut self, aggregates: Aggregates) -> Result<(), StoreError> {
        if aggregates.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let sent = match &self.batches {
            Some(batches) => batches.send(aggregates).is_ok(),
            None => false,
        };
        METRICS
            .store_wait_seconds
            .inc_by(started.elapsed().as_secs_f64());
        if sent {
            Ok(())
        } else {
            Err(self.stop().err().unwrap_or_else(stopped))
        }
    }

    /// Empty maps of an earlier batch, with their capacity, if one is back.
    pub fn emptied(&self) -> Option<Aggregates> {
        self.emptied.try_recv().ok()
    }

    /// Waits until every batch handed over is written.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), StoreError> {
        self.batches = None;
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(stopped()),
        }
    }
}

impl Drop for Writer {
    /// A writer dropped without [`Writer::finish`] (its decoder failed)
    /// still writes what it was given before the thread ends.
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn stopped() -> StoreError {
    StoreError::Io(std::io::Error::other("the store writer thread stopped"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::extract::ObservationSink;
    use crate::name;
    use crate::store::value::origin;

    fn batch(owner: &str, addresses: std::ops::Range<u8>) -> Aggregates {
        let mut agg = Aggregator::new(1000, origin::WIRE);
        let owner = name::encode_str(owner).unwrap();
        for a in addresses {
            agg.record(&owner, 1, &[192, 0, 2, a], 300, 1000 + u64::from(a));
        }
        agg.take()
    }

    #[test]
    fn every_batch_handed_over_is_written_by_finish() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let mut writer = Writer::spawn(Arc::clone(&store), "test-writer".into()).unwrap();
        for i in 0..20u8 {
            writer.write(batch("a.test", i * 10..i * 10 + 10)).unwrap();
        }
        writer.write(batch("a.test", 0..10)).unwrap();
        writer.finish().unwrap();
        let selector = crate::store::Selector::Owner {
            name: name::encode_str("a.test").unwrap(),
            wildcard: false,
        };
        let filter = crate::store::Filter::default();
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
    fn emptied_maps_come_back_empty_with_their_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let mut writer = Writer::spawn(store, "test-writer".into()).unwrap();
        writer.write(batch("b.test", 0..200)).unwrap();
        // The rendezvous returns once the thread took the batch; the
        // emptied maps follow when it is written.
        writer.write(batch("b.test", 0..1)).unwrap();
        let back = (0..1000)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(2));
                writer.emptied()
            })
            .expect("a batch came back");
        assert!(back.is_empty());
        assert!(back.records.capacity() >= 200);
        writer.finish().unwrap();
    }
}
