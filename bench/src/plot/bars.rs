//! Horizontal bar charts: a description ([`BarPlot`]) of labelled rows of
//! one or more bars on a log value axis, and its rendering to SVG. Used
//! where there is no sweep to draw a line through (single workloads,
//! latency percentiles).

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::axes::{Axis, AxisKind, Fmt, Scale, min_max};
use super::draw::{LegendMark, draw_legend, err, titled_canvas};
use super::style::{
    DESC_SIZE, FONT, HEIGHT, LABEL_SIZE, LEGEND_W, SMALL_SIZE, shorten, text_style, text_width,
};

/// Horizontal bars: one row per (group, detail), `values.len()` bars each.
pub(super) struct BarPlot {
    pub(super) title: String,
    pub(super) x_desc: String,
    pub(super) fmt: Fmt,
    /// Name and color of each bar within a row.
    pub(super) bars: Vec<(String, RGBColor)>,
    pub(super) rows: Vec<BarRow>,
    /// Legend entry for the row markers, when any row has one.
    pub(super) marker_name: Option<String>,
}

pub(super) struct BarRow {
    pub(super) group: String,
    pub(super) detail: String,
    /// One per `BarPlot::bars`; `None` draws no bar. A single-bar plot may
    /// override its color per row.
    pub(super) values: Vec<Option<f64>>,
    pub(super) color: Option<RGBColor>,
    /// A vertical mark across the row (e.g. a target).
    pub(super) marker: Option<f64>,
}

pub(super) fn render_bars(p: &BarPlot) -> Result<String> {
    let n = p.rows.len();
    let height = HEIGHT.max(110 + 62 * n as u32);
    let values: Vec<f64> = p
        .rows
        .iter()
        .flat_map(|r| r.values.iter().flatten().copied().chain(r.marker))
        .collect();
    // Bars on a log axis start at an arbitrary base: put it well below the
    // smallest value so no bar looks empty; leave room right of the longest
    // bar for its value label.
    let base = min_max(&values).map(|m| m.0 / 5.0);
    let values: Vec<f64> = values.into_iter().chain(base).collect();
    let xa = Axis::new(AxisKind::Log(p.fmt), &values, 0.12);
    let label_w = p
        .rows
        .iter()
        .map(|r| {
            text_width(&shorten(&r.group, 40), LABEL_SIZE)
                .max(text_width(&shorten(&r.detail, 40), SMALL_SIZE))
        })
        .max()
        .unwrap_or(0)
        .clamp(60, 300)
        + 16;
    let mut svg = String::new();
    {
        let (root, plot, legend) = titled_canvas(&mut svg, height, &p.title, LEGEND_W.min(150))?;
        let rows = Scale {
            lo: 0.0,
            hi: n as f64,
            bold: Vec::new(),
            light: Vec::new(),
        };
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(label_w)
            .build_cartesian_2d(xa.coord(), rows)
            .map_err(err)?;
        let xfmt = |v: &f64| xa.label(*v);
        chart
            .configure_mesh()
            .x_desc(&p.x_desc)
            .x_label_formatter(&xfmt)
            .y_label_formatter(&|_| String::new())
            .axis_desc_style((FONT, DESC_SIZE))
            .label_style((FONT, LABEL_SIZE))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .draw()
            .map_err(err)?;
        let k = p.bars.len().max(1);
        let band = 0.72 / k as f64;
        let value_style = text_style(
            SMALL_SIZE,
            RGBColor(0x33, 0x33, 0x33),
            HPos::Left,
            VPos::Center,
        );
        let group_style = text_style(LABEL_SIZE, BLACK, HPos::Right, VPos::Center);
        let detail_style = text_style(
            SMALL_SIZE,
            RGBColor(0x55, 0x55, 0x55),
            HPos::Right,
            VPos::Center,
        );
        for (i, row) in p.rows.iter().enumerate() {
            let top = (n - i) as f64;
            if i > 0 {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(xa.lo, top), (xa.hi, top)],
                        BLACK.mix(0.15),
                    )))
                    .map_err(err)?;
            }
            for (j, v) in row.values.iter().enumerate() {
                let Some(v) = v.filter(|v| xa.accepts(*v)) else {
                    continue;
                };
                let color = row.color.unwrap_or(p.bars.get(j).map_or(BLUE, |b| b.1));
                let y1 = top - 0.14 - band * j as f64;
                let y0 = y1 - band * 0.85;
                let x = xa.to_plot(v);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(xa.lo, y0), (x, y1)],
                        color.filled(),
                    )))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        xa.fmt.show(v),
                        (x, (y0 + y1) / 2.0),
                        value_style.clone(),
                    )))
                    .map_err(err)?;
            }
            if let Some(m) = row.marker.filter(|m| xa.accepts(*m)) {
                let x = xa.to_plot(m);
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, top - 0.06), (x, top - 0.94)],
                        RGBColor(0xd6, 0x27, 0x28).stroke_width(3),
                    )))
                    .map_err(err)?;
            }
            let (px, py) = chart.backend_coord(&(xa.lo, top - 0.5));
            let gx = px - 8;
            root.draw(&Text::new(
                shorten(&row.group, 40),
                (gx, py - 9),
                group_style.clone(),
            ))
            .map_err(err)?;
            root.draw(&Text::new(
                shorten(&row.detail, 40),
                (gx, py + 9),
                detail_style.clone(),
            ))
            .map_err(err)?;
        }
        let mut items: Vec<(String, RGBColor, LegendMark)> = Vec::new();
        if p.rows.iter().any(|r| r.color.is_some()) {
            let mut seen = Vec::new();
            for r in &p.rows {
                match r.color {
                    Some(c) if !seen.contains(&r.group) => {
                        seen.push(r.group.clone());
                        items.push((r.group.clone(), c, LegendMark::Box));
                    }
                    _ => {}
                }
            }
        } else {
            items.extend(p.bars.iter().map(|(n, c)| (n.clone(), *c, LegendMark::Box)));
        }
        if let Some(m) = &p.marker_name {
            items.push((m.clone(), RGBColor(0xd6, 0x27, 0x28), LegendMark::Tick));
        }
        draw_legend(&legend, &items)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
