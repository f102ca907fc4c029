//! Packets/s against the swept workload dimension (distinct names or
//! client 5-tuples), for the sensor, the raw-read floor and the peer tools
//! on one chart, so scaling trends and the gap to the floor show at once.

use super::Plot;
use super::axes::{AxisKind, Fmt};
use super::lines::LinePlot;
use super::series::{SeriesSet, positive, threads_suffix, workload_num, workload_str};
use super::style::color_for;
use crate::report::Entry;

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Sweep {
    Names,
    Clients,
}

impl Sweep {
    fn key(self) -> &'static str {
        match self {
            Sweep::Names => "names",
            Sweep::Clients => "clients",
        }
    }

    /// Whether `e` belongs to this sweep: workload `sweep`, or (older
    /// results without it) a label ending in `-names` / `-clients`.
    fn has(self, e: &Entry) -> bool {
        match workload_str(e, "sweep") {
            Some(s) => s == self.key(),
            None => e.label().ends_with(&format!("-{}", self.key())),
        }
    }
}

pub(super) fn throughput(entries: &[&Entry], sweep: Sweep) -> Option<Plot> {
    let mut set = SeriesSet::default();
    let mut ingest_systems = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.scenario == "ingest" && sweep.has(e))
    {
        let (Some(x), Some(y)) = (
            workload_num(e, sweep.key()).filter(|v| *v > 0.0),
            positive(e, "packets_per_sec"),
        ) else {
            continue;
        };
        let name = match e.system.as_str() {
            "raw-read" => "raw read (no decode)".to_string(),
            s => format!("{s}{}", threads_suffix(e)),
        };
        ingest_systems.push(e.system.clone());
        set.push(name, color_for(e), x, y);
    }
    for e in entries
        .iter()
        .filter(|e| e.scenario == "peers" && workload_str(e, "sweep") == Some(sweep.key()))
    {
        let (Some(x), Some(y)) = (
            workload_num(e, sweep.key()).filter(|v| *v > 0.0),
            positive(e, "packets_per_sec"),
        ) else {
            continue;
        };
        // The sensor also runs in the ingest scenario (on larger files,
        // with compaction): tell the two apart, within the legend's width.
        let name = if ingest_systems.contains(&e.system) {
            format!("{}, peers run", e.system)
        } else {
            format!("{}{}", e.system, threads_suffix(e))
        };
        set.push(name, color_for(e), x, y);
    }
    let series = set.finish();
    if series.is_empty() {
        return None;
    }
    let (title, x_desc) = match sweep {
        Sweep::Names => (
            "Throughput vs name cardinality",
            "distinct names (log scale)",
        ),
        Sweep::Clients => (
            "Throughput vs client count",
            "distinct client 5-tuples (log scale)",
        ),
    };
    Some(Plot::Lines(LinePlot {
        title: title.into(),
        x_desc: x_desc.into(),
        y_desc: "packets/s (log scale)".into(),
        x: AxisKind::Log(Fmt::Si),
        y: AxisKind::Log(Fmt::Si),
        series,
    }))
}
