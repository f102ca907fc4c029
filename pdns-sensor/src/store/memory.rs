//! What the process's memory is made of, beyond what RocksDB reports of
//! its own caches ([`Store::properties`](super::Store::properties)): the
//! allocator's view, for `pdns_allocator_bytes` in `/metrics`.
//!
//! RSS alone cannot tell a leak from fragmentation: both show as resident
//! pages. The allocator can — `allocated` is the bytes the program (Rust
//! and RocksDB's C++ alike) holds right now, `resident` what the allocator
//! keeps in RAM for it, and the gap is what it holds freed or for its own
//! bookkeeping. With glibc's malloc the sensor's RSS grew at every
//! compaction while nothing it held grew (the bench's soak); the binary now
//! runs on jemalloc, which reports these.
//!
//! The library does not link an allocator: the binary registers how to
//! read one with [`set_allocator_stats`] (its `main`), so tests and fuzz
//! targets built from the library keep the system allocator, and a process
//! that registered nothing exports no such metric.

use std::sync::OnceLock;

/// The allocator's byte counts (jemalloc's `stats.*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes allocated by the program and not freed.
    pub allocated: u64,
    /// Bytes of the pages that hold those allocations (allocated plus
    /// their pages' unused parts).
    pub active: u64,
    /// Bytes the allocator has resident: active pages, its metadata and
    /// freed pages not returned to the kernel yet (dirty).
    pub resident: u64,
    /// Bytes of address space mapped for allocations.
    pub mapped: u64,
    /// Bytes of address space kept mapped but returned to the kernel
    /// (not resident).
    pub retained: u64,
    /// Bytes of the allocator's own bookkeeping.
    pub metadata: u64,
}

impl AllocatorStats {
    /// `(kind, bytes)` pairs, the label values of `pdns_allocator_bytes`.
    pub fn kinds(&self) -> [(&'static str, u64); 6] {
        [
            ("allocated", self.allocated),
            ("active", self.active),
            ("resident", self.resident),
            ("mapped", self.mapped),
            ("retained", self.retained),
            ("metadata", self.metadata),
        ]
    }
}

static PROBE: OnceLock<fn() -> Option<AllocatorStats>> = OnceLock::new();

/// Registers how to read the allocator's statistics (once per process;
/// later calls change nothing).
pub fn set_allocator_stats(probe: fn() -> Option<AllocatorStats>) {
    let _ = PROBE.set(probe);
}

/// The allocator's statistics now, if a probe was registered and it
/// answered.
pub fn allocator_stats() -> Option<AllocatorStats> {
    PROBE.get().and_then(|probe| probe())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_name_every_count() {
        let s = AllocatorStats {
            allocated: 1,
            active: 2,
            resident: 3,
            mapped: 4,
            retained: 5,
            metadata: 6,
        };
        let kinds = s.kinds();
        assert_eq!(kinds.map(|(_, v)| v), [1, 2, 3, 4, 5, 6]);
        assert_eq!(kinds[0].0, "allocated");
        assert_eq!(kinds[2].0, "resident");
    }
}
