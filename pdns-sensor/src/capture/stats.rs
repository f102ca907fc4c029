//! Capture counters: kernel ring statistics per interface and the eBPF
//! filter's verdicts, accumulated here and exported to Prometheus.
//!
//! `PACKET_STATISTICS` resets on every read and its packet count already
//! includes the drops, so only the ring thread that owns a socket reads it
//! (about once a second and at the end) and adds the values to that
//! ring's [`RingCounters`] and to the per-interface Prometheus counters.
//! The eBPF counters are cumulative in the kernel map; the control plane
//! publishes their increase ([`FilterPublisher`]). The metrics are
//! registered in the process registry ([`crate::metrics::METRICS`]), so
//! `/metrics` serves them alongside the pipeline's.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use pdns_common::FilterStats;
use prometheus::{IntCounterVec, Opts};

use super::socket::KernelStats;
use crate::metrics::METRICS;

/// Capture metrics (registered on first use).
pub struct CaptureMetrics {
    pub packets: IntCounterVec,
    pub drops: IntCounterVec,
    pub freezes: IntCounterVec,
    pub vlan_tagged: IntCounterVec,
    pub filter_accepted: IntCounterVec,
    pub filter_rejected: IntCounterVec,
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    METRICS
        .registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

pub static CAPTURE_METRICS: LazyLock<CaptureMetrics> = LazyLock::new(|| CaptureMetrics {
    packets: counter_vec(
        "pdns_capture_packets_total",
        "Packets the kernel offered to the capture rings after filtering (drops included), by interface.",
        &["interface"],
    ),
    drops: counter_vec(
        "pdns_capture_drops_total",
        "Packets the kernel dropped because a capture ring was full, by interface.",
        &["interface"],
    ),
    freezes: counter_vec(
        "pdns_capture_freezes_total",
        "Times a capture ring was frozen (every block full), by interface.",
        &["interface"],
    ),
    vlan_tagged: counter_vec(
        "pdns_capture_vlan_tagged_frames_total",
        "Frames whose outer VLAN tag the kernel stripped and reported out of band, by interface.",
        &["interface"],
    ),
    filter_accepted: counter_vec(
        "pdns_ebpf_accepted_total",
        "Packets the eBPF filter kept: DNS port, or non-first IP fragment.",
        &["kind"],
    ),
    filter_rejected: counter_vec(
        "pdns_ebpf_rejected_total",
        "Packets the eBPF filter dropped in the kernel, by reason.",
        &["reason"],
    ),
});

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
    /// Frames with an out-of-band (stripped) VLAN tag.
    pub vlan_tagged: AtomicU64,
    /// Frames with a header pointing outside its block (never expected).
    pub bad_frames: AtomicU64,
}

/// A plain copy of [`RingCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RingTotals {
    pub packets: u64,
    pub drops: u64,
    pub freezes: u64,
    pub frames: u64,
    pub vlan_tagged: u64,
    pub bad_frames: u64,
}

impl RingTotals {
    pub fn add(&mut self, o: &RingTotals) {
        self.packets += o.packets;
        self.drops += o.drops;
        self.freezes += o.freezes;
        self.frames += o.frames;
        self.vlan_tagged += o.vlan_tagged;
        self.bad_frames += o.bad_frames;
    }
}

impl RingCounters {
    /// Adds a `PACKET_STATISTICS` reading of this ring on `interface`.
    pub fn add_kernel(&self, interface: &str, k: KernelStats) {
        self.packets.fetch_add(k.packets, Relaxed);
        self.drops.fetch_add(k.drops, Relaxed);
        self.freezes.fetch_add(k.freezes, Relaxed);
        let m = &*CAPTURE_METRICS;
        m.packets.with_label_values(&[interface]).inc_by(k.packets);
        m.drops.with_label_values(&[interface]).inc_by(k.drops);
        m.freezes.with_label_values(&[interface]).inc_by(k.freezes);
    }

    /// Adds frames read from the ring.
    pub fn add_frames(&self, interface: &str, frames: u64, vlan_tagged: u64) {
        self.frames.fetch_add(frames, Relaxed);
        if vlan_tagged > 0 {
            self.vlan_tagged.fetch_add(vlan_tagged, Relaxed);
            CAPTURE_METRICS
                .vlan_tagged
                .with_label_values(&[interface])
                .inc_by(vlan_tagged);
        }
    }

    pub fn totals(&self) -> RingTotals {
        RingTotals {
            packets: self.packets.load(Relaxed),
            drops: self.drops.load(Relaxed),
            freezes: self.freezes.load(Relaxed),
            frames: self.frames.load(Relaxed),
            vlan_tagged: self.vlan_tagged.load(Relaxed),
            bad_frames: self.bad_frames.load(Relaxed),
        }
    }
}

/// Publishes the increase of the (cumulative) eBPF counters.
#[derive(Debug, Default)]
pub struct FilterPublisher {
    last: FilterStats,
}

impl FilterPublisher {
    pub fn publish(&mut self, now: FilterStats) {
        let m = &*CAPTURE_METRICS;
        let d = |new: u64, old: u64| new.saturating_sub(old);
        let l = &self.last;
        for (kind, n) in [
            ("port", d(now.accepted, l.accepted)),
            ("fragment", d(now.accepted_fragments, l.accepted_fragments)),
        ] {
            m.filter_accepted.with_label_values(&[kind]).inc_by(n);
        }
        for (reason, n) in [
            ("port", d(now.rejected_port, l.rejected_port)),
            ("protocol", d(now.rejected_protocol, l.rejected_protocol)),
            ("not_ip", d(now.rejected_not_ip, l.rejected_not_ip)),
            ("malformed", d(now.rejected_malformed, l.rejected_malformed)),
        ] {
            m.filter_rejected.with_label_values(&[reason]).inc_by(n);
        }
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_and_filter_counters_reach_prometheus() {
        let ring = RingCounters::default();
        // Two readings: the kernel resets between them, so they add up.
        for _ in 0..2 {
            ring.add_kernel(
                "test-if0",
                KernelStats {
                    packets: 10,
                    drops: 3,
                    freezes: 1,
                },
            );
        }
        ring.add_frames("test-if0", 14, 2);
        let t = ring.totals();
        assert_eq!(
            (t.packets, t.drops, t.freezes, t.frames, t.vlan_tagged),
            (20, 6, 2, 14, 2)
        );

        let mut publisher = FilterPublisher::default();
        let mut f = FilterStats {
            accepted: 5,
            rejected_port: 7,
            ..FilterStats::default()
        };
        publisher.publish(f);
        f.accepted = 8;
        publisher.publish(f);

        let text = crate::metrics::render();
        for line in [
            "pdns_capture_packets_total{interface=\"test-if0\"} 20",
            "pdns_capture_drops_total{interface=\"test-if0\"} 6",
            "pdns_capture_freezes_total{interface=\"test-if0\"} 2",
            "pdns_capture_vlan_tagged_frames_total{interface=\"test-if0\"} 2",
            "pdns_ebpf_accepted_total{kind=\"port\"} 8",
            "pdns_ebpf_rejected_total{reason=\"port\"} 7",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
