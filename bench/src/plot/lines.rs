//! Line charts: a description ([`LinePlot`]) of series over two axes, and
//! its rendering to SVG with a marker per point and a legend column.

use anyhow::Result;
use plotters::prelude::*;

use super::axes::{Axis, AxisKind};
use super::draw::{LegendMark, draw_legend, draw_marker, err, titled_canvas};
use super::series::Series;
use super::style::{DESC_SIZE, FONT, HEIGHT, LABEL_SIZE, LEGEND_W};

pub(super) struct LinePlot {
    pub(super) title: String,
    pub(super) x_desc: String,
    pub(super) y_desc: String,
    pub(super) x: AxisKind,
    pub(super) y: AxisKind,
    pub(super) series: Vec<Series>,
}

pub(super) fn render_lines(p: &LinePlot) -> Result<String> {
    let xs: Vec<f64> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|q| q.0))
        .collect();
    let ys: Vec<f64> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|q| q.1))
        .collect();
    let (xa, ya) = (Axis::new(p.x, &xs, 0.0), Axis::new(p.y, &ys, 0.0));
    let mut svg = String::new();
    {
        let (root, plot, legend) = titled_canvas(&mut svg, HEIGHT, &p.title, LEGEND_W)?;
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(68)
            .build_cartesian_2d(xa.coord(), ya.coord())
            .map_err(err)?;
        let xfmt = |v: &f64| xa.label(*v);
        let yfmt = |v: &f64| ya.label(*v);
        chart
            .configure_mesh()
            .x_desc(&p.x_desc)
            .y_desc(&p.y_desc)
            .x_label_formatter(&xfmt)
            .y_label_formatter(&yfmt)
            .axis_desc_style((FONT, DESC_SIZE))
            .label_style((FONT, LABEL_SIZE))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .draw()
            .map_err(err)?;
        for (i, s) in p.series.iter().enumerate() {
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|(x, y)| xa.accepts(*x) && ya.accepts(*y))
                .map(|(x, y)| (xa.to_plot(*x), ya.to_plot(*y)))
                .collect();
            if pts.len() >= 2 {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        pts.clone(),
                        s.color.stroke_width(2),
                    )))
                    .map_err(err)?;
            }
            for q in &pts {
                draw_marker(&root, i, chart.backend_coord(q), s.color)?;
            }
        }
        let items: Vec<(String, RGBColor, LegendMark)> = p
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), s.color, LegendMark::Line(i)))
            .collect();
        draw_legend(&legend, &items)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
