//! Axis ranges, ticks and tick labels.
//!
//! A log axis is drawn as a linear axis over `log10(value)` with
//! hand-picked ticks (1-2-5 or finer, depending on how many decades the
//! data span), so every chart uses the same concrete coordinate type
//! ([`Scale`]) and tick labels are always present. Ranges are widened to
//! the ticks just outside the data so both ends are labelled.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

#[derive(Clone, Copy)]
pub(super) enum AxisKind {
    /// Log scale; values must be > 0.
    Log(Fmt),
    /// Linear, starting at 0.
    FromZero(Fmt),
}

#[derive(Clone, Copy)]
pub(super) enum Fmt {
    /// 1.5k, 2M, ...
    Si,
    /// 12%, 0.5%
    Percent,
    /// Plain number.
    Plain,
}

impl Fmt {
    pub(super) fn show(self, v: f64) -> String {
        match self {
            Fmt::Si => si(v),
            Fmt::Percent => format!("{}%", plain(v)),
            Fmt::Plain => plain(v),
        }
    }
}

/// Up to three significant digits, no trailing zeros.
fn plain(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    let decimals = (2 - mag).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

/// 1.5k, 2M, 3.2G.
fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{}G", plain(v / 1e9))
    } else if a >= 1e6 {
        format!("{}M", plain(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", plain(v / 1e3))
    } else {
        plain(v)
    }
}

/// An axis in plotted space (log10 of the value for log axes).
pub(super) struct Axis {
    log: bool,
    pub(super) fmt: Fmt,
    pub(super) lo: f64,
    pub(super) hi: f64,
    ticks: Vec<f64>,
    light: Vec<f64>,
}

impl Axis {
    /// `values` are the data values; `room` extends the top end (as a
    /// share of the span) for text drawn right of bars.
    pub(super) fn new(kind: AxisKind, values: &[f64], room: f64) -> Axis {
        match kind {
            AxisKind::Log(fmt) => Axis::log(fmt, values, room),
            AxisKind::FromZero(fmt) => Axis::from_zero(fmt, values, room),
        }
    }

    fn log(fmt: Fmt, values: &[f64], room: f64) -> Axis {
        let logs: Vec<f64> = values
            .iter()
            .filter(|v| v.is_finite() && **v > 0.0)
            .map(|v| v.log10())
            .collect();
        let (min, max) = min_max(&logs).unwrap_or((0.0, 1.0));
        // At least half a decade, centred on the data.
        let (min, max) = if max - min < 0.5 {
            let mid = (min + max) / 2.0;
            (mid - 0.25, mid + 0.25)
        } else {
            (min, max)
        };
        let span = max - min;
        let pad = span * 0.08;
        let (lo, hi) = (min - pad, max + pad + span * room);
        let decades = hi - lo;
        let mantissas: &[f64] = if decades > 3.5 {
            &[1.0]
        } else if decades > 1.5 {
            &[1.0, 2.0, 5.0]
        } else if decades > 0.8 {
            &[1.0, 2.0, 3.0, 5.0, 7.0]
        } else {
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        };
        let light_mantissas: &[f64] = if decades > 5.0 {
            &[1.0]
        } else {
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        };
        // Tick candidates of a mantissa set over the decades around the data.
        let points = |ms: &[f64], lo: f64, hi: f64| -> Vec<f64> {
            let mut out = Vec::new();
            let mut d = lo.floor() as i32 - 1;
            while f64::from(d) <= hi.ceil() + 1.0 {
                out.extend(ms.iter().map(|m| f64::from(d) + m.log10()));
                d += 1;
            }
            out
        };
        // Extend the range to the ticks just outside it, so both ends are
        // labelled.
        let candidates = points(mantissas, lo, hi);
        let lo = candidates
            .iter()
            .copied()
            .filter(|p| *p <= lo + 1e-9)
            .fold(lo, |_, p| p);
        let hi = candidates
            .iter()
            .copied()
            .find(|p| *p >= hi - 1e-9)
            .unwrap_or(hi);
        let within = |v: Vec<f64>| -> Vec<f64> {
            v.into_iter()
                .filter(|p| *p >= lo - 1e-9 && *p <= hi + 1e-9)
                .collect()
        };
        Axis {
            log: true,
            fmt,
            lo,
            hi,
            ticks: within(candidates),
            light: within(points(light_mantissas, lo, hi)),
        }
    }

    fn from_zero(fmt: Fmt, values: &[f64], room: f64) -> Axis {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let max = min_max(&finite).map_or(0.0, |m| m.1);
        let top = if max > 0.0 { max } else { 1.0 };
        let step = nice_step(top / 5.0);
        let hi = top * (1.08 + room);
        // A little room below 0 so points at 0 are not cut by the axis.
        let lo = -hi * 0.03;
        let ticks: Vec<f64> = (0..=((hi / step).floor() as usize).min(50))
            .map(|i| i as f64 * step)
            .collect();
        Axis {
            log: false,
            fmt,
            lo,
            hi,
            ticks,
            light: Vec::new(),
        }
    }

    pub(super) fn to_plot(&self, v: f64) -> f64 {
        if self.log { v.log10() } else { v }
    }

    /// Whether `v` can be drawn on this axis.
    pub(super) fn accepts(&self, v: f64) -> bool {
        v.is_finite() && (!self.log || v > 0.0)
    }

    pub(super) fn label(&self, p: f64) -> String {
        if self.log {
            self.fmt.show(10f64.powf(p))
        } else if p < 0.0 {
            String::new()
        } else {
            self.fmt.show(p)
        }
    }

    pub(super) fn coord(&self) -> Scale {
        Scale {
            lo: self.lo,
            hi: self.hi,
            bold: self.ticks.clone(),
            light: self.light.clone(),
        }
    }
}

/// A linear plotters coordinate with fixed tick (bold) and grid (light)
/// points. (`WithKeyPoints<RangedCoordf64>` lacks a value formatter in
/// plotters 0.3.7, so the mesh could not be configured on it.)
#[derive(Clone)]
pub(super) struct Scale {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) bold: Vec<f64>,
    pub(super) light: Vec<f64>,
}

impl Ranged for Scale {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        let t = if t.is_finite() {
            t.clamp(-1.0, 2.0)
        } else {
            0.0
        };
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

pub(super) fn min_max(v: &[f64]) -> Option<(f64, f64)> {
    let mut it = v.iter().copied().filter(|x| x.is_finite());
    let first = it.next()?;
    Some(it.fold((first, first), |(a, b), x| (a.min(x), b.max(x))))
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_number_formats() {
        assert_eq!(si(1000.0), "1k");
        assert_eq!(si(2_500_000.0), "2.5M");
        assert_eq!(si(100.0), "100");
        assert_eq!(si(1e9), "1G");
        assert_eq!(plain(0.05), "0.05");
        assert_eq!(plain(12.34), "12.3");
        assert_eq!(plain(0.0), "0");
        assert_eq!(plain(f64::NAN), "");
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(0.0), 1.0);
    }
}
