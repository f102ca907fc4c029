//! Kernel drops (as a share of frames seen) against the offered packet
//! rate in the live-capture scenario: where each system starts to lose
//! packets is the figure that matters on a real interface.
//!
//! One series per (system, threads, ring size). Entries with the default
//! ring (or from before `ring_bytes` was recorded) are labelled by their
//! threads as elsewhere, "pdns-sensor (1 core)"; a deliberately small ring
//! is labelled by its size instead, "pdns-sensor (256 KiB ring)" (one
//! ring: `threads` 1; the legend has room for 26 characters), and gets its
//! own colour: it is the series that shows drops being counted at rates
//! the default rings take without loss.

use plotters::style::RGBColor;

use super::Plot;
use super::axes::{AxisKind, Fmt};
use super::lines::LinePlot;
use super::series::{SeriesSet, figure, positive, threads_suffix, workload_num};
use super::style::color_for;
use crate::report::Entry;
use crate::scenario::live::{binary_size, default_ring_bytes};

/// Colour of a series with a non-default ring (none of the default
/// systems' colours).
const SMALL_RING_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// " (256 KiB ring)" for one small ring, " (256 KiB ring per core)" or
/// " (N × 256 KiB rings)" for more; the usual threads suffix (" (1 core)")
/// for the default ring.
fn series_suffix(e: &Entry) -> String {
    let Some(bytes) = small_ring(e) else {
        return threads_suffix(e);
    };
    let size = binary_size(bytes);
    match workload_num(e, "threads") {
        Some(0.0) => format!(" ({size} ring per core)"),
        Some(t) if t != 1.0 => format!(" ({t} × {size} rings)"),
        _ => format!(" ({size} ring)"),
    }
}

/// The ring size of `e` when it is given and not the default.
fn small_ring(e: &Entry) -> Option<u64> {
    workload_num(e, "ring_bytes")
        .filter(|b| *b > 0.0)
        .map(|b| b as u64)
        .filter(|b| *b != default_ring_bytes())
}

pub(super) fn live_drops(entries: &[&Entry]) -> Option<Plot> {
    let mut set = SeriesSet::default();
    for e in entries.iter().filter(|e| e.scenario == "live") {
        let (Some(x), Some(frames), Some(drops)) = (
            positive(e, "offered_pps"),
            figure(e, "captured_frames").filter(|v| *v >= 0.0),
            figure(e, "kernel_drops").filter(|v| *v >= 0.0),
        ) else {
            continue;
        };
        if frames + drops <= 0.0 {
            continue;
        }
        let pct = drops / (frames + drops) * 100.0;
        let color = match small_ring(e) {
            Some(_) => SMALL_RING_COLOR,
            None => color_for(e),
        };
        set.push(format!("{}{}", e.system, series_suffix(e)), color, x, pct);
    }
    let series = set.finish();
    if series.is_empty() {
        return None;
    }
    Some(Plot::Lines(LinePlot {
        title: "Kernel drops vs offered rate".into(),
        x_desc: "offered rate (packets/s)".into(),
        y_desc: "kernel drops (% of frames)".into(),
        x: AxisKind::FromZero(Fmt::Si),
        y: AxisKind::FromZero(Fmt::Percent),
        series,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(threads: Option<u32>, ring_bytes: Option<u64>) -> Entry {
        let mut e = Entry::new("live", "pdns-sensor");
        if let Some(t) = threads {
            e.set_workload("threads", t);
        }
        if let Some(b) = ring_bytes {
            e.set_workload("ring_bytes", b);
        }
        e
    }

    #[test]
    fn series_are_told_apart_by_ring() {
        let def = default_ring_bytes();
        assert_eq!(series_suffix(&e(Some(1), None)), " (1 core)");
        assert_eq!(series_suffix(&e(Some(1), Some(def))), " (1 core)");
        assert_eq!(series_suffix(&e(Some(0), Some(def))), " (all cores)");
        assert_eq!(
            series_suffix(&e(Some(1), Some(256 << 10))),
            " (256 KiB ring)"
        );
        assert_eq!(series_suffix(&e(None, Some(128 << 10))), " (128 KiB ring)");
        assert_eq!(
            series_suffix(&e(Some(0), Some(256 << 10))),
            " (256 KiB ring per core)"
        );
        assert_eq!(
            series_suffix(&e(Some(4), Some(1 << 20))),
            " (4 × 1 MiB rings)"
        );
        assert_eq!(series_suffix(&e(None, Some(0))), "");
    }
}
