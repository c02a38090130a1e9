//! `vecprop bench --plot FILE.svg`: throughput against batch rows, as a self-contained SVG.
//!
//! One panel per (K, N) pair, in a grid of up to three columns. Each panel plots throughput
//! (2·M·K·N over the median time) against M on a log₂ axis, with one line and markers per
//! (variant, dtype). The y axis is log₁₀, in whole decades fitted to each panel's data; it
//! reads TFLOP/s, or GFLOP/s when no value in the report reaches 1 TFLOP/s.
//!
//! A variant keeps its colour and dash pattern in every panel (see `style.rs`); the marker
//! shape gives the dtype (● f32, □ bf16, ▲ f16). The legend above the panels is shared.
//! Points whose throughput is zero, negative, infinite or NaN are left out, and a line
//! breaks where one is missing.
//!
//! [plotters](https://docs.rs/plotters) draws the header, the legend and each panel; this
//! module places them on the page, each panel in a `<g class="panel" data-k data-n>` group
//! and the legend in `<g class="legend">`.

mod data;
mod panel;
mod style;

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::BenchReport;
use crate::error::{Error, Result};
use data::Panels;
use style::{draw_line, draw_markers, Styles};

/// Panels per row.
const COLUMNS: u32 = 3;
/// One panel, in pixels.
const PANEL_W: u32 = 440;
const PANEL_H: u32 = 320;
/// The page is at least this wide, for the header.
const MIN_WIDTH: u32 = 660;
/// The header's height; the legend follows it.
const HEADER_H: u32 = 96;
const LEGEND_ENTRY_W: u32 = 250;
const LEGEND_ROW_H: u32 = 22;
const FONT: &str = "sans-serif";

