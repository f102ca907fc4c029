//! Capture files mapped into memory instead of read.
//!
//! Reading a file through a buffer copies every byte twice before the
//! parser sees it (see [`super::slice`]); at 10 k names on one decoder the
//! kernel's copy alone was 7 % of the decoder thread. A mapping hands the
//! parser the page cache's own pages.
//!
//! Two things a mapping changes, and how they are kept as they were:
//! * **Memory.** Every page touched stays in the process's resident set
//!   until it is unmapped, so a 300 MB capture would show as 300 MB more
//!   RSS. Pages already read are given back (`MADV_DONTNEED`) every
//!   [`CHUNK`](super::slice::CHUNK) bytes: the page cache keeps them, the
//!   process does not. Nothing holds on to a frame after its callback
//!   returns, so nothing behind the reader is referenced any more.
//! * **A file that shrinks while it is read.** A page past the new end of
//!   the file cannot be read: the kernel raises `SIGBUS`, which would end
//!   the process. [`super::sigbus`] catches it for the mapped ranges,
//!   puts zeros where the file was, and the reader reports the file as
//!   cut short instead of crashing.
//!
//! What is not a regular file (a pipe, a character device, `/dev/stdin`),
//! an empty file, and a file the kernel will not map are read through a
//! buffer as before.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{Advice, Mmap, UncheckedAdvice};

use super::sigbus::Guard;
use super::slice::OnChunk;
use crate::source::progress::ReadProgress;

/// A capture file mapped read-only.
pub(super) struct MappedFile {
    /// Dropped first: the range leaves the handler's watch before it is
    /// unmapped.
    guard: Guard,
    map: Mmap,
}

impl MappedFile {
    /// Maps `file` if it is a regular, non-empty file the kernel maps.
    pub(super) fn open(file: &File) -> Option<MappedFile> {
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() == 0 {
            return None;
        }
        // SAFETY: the mapping is read-only and private to this process;
        // what could make its contents change under us is another process
        // writing or truncating the file. Writes past the mapped length
        // (a capture still growing) are not seen; writes inside it can only
        // change bytes the parser then reads as they are (it trusts none of
        // them); a truncation raises SIGBUS on the pages past the new end,
        // which `sigbus` turns into zeros and a report.
        let map = unsafe { Mmap::map(file) }.ok()?;
        let guard = Guard::register(map.as_ptr(), map.len())?;
        // Read once, front to back: more read-ahead, and pages behind the
        // reader may go first.
        let _ = map.advise(Advice::Sequential);
        Some(MappedFile { guard, map })
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Bytes from the start still backed by the file (see [`Guard`]).
    pub(super) fn valid(&self) -> &AtomicUsize {
        self.guard.valid()
    }

    /// Where the file was found cut short while it was read, if it was.
    pub(super) fn shrunk_at(&self) -> Option<usize> {
        let valid = self.valid().load(Ordering::Acquire);
        (valid < self.map.len()).then_some(valid)
    }

    /// What the reader calls every chunk: publish the bytes read to
    /// `progress`, and give back the pages behind the reader.
    pub(super) fn on_chunk<'a>(&'a self, progress: &'a Arc<ReadProgress>) -> OnChunk<'a> {
        let page = crate::capture::page_size();
        let mut counted = 0;
        let mut released = 0;
        Box::new(move |at: usize| {
            progress.add_bytes((at - counted) as u64);
            counted = at;
            let until = at / page * page;
            if until > released {
                // SAFETY: `DONTNEED` on a read-only file mapping drops the
                // pages from this process's page tables; reading them again
                // faults them back in from the page cache, with the same
                // contents. Nothing refers to bytes before `at` any more
                // (frames are borrowed only for their callback), and the
                // range is inside the mapping and page-aligned.
                let _ = unsafe {
                    self.map.unchecked_advise_range(
                        UncheckedAdvice::DontNeed,
                        released,
                        until - released,
                    )
                };
                released = until;
            }
        })
    }
}
