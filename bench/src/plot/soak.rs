//! The soak plot: panels stacked over one time axis (seconds since the
//! traffic started), each with its own y axis — RSS, open files, RocksDB
//! compaction debt, API latency — so quantities of different units read
//! side by side in one picture. A panel may carry a horizontal limit line
//! (the documented RSS bound). Unlike the other plots it is not read from
//! report entries but handed the soak scenario's samples
//! ([`crate::scenario::soak`]), which are not entries.

use anyhow::Result;
use plotters::prelude::*;

use super::axes::{Axis, AxisKind, Fmt};
use super::draw::{LegendMark, draw_legend, draw_marker, err};
use super::style::{DESC_SIZE, FONT, LABEL_SIZE, LEGEND_W, TITLE_SIZE, WIDTH};

/// Height of one panel.
const PANEL_H: u32 = 250;
/// Height of the title band.
const TITLE_H: u32 = 44;

/// One line of a panel.
pub struct TimeLine {
    pub name: String,
    pub color: RGBColor,
    /// (seconds, value).
    pub points: Vec<(f64, f64)>,
}

/// One panel: lines over time, and an optional limit drawn dashed-red.
pub struct Panel {
    pub y_desc: String,
    pub lines: Vec<TimeLine>,
    pub limit: Option<(String, f64)>,
}

/// Draws `panels` under `title`; panels without points are left out.
pub fn render_time_panels(title: &str, panels: &[Panel]) -> Result<String> {
    let panels: Vec<&Panel> = panels
        .iter()
        .filter(|p| p.lines.iter().any(|l| !l.points.is_empty()))
        .collect();
    let xs: Vec<f64> = panels
        .iter()
        .flat_map(|p| p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.0)))
        .collect();
    let xa = Axis::new(AxisKind::FromZero(Fmt::Plain), &xs, 0.0);
    let height = TITLE_H + PANEL_H * panels.len().max(1) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let body = root
            .titled(title, (FONT, TITLE_SIZE).into_font().color(&BLACK))
            .map_err(err)?;
        let rows = body.split_evenly((panels.len().max(1), 1));
        for (p, area) in panels.iter().zip(rows) {
            let (plot, legend) = area.split_horizontally(WIDTH - LEGEND_W);
            let mut ys: Vec<f64> = p
                .lines
                .iter()
                .flat_map(|l| l.points.iter().map(|q| q.1))
                .collect();
            if let Some((_, v)) = p.limit {
                ys.push(v);
            }
            let ya = Axis::new(AxisKind::FromZero(Fmt::Si), &ys, 0.0);
            let mut chart = ChartBuilder::on(&plot)
                .margin(8)
                .x_label_area_size(40)
                .y_label_area_size(68)
                .build_cartesian_2d(xa.coord(), ya.coord())
                .map_err(err)?;
            let xfmt = |v: &f64| xa.label(*v);
            let yfmt = |v: &f64| ya.label(*v);
            chart
                .configure_mesh()
                .x_desc("seconds since traffic started")
                .y_desc(&p.y_desc)
                .x_label_formatter(&xfmt)
                .y_label_formatter(&yfmt)
                .axis_desc_style((FONT, DESC_SIZE))
                .label_style((FONT, LABEL_SIZE))
                .bold_line_style(BLACK.mix(0.12))
                .light_line_style(BLACK.mix(0.04))
                .draw()
                .map_err(err)?;
            let mut items: Vec<(String, RGBColor, LegendMark)> = Vec::new();
            for (i, l) in p.lines.iter().enumerate() {
                let pts: Vec<(f64, f64)> = l
                    .points
                    .iter()
                    .filter(|(x, y)| xa.accepts(*x) && ya.accepts(*y))
                    .map(|(x, y)| (xa.to_plot(*x), ya.to_plot(*y)))
                    .collect();
                if pts.len() >= 2 {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            pts.clone(),
                            l.color.stroke_width(2),
                        )))
                        .map_err(err)?;
                }
                // Markers only when they stay apart.
                if pts.len() <= 40 {
                    for q in &pts {
                        draw_marker(&plot, i, chart.backend_coord(q), l.color)?;
                    }
                }
                items.push((l.name.clone(), l.color, LegendMark::Line(i)));
            }
            if let Some((name, v)) = &p.limit {
                let red = RGBColor(0xd6, 0x27, 0x28);
                let y = ya.to_plot(*v);
                // Dashes: 40 of them across the axis.
                let (x0, x1) = (xa.lo, xa.hi);
                let step = (x1 - x0) / 40.0;
                chart
                    .draw_series((0..40).map(|i| {
                        let a = x0 + step * f64::from(i);
                        PathElement::new(vec![(a, y), (a + step * 0.6, y)], red.stroke_width(2))
                    }))
                    .map_err(err)?;
                items.push((name.clone(), red, LegendMark::Tick));
            }
            draw_legend(&legend, &items)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_render_with_limits_and_skip_empty_ones() {
        let line = |name: &str, f: fn(f64) -> f64| TimeLine {
            name: name.into(),
            color: RGBColor(0x1f, 0x77, 0xb4),
            points: (0..50).map(|i| (i as f64 * 5.0, f(i as f64))).collect(),
        };
        let panels = [
            Panel {
                y_desc: "RSS (MiB)".into(),
                lines: vec![line("RSS", |x| 60.0 + x)],
                limit: Some(("bound 200 MiB".into(), 200.0)),
            },
            Panel {
                y_desc: "empty".into(),
                lines: vec![],
                limit: None,
            },
            Panel {
                y_desc: "API latency (ms)".into(),
                lines: vec![line("p50", |_| 0.2), line("p99", |x| 1.0 + x / 10.0)],
                limit: None,
            },
        ];
        let svg = render_time_panels("Soak", &panels).unwrap();
        assert!(svg.contains("RSS (MiB)"));
        assert!(svg.contains("bound 200 MiB"));
        assert!(svg.contains("API latency (ms)"));
        assert!(!svg.contains("empty"));
        assert!(svg.contains(&format!("height=\"{}\"", TITLE_H + 2 * PANEL_H)));
    }
}
