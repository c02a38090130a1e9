//! One panel: throughput against M for one (K, N), drawn with plotters.

use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;

use super::data::{PanelSeries, Panels, Point};
use super::style::{draw_line, draw_markers, Styles};
use super::{FONT, PANEL_H, PANEL_W};

/// The colour of the axes and their labels: the tests tell series lines from axes by it.
pub(super) const AXIS: RGBColor = RGBColor(0x33, 0x33, 0x33);

/// Panel (K, N) as an SVG document of PANEL_W × PANEL_H pixels.
pub(super) fn draw(
    panels: &Panels,
    styles: &Styles,
    (k, n): (usize, usize),
    series: &PanelSeries,
) -> Result<String, String> {
    let mut svg = String::new();
    let tooltips = draw_into(&mut svg, panels, styles, (k, n), series)?;
    // plotters writes no <title>: each point gets an invisible hit area whose title shows
    // its exact value on hover, placed last so that it lies above the lines.
    let end = svg
        .rfind("</svg>")
        .ok_or("plotters wrote no closing </svg>")?;
    svg.insert_str(end, &tooltips);
    Ok(svg)
}

/// The hover target of one point: a transparent circle over its marker, titled with the
/// series, M and the exact throughput and time.
fn tooltip((x, y): (i32, i32), label: &str, m: usize, value: f64, unit: &str, ms: f64) -> String {
    format!(
        "<circle class=\"tooltip\" cx=\"{x}\" cy=\"{y}\" r=\"7\" fill=\"transparent\">\
         <title>{}: M = {m}, {value:.4} {unit}, {ms:.4} ms</title></circle>\n",
        super::escape(label)
    )
}

fn draw_into(
    svg: &mut String,
    panels: &Panels,
    styles: &Styles,
    (k, n): (usize, usize),
    series: &PanelSeries,
) -> Result<String, String> {
    let mut tooltips = String::new();
    {
        let root = SVGBackend::with_string(svg, (PANEL_W, PANEL_H)).into_drawing_area();
        // A little room beyond the outermost powers of two, so no marker sits on the frame.
        let (m_lo, m_hi) = panels.log2_m;
        let x_range = (2f64.powi(m_lo) / 1.25)..(2f64.powi(m_hi) * 1.25);
        let (y_lo, y_hi) = panels.y_range((k, n));
        let y_range = 10f64.powi(y_lo)..10f64.powi(y_hi);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("K×N = {k}×{n}"),
                (FONT, 18).into_font().color(&AXIS),
            )
            .margin(10)
            .x_label_area_size(38)
            .y_label_area_size(56)
            .build_cartesian_2d(x_range.log_scale().base(2.0), y_range.log_scale())
            .map_err(|e| e.to_string())?;
        let powers_of_two: Vec<f64> = (m_lo..=m_hi).step_by(2).map(|e| 2f64.powi(e)).collect();
        let decades: Vec<f64> = (y_lo..=y_hi).map(|e| 10f64.powi(e)).collect();
        chart
            .configure_mesh()
            .x_labels(powers_of_two.len())
            .x_label_formatter(&|m| power_of_two_label(*m))
            .y_label_formatter(&|v| decade_label(*v))
            .x_desc("batch rows M")
            .y_desc(panels.unit.label())
            .axis_style(AXIS)
            .label_style((FONT, 12).into_font().color(&AXIS))
            .axis_desc_style((FONT, 13).into_font().color(&AXIS))
            .light_line_style(TRANSPARENT)
            .bold_line_style(AXIS.mix(0.12))
            .y_labels(decades.len())
            .draw()
            .map_err(|e| e.to_string())?;

        for (key, points) in series {
            let Some(style) = styles.of(key) else {
                continue;
            };
            let y = |p: &Point| p.gflops.map(|g| (p.m as f64, panels.unit.scale(g)));
            // A line through each run of drawable points; a missing point breaks it.
            for run in points.split(|p| p.gflops.is_none()) {
                let line: Vec<(f64, f64)> = run.iter().filter_map(y).collect();
                if line.len() < 2 {
                    continue;
                }
                draw_line(&mut chart, line, style)?;
            }
            draw_markers(&mut chart, points.iter().filter_map(y).collect(), style)?;
            let label = key.label();
            for point in points {
                if let Some((m, value)) = y(point) {
                    let at = chart.backend_coord(&(m, value));
                    let unit = panels.unit.label();
                    tooltips.push_str(&tooltip(at, &label, point.m, value, unit, point.median_ms));
                }
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(tooltips)
}

/// `1`, `4`, …, `1K`, `64K`: a power of two, as an M axis label.
fn power_of_two_label(m: f64) -> String {
    let m = m.round();
    if m >= 1024.0 {
        format!("{}K", m / 1024.0)
    } else {
        format!("{m}")
    }
}

/// `0.01`, `1`, `100`, `10⁴`: a power of ten, as a throughput axis label.
fn decade_label(value: f64) -> String {
    let e = value.log10().round() as i32;
    match e {
        -3..=3 => format!("{}", 10f64.powi(e)),
        _ => format!("1e{e}"),
    }
}
