//! CPU hints for the hot path: they change how fast the program runs,
//! never what it computes.
//!
//! The shortcut for repeated responses (`pipeline::repeats`) follows a
//! chain of loads for each message — its hash-table slot, the remembered
//! response it points to, the aggregator entries that response updates —
//! each a cache miss on a large working set, and each depending on the
//! one before. Working a few messages ahead, it asks for each link while
//! other messages are being handled, so the loads overlap instead of
//! following one another. The reader of a mapped capture
//! (`source::pcap::slice`) asks for the file's bytes a little ahead of the
//! frame it hands out, for the same reason. The store writer (`store`)
//! walks each batch in key order while its keys and values lie in arrival
//! order, and asks for the entries a few steps ahead of the one it writes.

/// Asks the CPU to bring the cache line holding `p` into its caches
/// (all levels). Any address is allowed, including dangling or unmapped
/// ones: a prefetch never faults and its result is never read.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only hints the cache hierarchy. It reads nothing
    // the program observes and raises no fault whatever the address (Intel
    // SDM vol. 2, PREFETCHh), so no pointer validity is required; SSE, which
    // it needs, is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
