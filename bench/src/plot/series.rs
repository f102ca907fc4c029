//! Picking values out of entries and grouping them into named series.
//!
//! Every plot family reads entries the same forgiving way: a value that is
//! missing, not a number or not finite is simply absent, so odd results
//! drop out of a plot instead of breaking it.

use plotters::style::RGBColor;
use serde_json::Value;

use crate::report::Entry;

pub(super) fn workload_num(e: &Entry, k: &str) -> Option<f64> {
    match e.workload.get(k)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|v: &f64| v.is_finite())
}

pub(super) fn workload_str<'a>(e: &'a Entry, k: &str) -> Option<&'a str> {
    e.workload.get(k).and_then(Value::as_str)
}

/// A finite figure.
pub(super) fn figure(e: &Entry, k: &str) -> Option<f64> {
    e.figure(k).filter(|v| v.is_finite())
}

/// A finite, strictly positive figure (for log axes).
pub(super) fn positive(e: &Entry, k: &str) -> Option<f64> {
    figure(e, k).filter(|v| *v > 0.0)
}

/// " (1 core)", " (all cores)", " (N threads)" or "" from workload `threads`.
pub(super) fn threads_suffix(e: &Entry) -> String {
    match workload_num(e, "threads") {
        Some(0.0) => " (all cores)".into(),
        Some(1.0) => " (1 core)".into(),
        Some(t) => format!(" ({t} threads)"),
        None => String::new(),
    }
}

pub(super) struct Series {
    pub(super) name: String,
    pub(super) color: RGBColor,
    pub(super) points: Vec<(f64, f64)>,
}

/// Groups points into series by name (first-seen order); a later point
/// with the same x replaces an earlier one; points are sorted by x.
#[derive(Default)]
pub(super) struct SeriesSet(Vec<Series>);

impl SeriesSet {
    pub(super) fn push(&mut self, name: String, color: RGBColor, x: f64, y: f64) {
        let s = match self.0.iter().position(|s| s.name == name) {
            Some(i) => &mut self.0[i],
            None => {
                self.0.push(Series {
                    name,
                    color,
                    points: Vec::new(),
                });
                self.0.last_mut().expect("just pushed")
            }
        };
        s.points.retain(|p| p.0 != x);
        s.points.push((x, y));
    }

    pub(super) fn finish(mut self) -> Vec<Series> {
        self.0.retain(|s| !s.points.is_empty());
        for s in &mut self.0 {
            s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        self.0
    }
}