/// Renders `report` as a self-contained SVG document: throughput against M, one panel per
/// (K, N) pair and one line per (variant, dtype). See the [module documentation](self).
///
/// ```
/// use vecprop::bench::{plot, BenchReport, Measurement, Shape};
/// use vecprop::DType;
///
/// let results = [1, 64, 1024, 65536]
///     .into_iter()
///     .flat_map(|m| {
///         let shape = Shape::new(m, 784, 512);
///         let ms = 0.005 + shape.flops() / 4e11;
///         [
///             Measurement::new(shape, "cublas+epilogue", DType::F32, ms * 1.3),
///             Measurement::new(shape, "fused", DType::F32, ms),
///         ]
///     })
///     .collect();
/// let report = BenchReport { device: "NVIDIA H100 80GB HBM3".into(), results, ..Default::default() };
/// let svg = plot::render_svg(&report);
/// assert!(svg.starts_with("<svg"));
/// assert!(svg.contains("K×N = 784×512"));
/// assert!(svg.trim_end().ends_with("</svg>"));
/// ```
pub fn render_svg(report: &BenchReport) -> String {
    let panels = Panels::new(&report.results);
    let styles = Styles::new(&panels.series);
    let count = panels.by_kn.len() as u32;
    let columns = count.clamp(1, COLUMNS);
    let rows = count.div_ceil(COLUMNS).max(1);
    let width = (columns * PANEL_W).max(MIN_WIDTH);
    let per_row = ((width - 24) / LEGEND_ENTRY_W).max(1);
    let legend_rows = (styles.entries.len() as u32).div_ceil(per_row);
    let legend_h = legend_rows * LEGEND_ROW_H + if legend_rows > 0 { 12 } else { 0 };
    let top = HEADER_H + legend_h;
    let height = top + rows * PANEL_H + 8;

    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\">\n<title>vecprop bench: throughput against M on {}</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n",
        escape(device_name(report))
    );
    let mut place = |drawn: std::result::Result<String, String>, x: u32, y: u32, group: String| {
        let body = drawn.unwrap_or_else(|e| failed(&e));
        svg.push_str(&group);
        svg.push_str(&nest(&body, x, y));
        svg.push_str("</g>\n");
    };
    place(
        header(report, &panels, width),
        0,
        0,
        "<g class=\"header\">\n".into(),
    );
    if legend_rows > 0 {
        let legend = legend(&styles, width, legend_h, per_row);
        place(legend, 0, HEADER_H, "<g class=\"legend\">\n".into());
    }
    for (index, (&(k, n), series)) in panels.by_kn.iter().enumerate() {
        let index = index as u32;
        let (x, y) = (
            (index % COLUMNS) * PANEL_W,
            top + (index / COLUMNS) * PANEL_H,
        );
        let group = format!("<g class=\"panel\" data-k=\"{k}\" data-n=\"{n}\">\n");
        place(panel::draw(&panels, &styles, (k, n), series), x, y, group);
    }
    if panels.by_kn.is_empty() {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"16\" fill=\"#666666\">\
             no measurements with a positive, finite throughput</text>\n",
            width / 2,
            top + PANEL_H / 2
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// Renders `report` with [`render_svg`] and writes it to `path` atomically, so that a
/// reader never sees half a plot.
///
/// # Errors
/// [`Error::Io`] naming `path` when the directory cannot be written or the rename fails;
/// [`Error::InvalidArgument`] when `path` names no file.
pub fn write_svg(report: &BenchReport, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if path.file_name().is_none() {
        return Err(Error::InvalidArgument(format!(
            "--plot: `{}` names no file",
            path.display()
        )));
    }
    crate::fs::write_atomic(path, render_svg(report).as_bytes())
}

fn device_name(report: &BenchReport) -> &str {
    match report.device.trim() {
        "" => "unknown device",
        _ => &report.device,
    }
}

/// The title, the device, and how to read the panels.
fn header(
    report: &BenchReport,
    panels: &Panels,
    width: u32,
) -> std::result::Result<String, String> {
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (width, HEADER_H)).into_drawing_area();
        let lines = [
            ("Dense layer throughput against batch rows M".to_string(), 20, 8),
            (device_name(report).to_string(), 15, 36),
            (
                format!(
                    "out = g(A·W + bias), A: M×K, W: K×N; throughput = 2·M·K·N / median time, in {}; log scales.",
                    panels.unit.label()
                ),
                13,
                60,
            ),
        ];
        for (text, size, y) in lines {
            area.draw(&Text::new(
                text,
                (12, y),
                (FONT, size).into_font().color(&panel::AXIS),
            ))
            .map_err(|e| e.to_string())?;
        }
        area.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// One entry per series: a stretch of its line, its marker, and `variant (dtype)`. Drawn as
/// a chart whose coordinates are the legend's pixels (y upwards), so that lines and markers
/// come from the same code as the panels'.
fn legend(
    styles: &Styles,
    width: u32,
    height: u32,
    per_row: u32,
) -> std::result::Result<String, String> {
    let mut svg = String::new();
    draw_legend(&mut svg, styles, (width, height), per_row)?;
    Ok(svg)
}

fn draw_legend(
    svg: &mut String,
    styles: &Styles,
    (width, height): (u32, u32),
    per_row: u32,
) -> std::result::Result<(), String> {
    let area = SVGBackend::with_string(svg, (width, height)).into_drawing_area();
    let mut chart = ChartBuilder::on(&area)
        .build_cartesian_2d(0f64..f64::from(width), 0f64..f64::from(height))
        .map_err(|e| e.to_string())?;
    for (i, (key, style)) in styles.entries.iter().enumerate() {
        let i = i as u32;
        let x = f64::from(12 + (i % per_row) * LEGEND_ENTRY_W);
        let y = f64::from(height - (6 + (i / per_row) * LEGEND_ROW_H + LEGEND_ROW_H / 2));
        draw_line(&mut chart, vec![(x, y), (x + 36.0, y)], style)?;
        draw_markers(&mut chart, vec![(x + 18.0, y)], style)?;
        let font = (FONT, 13)
            .into_font()
            .color(&panel::AXIS)
            .pos(Pos::new(HPos::Left, VPos::Center));
        chart
            .draw_series(std::iter::once(Text::new(key.label(), (x + 44.0, y), font)))
            .map_err(|e| e.to_string())?;
    }
    area.present().map_err(|e| e.to_string())
}

/// An SVG document placed at (x, y) inside another, as a nested `<svg>` element.
fn nest(svg: &str, x: u32, y: u32) -> String {
    let body = svg.trim_start();
    match body.strip_prefix("<svg") {
        Some(rest) => format!("<svg x=\"{x}\" y=\"{y}\"{rest}\n"),
        None => body.to_string(),
    }
}

/// What stands where plotters could not draw: the reason, as text.
fn failed(reason: &str) -> String {
    format!(
        "<text x=\"12\" y=\"20\" fill=\"#aa0000\">could not draw this part: {}</text>\n",
        escape(reason)
    )
}

/// `text` with the five XML special characters escaped.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
