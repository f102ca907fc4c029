//! Drawing pieces both renderers share: the titled canvas, series markers,
//! the legend column, and turning plotters' errors (generic over the
//! backend) into `anyhow`.

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::style::{FONT, LABEL_SIZE, TITLE_SIZE, WIDTH, shorten, text_style};

pub(super) fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A white canvas `WIDTH` × `height` drawing into `svg`, with `title` on
/// top: `(root, plot, legend)`, the legend a column `legend_w` wide on the
/// right of the plot.
pub(super) fn titled_canvas<'a>(
    svg: &'a mut String,
    height: u32,
    title: &str,
    legend_w: u32,
) -> Result<(Area<'a>, Area<'a>, Area<'a>)> {
    let root = SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .titled(title, (FONT, TITLE_SIZE).into_font().color(&BLACK))
        .map_err(err)?;
    let (plot, legend) = body.split_horizontally(WIDTH - legend_w);
    Ok((root, plot, legend))
}

/// Draws marker `shape` (0 circle, 1 square, 2 triangle, 3 diamond) at
/// pixel `(x, y)` of `area`.
pub(super) fn draw_marker(
    area: &Area<'_>,
    shape: usize,
    (x, y): (i32, i32),
    color: RGBColor,
) -> Result<()> {
    let style = color.filled();
    match shape % 4 {
        0 => area.draw(&Circle::new((x, y), 4, style)),
        1 => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], style)),
        2 => area.draw(&Polygon::new(
            vec![(x, y - 5), (x + 5, y + 4), (x - 5, y + 4)],
            style,
        )),
        _ => area.draw(&Polygon::new(
            vec![(x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y)],
            style,
        )),
    }
    .map_err(err)
}

pub(super) enum LegendMark {
    /// A line with the marker of that shape.
    Line(usize),
    Box,
    Tick,
}

/// Draws legend entries top-down into `area`.
pub(super) fn draw_legend(area: &Area<'_>, items: &[(String, RGBColor, LegendMark)]) -> Result<()> {
    let style = text_style(LABEL_SIZE, BLACK, HPos::Left, VPos::Center);
    let x0 = 8;
    for (i, (name, color, mark)) in items.iter().enumerate() {
        let y = 60 + 24 * i as i32;
        match mark {
            LegendMark::Line(shape) => {
                area.draw(&PathElement::new(
                    vec![(x0, y), (x0 + 26, y)],
                    color.stroke_width(2),
                ))
                .map_err(err)?;
                draw_marker(area, *shape, (x0 + 13, y), *color)?;
            }
            LegendMark::Box => {
                area.draw(&Rectangle::new(
                    [(x0 + 3, y - 6), (x0 + 23, y + 6)],
                    color.filled(),
                ))
                .map_err(err)?;
            }
            LegendMark::Tick => {
                area.draw(&PathElement::new(
                    vec![(x0 + 13, y - 8), (x0 + 13, y + 8)],
                    color.stroke_width(3),
                ))
                .map_err(err)?;
            }
        }
        area.draw(&Text::new(shorten(name, 26), (x0 + 34, y), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}
