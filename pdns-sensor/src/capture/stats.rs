//! Capture counters: kernel ring statistics and frames read, per ring.
//!
//! `PACKET_STATISTICS` resets on every read and its packet count already
//! includes the drops, so only the ring thread that owns a socket reads it
//! (about once a second and at the end) and adds the values to that ring's
//! [`RingCounters`], together with the frames it read. The counters are
//! atomics shared with the control plane, which publishes their increase to
//! Prometheus (see `crate::metrics`) and reports the totals.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use super::socket::KernelStats;

/// One ring's totals, shared between its thread (writer) and the control
/// plane (reader).
#[derive(Debug, Default)]
pub struct RingCounters {
    /// Kernel: packets offered to the ring (drops included).
    pub packets: AtomicU64,
    /// Kernel: packets dropped, ring full.
    pub drops: AtomicU64,
    /// Kernel: ring freezes.
    pub freezes: AtomicU64,
    /// Frames read from the ring.
    pub frames: AtomicU64,
    /// Their captured bytes.
    pub bytes: AtomicU64,
    /// Frames with an out-of-band (stripped) VLAN tag.
    pub vlan_tagged: AtomicU64,
    /// Frames with a header pointing outside its block (never expected).
    pub bad_frames: AtomicU64,
    /// Errors reading the socket (not expected: it is bound to every
    /// device, so no device can go away under it).
    pub socket_errors: AtomicU64,
}

/// A plain copy of [`RingCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingTotals {
    pub packets: u64,
    pub drops: u64,
    pub freezes: u64,
    pub frames: u64,
    #[serde(default)]
    pub bytes: u64,
    pub vlan_tagged: u64,
    pub bad_frames: u64,
    #[serde(default)]
    pub socket_errors: u64,
}

impl RingTotals {
    pub fn add(&mut self, o: &RingTotals) {
        self.packets += o.packets;
        self.drops += o.drops;
        self.freezes += o.freezes;
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.vlan_tagged += o.vlan_tagged;
        self.bad_frames += o.bad_frames;
        self.socket_errors += o.socket_errors;
    }

    /// The increase since `earlier` (counters only grow).
    pub fn since(&self, earlier: &RingTotals) -> RingTotals {
        let d = |now: u64, then: u64| now.saturating_sub(then);
        RingTotals {
            packets: d(self.packets, earlier.packets),
            drops: d(self.drops, earlier.drops),
            freezes: d(self.freezes, earlier.freezes),
            frames: d(self.frames, earlier.frames),
            bytes: d(self.bytes, earlier.bytes),
            vlan_tagged: d(self.vlan_tagged, earlier.vlan_tagged),
            bad_frames: d(self.bad_frames, earlier.bad_frames),
            socket_errors: d(self.socket_errors, earlier.socket_errors),
        }
    }
}

impl RingCounters {
    /// Adds a `PACKET_STATISTICS` reading of this ring.
    pub fn add_kernel(&self, k: KernelStats) {
        self.packets.fetch_add(k.packets, Relaxed);
        self.drops.fetch_add(k.drops, Relaxed);
        self.freezes.fetch_add(k.freezes, Relaxed);
    }

    /// Adds frames read from the ring.
    pub fn add_frames(&self, frames: u64, bytes: u64, vlan_tagged: u64) {
        self.frames.fetch_add(frames, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
        if vlan_tagged > 0 {
            self.vlan_tagged.fetch_add(vlan_tagged, Relaxed);
        }
    }

    pub fn totals(&self) -> RingTotals {
        RingTotals {
            packets: self.packets.load(Relaxed),
            drops: self.drops.load(Relaxed),
            freezes: self.freezes.load(Relaxed),
            frames: self.frames.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            vlan_tagged: self.vlan_tagged.load(Relaxed),
            bad_frames: self.bad_frames.load(Relaxed),
            socket_errors: self.socket_errors.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_readings_and_frames_add_up() {
        let ring = RingCounters::default();
        // Two readings: the kernel resets between them, so they add up.
        for _ in 0..2 {
            ring.add_kernel(KernelStats {
                packets: 10,
                drops: 3,
                freezes: 1,
            });
        }
        ring.add_frames(14, 1400, 2);
        let t = ring.totals();
        assert_eq!(
            (
                t.packets,
                t.drops,
                t.freezes,
                t.frames,
                t.bytes,
                t.vlan_tagged
            ),
            (20, 6, 2, 14, 1400, 2)
        );
        let later = RingTotals { packets: 25, ..t };
        assert_eq!(later.since(&t).packets, 5);
        assert_eq!(t.since(&later).packets, 0);
    }
}
