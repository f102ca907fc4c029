//! How far a source has read, for whoever shows it.
//!
//! A long `ingest` or `import-zeek` shows its progress from another thread
//! (a bar on a terminal, a periodic log line otherwise). The reading thread
//! only bumps two relaxed atomic counters, and never per packet: bytes once
//! per read from the file (a buffer refill, hundreds of kilobytes; every
//! mebibyte of a mapped capture), items (packets, lines) once per 4096.
//! Showing progress costs the hot path nothing measurable.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

/// Items counted locally before they are published.
pub(crate) const ITEMS_BATCH: u64 = 4096;

/// Bytes and items read so far, over all the files of a job.
#[derive(Debug, Default)]
pub struct ReadProgress {
    bytes: AtomicU64,
    items: AtomicU64,
}

impl ReadProgress {
    /// Bytes of input consumed: whole files done, and the current one as
    /// far as it was read (compressed bytes for a gzip file).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Packets or lines read.
    pub fn items(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_items(&self, n: u64) {
        self.items.fetch_add(n, Ordering::Relaxed);
    }

    /// Ends a file of `size` bytes whose reading started when [`bytes`]
    /// said `start`: counts what was not read through the counter (a file
    /// skipped or cut short, a gzip trailer), so the total adds up.
    ///
    /// [`bytes`]: ReadProgress::bytes
    pub fn finish_file(&self, start: u64, size: u64) {
        let end = start.saturating_add(size);
        let now = self.bytes();
        if now < end {
            self.add_bytes(end - now);
        }
    }
}

/// A reader that counts the bytes read through it.
pub(crate) struct Counted<R> {
    inner: R,
    progress: std::sync::Arc<ReadProgress>,
}

impl<R> Counted<R> {
    pub(crate) fn new(inner: R, progress: std::sync::Arc<ReadProgress>) -> Self {
        Counted { inner, progress }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add_bytes(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_bytes_read_and_completes_files() {
        let p = Arc::new(ReadProgress::default());
        let mut r = Counted::new(&b"0123456789"[..], Arc::clone(&p));
        let mut buf = [0; 4];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(p.bytes(), 4);
        // The rest of a 10-byte file was never read (damage, skip).
        p.finish_file(0, 10);
        assert_eq!(p.bytes(), 10);
        // A file that grew while read is not counted back.
        let mut r = Counted::new(&b"abcdef"[..], Arc::clone(&p));
        io::copy(&mut r, &mut io::sink()).unwrap();
        p.finish_file(10, 3);
        assert_eq!(p.bytes(), 16);
    }
}
