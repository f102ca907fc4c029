//! Query latency percentiles (p50/p90/p99) as grouped bars: one row per
//! query of the queries scenario, marked with its p99 target, plus the
//! exact-name lookups that the peers scenario times against balboa.

use plotters::style::RGBColor;

use super::Plot;
use super::axes::Fmt;
use super::bars::{BarPlot, BarRow};
use super::series::positive;
use crate::report::Entry;

/// Bar name, queries-scenario figure, peers-scenario figure, bar colour.
const PERCENTILES: [(&str, &str, &str, RGBColor); 3] = [
    ("p50", "p50_ms", "lookup_p50_ms", RGBColor(0x9e, 0xca, 0xe1)),
    ("p90", "p90_ms", "lookup_p90_ms", RGBColor(0x42, 0x92, 0xc6)),
    ("p99", "p99_ms", "lookup_p99_ms", RGBColor(0x08, 0x45, 0x94)),
];

pub(super) fn query_latency(entries: &[&Entry]) -> Option<Plot> {
    let mut rows = Vec::new();
    for e in entries.iter().filter(|e| e.scenario == "queries") {
        let values: Vec<Option<f64>> = PERCENTILES
            .iter()
            .map(|(_, k, _, _)| positive(e, k))
            .collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let group = if e.label().is_empty() {
            "query".to_string()
        } else {
            e.label().to_string()
        };
        rows.push(BarRow {
            group,
            detail: e.system.clone(),
            values,
            color: None,
            marker: positive(e, "target_p99_ms"),
        });
    }
    for e in entries.iter().filter(|e| e.scenario == "peers") {
        let values: Vec<Option<f64>> = PERCENTILES
            .iter()
            .map(|(_, _, k, _)| positive(e, k))
            .collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let detail = match e.label() {
            "" => e.system.clone(),
            l => format!("{}, {l}", e.system),
        };
        rows.push(BarRow {
            group: "exact name vs balboa".into(),
            detail,
            values,
            color: None,
            marker: None,
        });
    }
    if rows.is_empty() {
        return None;
    }
    let marker_name = rows
        .iter()
        .any(|r| r.marker.is_some())
        .then(|| "p99 target".to_string());
    Some(Plot::Bars(BarPlot {
        title: "Query latency percentiles".into(),
        x_desc: "latency (ms, log scale)".into(),
        fmt: Fmt::Plain,
        bars: PERCENTILES
            .iter()
            .map(|(n, _, _, c)| (n.to_string(), *c))
            .collect(),
        rows,
        marker_name,
    }))
}
