//! Kernel drops (as a share of frames seen) against the offered packet
//! rate in the live-capture scenario: where each system starts to lose
//! packets is the figure that matters on a real interface.

use super::Plot;
use super::axes::{AxisKind, Fmt};
use super::lines::LinePlot;
use super::series::{SeriesSet, figure, positive, threads_suffix};
use super::style::color_for;
use crate::report::Entry;

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
        set.push(
            format!("{}{}", e.system, threads_suffix(e)),
            color_for(e),
            x,
            pct,
        );
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
