//! Look shared by every plot: canvas and text sizes, the font, text styles,
//! and colours. Colours are fixed per known system and hashed otherwise, so
//! a system keeps its colour across plots and runs.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::series::workload_num;
use crate::report::Entry;

pub(super) const WIDTH: u32 = 800;
pub(super) const HEIGHT: u32 = 500;
/// Width of the legend column right of the plotting area.
pub(super) const LEGEND_W: u32 = 215;
pub(super) const FONT: &str = "sans-serif";
// plotters writes font-size = size / 1.24 into the SVG.
pub(super) const TITLE_SIZE: f64 = 24.0;
pub(super) const DESC_SIZE: f64 = 17.0;
pub(super) const LABEL_SIZE: f64 = 15.0;
pub(super) const SMALL_SIZE: f64 = 13.0;

pub(super) fn color_for(e: &Entry) -> RGBColor {
    system_color(&e.system, workload_num(e, "threads"))
}

pub(super) fn system_color(system: &str, threads: Option<f64>) -> RGBColor {
    match (system, threads) {
        ("pdns-sensor", Some(0.0)) => RGBColor(0x0b, 0x2f, 0x6b),
        ("pdns-sensor", Some(t)) if t > 1.0 => RGBColor(0x17, 0xbe, 0xcf),
        ("pdns-sensor", _) => RGBColor(0x1f, 0x77, 0xb4),
        ("raw-read" | "ring-read", _) => RGBColor(0x7f, 0x7f, 0x7f),
        ("tshark", _) => RGBColor(0xff, 0x7f, 0x0e),
        ("dnscap", _) => RGBColor(0x2c, 0xa0, 0x2c),
        ("passivedns", _) => RGBColor(0x94, 0x67, 0xbd),
        ("balboa", _) => RGBColor(0xd6, 0x27, 0x28),
        (other, _) => {
            const EXTRA: [RGBColor; 4] = [
                RGBColor(0x8c, 0x56, 0x4b),
                RGBColor(0xe3, 0x77, 0xc2),
                RGBColor(0xbc, 0xbd, 0x22),
                RGBColor(0x3b, 0x3b, 0x3b),
            ];
            // FNV-1a: stable across runs and Rust versions.
            let h = other.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            EXTRA[(h % EXTRA.len() as u64) as usize]
        }
    }
}

pub(super) fn text_style(size: f64, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle {
        font: (FONT, size).into_font(),
        color: color.to_backend_color(),
        pos: Pos::new(h, v),
    }
}

/// Crude width of `s` in pixels at font `size` (as plotters estimates it).
pub(super) fn text_width(s: &str, size: f64) -> u32 {
    (s.chars().count() as f64 * size / 1.24 / 1.24 * 0.7).ceil() as u32
}

pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}
