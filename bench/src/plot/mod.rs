//! SVG plots of a report's entries, drawn with `plotters` (SVG backend
//! only: the SVG holds `<text>` elements that the viewer lays out, so no
//! font files or fontconfig are needed).
//!
//! Each plot reads the entries it knows (by scenario, system, workload and
//! figure names) and is skipped when none have data. Log axes are drawn as
//! linear axes over `log10(value)` with hand-picked ticks, so every axis is
//! the same concrete type and tick labels are always present.
//!
//! This file holds the list of plots and writes them; each plot family
//! picks its entries in its own file ([`throughput`], [`store`], [`live`],
//! [`latency`]) into a [`Plot`] description, which [`lines`] or [`bars`]
//! renders using the shared [`axes`], [`style`] and [`draw`] pieces.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::report::Entry;

mod axes;
mod bars;
mod draw;
mod latency;
mod lines;
mod live;
mod series;
pub mod soak;
mod store;
mod style;
mod throughput;

#[cfg(test)]
mod tests;

use bars::{BarPlot, render_bars};
use latency::query_latency;
use lines::{LinePlot, render_lines};
use live::live_drops;
use store::store_ingest;
use throughput::{Sweep, throughput};

/// What a plot family found to draw, before any drawing.
enum Plot {
    Lines(LinePlot),
    Bars(BarPlot),
}

/// Writes every plot the entries have data for into `dir` as
/// `{prefix}-{plot}.svg`; returns the paths written. Plots without data are
/// skipped; odd values (NaN, zero, negative, missing) are left out.
pub fn write_plots(entries: &[Entry], dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let entries: Vec<&Entry> = entries.iter().filter(|e| !e.failed()).collect();
    let plots: Vec<(&str, Plot)> = [
        ("throughput-names", throughput(&entries, Sweep::Names)),
        ("throughput-clients", throughput(&entries, Sweep::Clients)),
        ("store-ingest", store_ingest(&entries)),
        ("live-drops", live_drops(&entries)),
        ("query-latency", query_latency(&entries)),
    ]
    .into_iter()
    .filter_map(|(name, p)| p.map(|p| (name, p)))
    .collect();
    let mut written = Vec::new();
    if plots.is_empty() {
        return Ok(written);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, plot) in plots {
        let svg = match &plot {
            Plot::Lines(p) => render_lines(p),
            Plot::Bars(p) => render_bars(p),
        }
        .with_context(|| format!("drawing {name}"))?;
        let path = dir.join(format!("{prefix}-{name}.svg"));
        fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
