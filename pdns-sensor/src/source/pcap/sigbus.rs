//! Surviving a mapped capture that shrinks while it is read.
//!
//! When a mapped file is truncated by another program (a `logrotate`
//! `copytruncate`, a capture tool reusing its file name), the pages past
//! its new end no longer exist, and touching one raises `SIGBUS`. Left to
//! the default action, that ends the process: a long `ingest` lost, by
//! something no `read`-based reader would even notice as more than a short
//! file.
//!
//! So the process has one `SIGBUS` handler, installed the first time a
//! capture is mapped. A mapped capture registers its address range in a
//! fixed table ([`Guard`]). A fault inside a registered range is answered
//! by mapping zero pages over the rest of that range (the file's contents
//! from that page on are gone anyway) and recording where they start; the
//! access is then retried and reads zeros. The reader checks that mark
//! after each block ([`Guard::valid`]) and stops where the file stopped,
//! so no frame made of zeros is ever delivered. A fault anywhere else puts
//! the previous handler back and returns: the access faults again and is
//! handled as it would have been without us (Rust's own handler for stack
//! guard pages, or the default action).
//!
//! The handler only loads atomics and makes the `mmap` and `sigaction`
//! system calls: nothing that allocates or locks.
//!
//! Exact to the page: in the page where the file now ends, the bytes past
//! its end read as zeros without a fault. Up to a page of them may be read
//! before the next page faults (in classic pcap, at most 255 empty 16-byte
//! records, which decode to nothing: an empty Ethernet frame is dropped as
//! `link_truncated`).

use std::ffi::c_void;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Mapped captures that can be registered at once; one more is read
/// through a buffer instead.
const SLOTS: usize = 64;

struct Slot {
    /// First byte of the mapping; 0 while the slot is free.
    start: AtomicUsize,
    /// One past the last byte.
    end: AtomicUsize,
    /// Bytes from `start` still backed by the file: the mapping's length
    /// until a fault cut it short.
    valid: AtomicUsize,
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        valid: AtomicUsize::new(usize::MAX),
    }
}; SLOTS];

static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The handler installed before ours (`Err` if installing ours failed).
static PREVIOUS: OnceLock<Result<libc::sigaction, ()>> = OnceLock::new();

/// A mapped range under the handler's watch, for as long as it lives.
pub(super) struct Guard {
    slot: &'static Slot,
}

impl Guard {
    /// Watches `len` bytes from `start`; `None` if the handler could not be
    /// installed or every slot is taken (read the file another way).
    pub(super) fn register(start: *const u8, len: usize) -> Option<Guard> {
        let start = start as usize;
        if start == 0 || len == 0 || !installed() {
            return None;
        }
        for slot in &TABLE {
            // Claimed by swapping in the end first; published by `start`.
            if slot
                .end
                .compare_exchange(0, start + len, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.valid.store(len, Ordering::Relaxed);
                slot.start.store(start, Ordering::Release);
                return Some(Guard { slot });
            }
        }
        None
    }

    /// Bytes from the start of the range still backed by the file: its
    /// length, or where it was found cut short.
    #[inline]
    pub(super) fn valid(&self) -> &AtomicUsize {
        &self.slot.valid
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.slot.start.store(0, Ordering::Release);
        self.slot.valid.store(usize::MAX, Ordering::Relaxed);
        self.slot.end.store(0, Ordering::Release);
    }
}

/// Installs the handler once; whether it is in place.
fn installed() -> bool {
    PREVIOUS
        .get_or_init(|| {
            PAGE.store(crate::capture::page_size(), Ordering::Relaxed);
            // SAFETY: both sigaction structs are plain data, zeroed is a
            // valid start; the handler has the SA_SIGINFO signature, and
            // sigaction is given valid pointers.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_sigbus as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(libc::SIGBUS, &action, &mut previous) == 0 {
                    Ok(previous)
                } else {
                    Err(())
                }
            }
        })
        .is_ok()
}

extern "C" fn on_sigbus(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut c_void) {
    // SAFETY: the kernel hands an SA_SIGINFO handler a valid siginfo; for
    // SIGBUS, `si_addr` is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for slot in &TABLE {
        let start = slot.start.load(Ordering::Acquire);
        let end = slot.end.load(Ordering::Acquire);
        if start == 0 || addr < start || addr >= end {
            continue;
        }
        let from = addr & !(page - 1);
        // SAFETY: `[from, end)` lies inside a live mapping of ours (the
        // guard is dropped before the mapping is); replacing those pages
        // with private zero pages only changes what reads of them return.
        // No reference to the file's bytes there can be relied on: the
        // file no longer has them.
        let zeros = unsafe {
            libc::mmap(
                from as *mut c_void,
                end - from,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if zeros != libc::MAP_FAILED {
            slot.valid.fetch_min(from - start, Ordering::AcqRel);
            return;
        }
        break;
    }
    // Not ours (or not repairable): hand the signal back to whoever had
    // it, by putting their action back; the access faults again.
    // SAFETY: sigaction with a valid action (theirs, or the default).
    unsafe {
        match PREVIOUS.get() {
            Some(Ok(previous)) => {
                libc::sigaction(libc::SIGBUS, previous, std::ptr::null_mut());
            }
            _ => {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
            }
        }
    }
}
