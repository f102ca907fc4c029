//! Store ingest rate (observations/s) of the systems that keep a passive
//! DNS store. With a names sweep it is a line per system against name
//! cardinality; with a single workload there is nothing to draw a line
//! through, so it falls back to one bar per system.

use super::Plot;
use super::axes::{AxisKind, Fmt};
use super::bars::{BarPlot, BarRow};
use super::lines::LinePlot;
use super::series::{SeriesSet, positive, threads_suffix, workload_num, workload_str};
use super::style::{color_for, system_color};
use crate::report::Entry;

pub(super) fn store_ingest(entries: &[&Entry]) -> Option<Plot> {
    let found: Vec<(&Entry, f64)> = entries
        .iter()
        .filter(|e| e.scenario == "peers")
        .filter_map(|e| positive(e, "observations_per_sec").map(|v| (*e, v)))
        .collect();
    if found.is_empty() {
        return None;
    }
    let swept: Vec<(&Entry, f64, f64)> = found
        .iter()
        .filter(|(e, _)| workload_str(e, "sweep").is_none_or(|s| s == "names"))
        .filter_map(|(e, v)| {
            workload_num(e, "names")
                .filter(|n| *n > 0.0)
                .map(|n| (*e, n, *v))
        })
        .collect();
    let mut xs: Vec<f64> = swept.iter().map(|s| s.1).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    if xs.len() >= 2 {
        let mut set = SeriesSet::default();
        for (e, x, y) in swept {
            set.push(
                format!("{}{}", e.system, threads_suffix(e)),
                color_for(e),
                x,
                y,
            );
        }
        return Some(Plot::Lines(LinePlot {
            title: "Store ingest rate vs name cardinality".into(),
            x_desc: "distinct names (log scale)".into(),
            y_desc: "observations/s (log scale)".into(),
            x: AxisKind::Log(Fmt::Si),
            y: AxisKind::Log(Fmt::Si),
            series: set.finish(),
        }));
    }
    let rows = found
        .iter()
        .map(|(e, v)| BarRow {
            group: format!("{}{}", e.system, threads_suffix(e)),
            detail: e.label().to_string(),
            values: vec![Some(*v)],
            color: Some(color_for(e)),
            marker: None,
        })
        .collect();
    Some(Plot::Bars(BarPlot {
        title: "Store ingest rate".into(),
        x_desc: "observations/s (log scale)".into(),
        fmt: Fmt::Si,
        bars: vec![("observations/s".into(), system_color("pdns-sensor", None))],
        rows,
        marker_name: None,
    }))
}
