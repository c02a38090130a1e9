//! `vecprop bench --plot FILE.svg`: throughput against batch rows, as a self-contained SVG.
//!
//! One panel per (K, N) pair, in a grid of up to three columns. Each panel plots
//! throughput (2·M·K·N over the median time) against M on a log₂ axis from 1 to 65536,
//! with one line and markers per (variant, dtype). The y axis is log₁₀, in whole decades
//! fitted to each panel's data (throughput spans four or more decades over the report,
//! fewer within one panel, where the gaps between variants are what matters). It reads
//! TFLOP/s, or GFLOP/s when no value in the report reaches 1 TFLOP/s.
//!
//! A variant keeps its colour and dash pattern in every panel (the fused kernel is a thick
//! solid line, the cuBLAS variants are dashed, the CPU dotted, PyTorch dash-dotted); the
//! marker shape gives the dtype (● f32, □ bf16, ▲ f16). The legend above the panels is
//! shared. Points whose throughput is zero, negative, infinite or NaN are left out, and a
//! line breaks where one is missing. Hovering over a marker shows its numbers.
//!
//! The SVG is written by hand, text only, with no dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::Path;

use crate::dtype::DType;
use crate::error::{Error, Result};

use super::{BenchReport, Measurement};

/// Panels per row of the grid.
const COLUMNS: usize = 3;
/// One panel's size, in SVG user units (pixels).
const PANEL_W: f64 = 440.0;
const PANEL_H: f64 = 320.0;
/// The plot area's margins inside a panel.
const PLOT_LEFT: f64 = 64.0;
const PLOT_RIGHT: f64 = 16.0;
const PLOT_TOP: f64 = 34.0;
const PLOT_BOTTOM: f64 = 46.0;
/// The narrowest picture, so that the header fits.
const MIN_WIDTH: f64 = 660.0;
/// Space above the legend for the title and the device.
const HEADER_H: f64 = 100.0;
/// One legend entry's width and height.
const LEGEND_ENTRY_W: f64 = 250.0;
const LEGEND_ROW_H: f64 = 22.0;
/// Space at both ends of the x axis, in pixels.
const X_PAD: f64 = 8.0;
/// The default x range, as powers of two: M from 1 to 65536.
const DEFAULT_LOG2_M: (i32, i32) = (0, 16);

const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";

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
    let legend = Legend::new(&panels.series);
    let columns = panels.by_kn.len().clamp(1, COLUMNS);
    let rows = panels.by_kn.len().div_ceil(COLUMNS).max(1);
    // Wide enough for the header even with a single panel.
    let width = (columns as f64 * PANEL_W).max(MIN_WIDTH);
    let legend_per_row = ((width - 24.0) / LEGEND_ENTRY_W).floor().max(1.0) as usize;
    let legend_rows = legend.entries.len().div_ceil(legend_per_row);
    let legend_h = legend_rows as f64 * LEGEND_ROW_H + if legend_rows > 0 { 12.0 } else { 0.0 };
    let top = HEADER_H + legend_h;
    let height = top + rows as f64 * PANEL_H + 8.0;

    let mut svg = String::with_capacity(16 * 1024);
    svg.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"{FONT}\" font-size=\"12\">\n",
        w = fmt(width),
        h = fmt(height),
    ));
    svg.push_str(&format!(
        "<title>vecprop bench: throughput against M on {}</title>\n",
        escape(&report.device)
    ));
    svg.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n",
        fmt(width),
        fmt(height)
    ));
    header(&mut svg, report, &panels, width);
    legend.render(&mut svg, 12.0, HEADER_H, legend_per_row);

    if panels.by_kn.is_empty() {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"16\" fill=\"#666666\">\
             no measurements with a positive, finite throughput</text>\n",
            fmt(width / 2.0),
            fmt(top + PANEL_H / 2.0)
        ));
    }
    for (index, ((k, n), series)) in panels.by_kn.iter().enumerate() {
        let x = (index % COLUMNS) as f64 * PANEL_W;
        let y = top + (index / COLUMNS) as f64 * PANEL_H;
        panel(&mut svg, &panels, &legend, (*k, *n), series, x, y);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Renders `report` with [`render_svg`] and writes it to `path` atomically: into a
/// temporary file in the same directory, which then replaces `path`, so that a reader
/// never sees half a plot.
///
/// # Errors
/// [`Error::Io`] naming `path` when the directory cannot be written or the rename fails;
/// [`Error::InvalidArgument`] when `path` names no file.
pub fn write_svg(report: &BenchReport, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let file_name = path
        .file_name()
        .ok_or_else(|| {
            Error::InvalidArgument(format!("--plot: `{}` names no file", path.display()))
        })?
        .to_string_lossy();
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let svg = render_svg(report);
    let written = fs::File::create(&temp)
        .and_then(|mut file| {
            file.write_all(svg.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    written.map_err(|e| {
        // The temporary file may or may not exist; either way it must not stay behind.
        let _ = fs::remove_file(&temp);
        Error::io(path, e)
    })
}

/// One line: a variant in a dtype.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SeriesKey {
    variant: String,
    dtype: DType,
}

/// The measurements grouped for drawing, and the shared axis ranges.
struct Panels {
    /// (K, N) → series → points (M, GFLOP/s, median ms), sorted by M. A point whose
    /// throughput is not positive and finite is kept as `None`, to break the line there.
    by_kn: BTreeMap<(usize, usize), BTreeMap<SeriesKey, Vec<Point>>>,
    /// Every series, in order of first appearance in the report.
    series: Vec<SeriesKey>,
    /// Each panel's y range in log₁₀ of the display unit, whole decades.
    log_y: BTreeMap<(usize, usize), (i32, i32)>,
    /// Shared x range in log₂ M.
    log2_m: (i32, i32),
    unit: Unit,
}

#[derive(Debug, Clone, Copy)]
struct Point {
    m: usize,
    /// GFLOP/s, or `None` when it cannot be drawn.
    gflops: Option<f64>,
    median_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Gflops,
    Tflops,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::Gflops => "GFLOP/s",
            Unit::Tflops => "TFLOP/s",
        }
    }

    /// Converts GFLOP/s into this unit.
    fn scale(self, gflops: f64) -> f64 {
        match self {
            Unit::Gflops => gflops,
            Unit::Tflops => gflops / 1e3,
        }
    }
}

fn drawable(gflops: f64) -> Option<f64> {
    (gflops.is_finite() && gflops > 0.0).then_some(gflops)
}

impl Panels {
    fn new(results: &[Measurement]) -> Self {
        let mut by_kn: BTreeMap<(usize, usize), BTreeMap<SeriesKey, Vec<Point>>> = BTreeMap::new();
        let mut series = Vec::new();
        let mut seen = BTreeSet::new();
        for r in results.iter().filter(|r| r.m > 0) {
            let key = SeriesKey {
                variant: r.variant.clone(),
                dtype: r.dtype,
            };
            if seen.insert(key.clone()) {
                series.push(key.clone());
            }
            by_kn
                .entry((r.k, r.n))
                .or_default()
                .entry(key)
                .or_default()
                .push(Point {
                    m: r.m,
                    gflops: drawable(r.gflops),
                    median_ms: r.median_ms,
                });
        }
        // Sort by M; of two measurements of the same point, draw the faster.
        for points in by_kn.values_mut().flat_map(|s| s.values_mut()) {
            points.sort_by(|a, b| {
                a.m.cmp(&b.m).then(
                    b.gflops
                        .unwrap_or(f64::NEG_INFINITY)
                        .total_cmp(&a.gflops.unwrap_or(f64::NEG_INFINITY)),
                )
            });
            points.dedup_by_key(|p| p.m);
        }
        // A panel with nothing to draw is no panel.
        by_kn.retain(|_, s| s.values().flatten().any(|p| p.gflops.is_some()));
        let drawn: BTreeSet<&SeriesKey> = by_kn.values().flat_map(|s| s.keys()).collect();
        series.retain(|key| drawn.contains(key));

        let values = || by_kn.values().flat_map(|s| s.values()).flatten();
        let hi = values().filter_map(|p| p.gflops).fold(0.0, f64::max);
        let unit = if hi >= 1e3 {
            Unit::Tflops
        } else {
            Unit::Gflops
        };
        let log_y = by_kn
            .iter()
            .map(|(&kn, series)| {
                let values = series.values().flatten().filter_map(|p| p.gflops);
                (kn, decades(values.map(|g| unit.scale(g))))
            })
            .collect();
        let (m_lo, m_hi) = values()
            .filter(|p| p.gflops.is_some())
            .fold((usize::MAX, 0), |(lo, hi), p| (lo.min(p.m), hi.max(p.m)));
        let log2_m = if m_hi == 0 {
            DEFAULT_LOG2_M
        } else {
            (
                DEFAULT_LOG2_M.0.min((m_lo as f64).log2().floor() as i32),
                DEFAULT_LOG2_M.1.max((m_hi as f64).log2().ceil() as i32),
            )
        };
        Panels {
            by_kn,
            series,
            log_y,
            log2_m,
            unit,
        }
    }

    /// The x coordinate of log₂ M inside a plot area of width `w`, which keeps a little
    /// space at both ends so that no marker sits on the frame.
    fn x_log2(&self, log2_m: f64, w: f64) -> f64 {
        let (lo, hi) = self.log2_m;
        X_PAD + (log2_m - f64::from(lo)) / f64::from(hi - lo) * (w - 2.0 * X_PAD)
    }

    /// The x coordinate of M inside a plot area of width `w`.
    fn x(&self, m: usize, w: f64) -> f64 {
        self.x_log2((m as f64).log2(), w)
    }

    /// The y range of panel (K, N).
    fn y_range(&self, kn: (usize, usize)) -> (i32, i32) {
        self.log_y.get(&kn).copied().unwrap_or((0, 2))
    }
}

/// The y coordinate of `value` (in the display unit) on a log axis spanning the decades
/// `range`, inside a plot area of height `h`.
fn y(value: f64, (lo, hi): (i32, i32), h: f64) -> f64 {
    h - (value.log10() - f64::from(lo)) / f64::from(hi - lo) * h
}

/// The whole decades that hold `values` (all positive and finite), at least two of them,
/// with a little headroom so that no marker sits on the frame.
fn decades(values: impl Iterator<Item = f64>) -> (i32, i32) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0) {
        return (0, 2);
    }
    let top = (hi.log10() + 0.03).ceil() as i32;
    let bottom = ((lo.log10() - 0.03).floor() as i32).min(top - 2);
    (bottom, top)
}

/// How a series is drawn.
#[derive(Debug, Clone)]
struct Style {
    colour: &'static str,
    dash: Option<&'static str>,
    width: f64,
    marker: Marker,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Marker {
    /// f32: a filled circle.
    Circle,
    /// bf16: a hollow square.
    Square,
    /// f16: a filled triangle.
    Triangle,
}

impl Marker {
    fn for_dtype(dtype: DType) -> Self {
        match dtype {
            DType::F32 => Marker::Circle,
            DType::BF16 => Marker::Square,
            DType::F16 => Marker::Triangle,
        }
    }

    /// The marker centred on (x, y), with `title` (if any) as its hover text.
    fn render(self, svg: &mut String, x: f64, y: f64, colour: &str, title: &str) {
        let (tag, attributes) = match self {
            Marker::Circle => (
                "circle",
                format!(
                    "cx=\"{}\" cy=\"{}\" r=\"3.6\" fill=\"{colour}\" stroke=\"#ffffff\" \
                     stroke-width=\"0.8\"",
                    fmt(x),
                    fmt(y)
                ),
            ),
            Marker::Square => (
                "rect",
                format!(
                    "x=\"{}\" y=\"{}\" width=\"7\" height=\"7\" fill=\"#ffffff\" \
                     stroke=\"{colour}\" stroke-width=\"1.8\"",
                    fmt(x - 3.5),
                    fmt(y - 3.5)
                ),
            ),
            Marker::Triangle => (
                "polygon",
                format!(
                    "points=\"{},{} {},{} {},{}\" fill=\"{colour}\" stroke=\"#ffffff\" \
                     stroke-width=\"0.8\"",
                    fmt(x),
                    fmt(y - 4.6),
                    fmt(x - 4.2),
                    fmt(y + 3.0),
                    fmt(x + 4.2),
                    fmt(y + 3.0)
                ),
            ),
        };
        if title.is_empty() {
            svg.push_str(&format!("<{tag} class=\"marker\" {attributes}/>\n"));
        } else {
            svg.push_str(&format!(
                "<{tag} class=\"marker\" {attributes}><title>{}</title></{tag}>\n",
                escape(title)
            ));
        }
    }
}

/// Colours and dash patterns of the variants vecprop and the PyTorch script report.
/// Colours from Okabe and Ito's colour-blind-safe palette.
fn known_variant(variant: &str) -> Option<(&'static str, Option<&'static str>, f64)> {
    Some(match variant {
        "fused" => ("#D55E00", None, 2.8),
        "cublas-gemm-only" => ("#444444", Some("2 4"), 1.6),
        "cublas+epilogue" => ("#0072B2", Some("7 4"), 2.0),
        "cublaslt-bias+act" => ("#009E73", Some("12 3 3 3"), 2.0),
        "cpu" => ("#CC79A7", Some("1.5 3"), 2.0),
        "torch-eager" => ("#E69F00", Some("9 3 2 3 2 3"), 2.0),
        "torch-compile" => ("#56B4E9", Some("9 3 2 3"), 2.0),
        _ => return None,
    })
}

/// Colours for any other variant, in order of first appearance.
const OTHER_COLOURS: [&str; 8] = [
    "#8C3BB5", "#8C564B", "#17BECF", "#A6A600", "#E41A1C", "#1F4E9E", "#7F7F7F", "#2CA02C",
];
const OTHER_DASHES: [Option<&str>; 4] = [None, Some("5 3"), Some("1.5 2.5"), Some("10 3 2 3")];

/// The shared legend: one entry per series, and each series' style.
struct Legend {
    entries: Vec<(SeriesKey, Style)>,
}

impl Legend {
    fn new(series: &[SeriesKey]) -> Self {
        let mut others: BTreeMap<&str, usize> = BTreeMap::new();
        let mut entries: Vec<(SeriesKey, Style)> = series
            .iter()
            .map(|key| {
                let (colour, dash, width) = known_variant(&key.variant).unwrap_or_else(|| {
                    let next = others.len();
                    let i = *others.entry(key.variant.as_str()).or_insert(next);
                    // Variants named like ours keep their family's dash pattern.
                    let dash = if key.variant.starts_with("fused") {
                        None
                    } else if key.variant.starts_with("cublas") {
                        Some("7 4")
                    } else {
                        OTHER_DASHES[(i / OTHER_COLOURS.len()) % OTHER_DASHES.len()]
                    };
                    (OTHER_COLOURS[i % OTHER_COLOURS.len()], dash, 2.0)
                });
                let style = Style {
                    colour,
                    dash,
                    width,
                    marker: Marker::for_dtype(key.dtype),
                };
                (key.clone(), style)
            })
            .collect();
        // Group the legend by variant, in order of first appearance, then by dtype.
        let order: Vec<String> = series.iter().map(|k| k.variant.clone()).collect();
        entries.sort_by_key(|(key, _)| {
            let first = order.iter().position(|v| *v == key.variant);
            (first, key.dtype)
        });
        Legend { entries }
    }

    fn label(&self, key: &SeriesKey) -> String {
        format!("{} ({})", key.variant, key.dtype)
    }

    fn render(&self, svg: &mut String, x0: f64, y0: f64, per_row: usize) {
        svg.push_str("<g class=\"legend\">\n");
        for (i, (key, style)) in self.entries.iter().enumerate() {
            let x = x0 + (i % per_row) as f64 * LEGEND_ENTRY_W;
            let y = y0 + (i / per_row) as f64 * LEGEND_ROW_H + 11.0;
            svg.push_str(&format!(
                "<g class=\"legend-entry\" data-variant=\"{}\" data-dtype=\"{}\">",
                escape(&key.variant),
                key.dtype
            ));
            svg.push_str(&line_element(
                &format!("M{},{} L{},{}", fmt(x), fmt(y), fmt(x + 36.0), fmt(y)),
                style,
            ));
            style.marker.render(svg, x + 18.0, y, style.colour, "");
            svg.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" dominant-baseline=\"central\" fill=\"#222222\">{}</text>",
                fmt(x + 44.0),
                fmt(y),
                escape(&self.label(key))
            ));
            svg.push_str("</g>\n");
        }
        svg.push_str("</g>\n");
    }
}

/// A `<path>` drawn in a series' line style.
fn line_element(d: &str, style: &Style) -> String {
    let dash = style
        .dash
        .map(|d| format!(" stroke-dasharray=\"{d}\""))
        .unwrap_or_default();
    format!(
        "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{dash} \
         stroke-linejoin=\"round\" stroke-linecap=\"butt\"/>\n",
        style.colour,
        fmt(style.width)
    )
}

fn header(svg: &mut String, report: &BenchReport, panels: &Panels, width: f64) {
    let device = if report.device.trim().is_empty() {
        "unknown device"
    } else {
        report.device.as_str()
    };
    svg.push_str(&format!(
        "<text class=\"title\" x=\"12\" y=\"26\" font-size=\"18\" font-weight=\"600\" \
         fill=\"#111111\">Dense layer throughput against batch rows M</text>\n\
         <text class=\"device\" x=\"12\" y=\"48\" font-size=\"14\" fill=\"#111111\">{}</text>\n",
        escape(device)
    ));
    svg.push_str(&format!(
        "<text x=\"12\" y=\"68\" fill=\"#555555\">out = g(A·W + bias), A: M×K, W: K×N; \
         throughput = 2·M·K·N / median time, in {}.</text>\n\
         <text x=\"12\" y=\"84\" fill=\"#555555\">Log scales; each panel&apos;s y axis is fitted \
         to its data. Hover over a point for its numbers.</text>\n",
        panels.unit.label()
    ));
    svg.push_str(&format!(
        "<line x1=\"12\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#dddddd\"/>\n",
        fmt(width - 12.0),
        y = fmt(HEADER_H - 6.0),
    ));
}

fn panel(
    svg: &mut String,
    panels: &Panels,
    legend: &Legend,
    (k, n): (usize, usize),
    series: &BTreeMap<SeriesKey, Vec<Point>>,
    x0: f64,
    y0: f64,
) {
    let w = PANEL_W - PLOT_LEFT - PLOT_RIGHT;
    let h = PANEL_H - PLOT_TOP - PLOT_BOTTOM;
    svg.push_str(&format!(
        "<g class=\"panel\" data-k=\"{k}\" data-n=\"{n}\" transform=\"translate({},{})\">\n",
        fmt(x0),
        fmt(y0)
    ));
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"600\" \
         fill=\"#111111\">K×N = {k}×{n}</text>\n",
        fmt(PLOT_LEFT + w / 2.0)
    ));
    svg.push_str(&format!(
        "<g transform=\"translate({},{})\">\n",
        fmt(PLOT_LEFT),
        fmt(PLOT_TOP)
    ));
    svg.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#fbfbfb\" stroke=\"#bbbbbb\"/>\n",
        fmt(w),
        fmt(h)
    ));
    let range = panels.y_range((k, n));
    axes(svg, panels, range, w, h);

    // Lines first, then markers on top of every line.
    let drawn: Vec<(&SeriesKey, &Style, &Vec<Point>)> = legend
        .entries
        .iter()
        .filter_map(|(key, style)| series.get(key).map(|points| (key, style, points)))
        .collect();
    for (key, style, points) in &drawn {
        let mut d = String::new();
        let mut run = 0;
        for p in points.iter() {
            match p.gflops {
                Some(g) => {
                    let command = if run == 0 { 'M' } else { 'L' };
                    d.push_str(&format!(
                        "{command}{},{} ",
                        fmt(panels.x(p.m, w)),
                        fmt(y(panels.unit.scale(g), range, h))
                    ));
                    run += 1;
                }
                None => run = 0,
            }
        }
        if d.contains('L') {
            svg.push_str(&format!(
                "<g class=\"series\" data-variant=\"{}\" data-dtype=\"{}\">",
                escape(&key.variant),
                key.dtype
            ));
            svg.push_str(&line_element(d.trim_end(), style));
            svg.push_str("</g>\n");
        }
    }
    for (key, style, points) in &drawn {
        for p in points.iter() {
            if let Some(g) = p.gflops {
                let title = format!(
                    "{} M={} K={k} N={n}: {} {}, {} ms",
                    legend.label(key),
                    p.m,
                    number(panels.unit.scale(g)),
                    panels.unit.label(),
                    number(p.median_ms)
                );
                style.marker.render(
                    svg,
                    panels.x(p.m, w),
                    y(panels.unit.scale(g), range, h),
                    style.colour,
                    &title,
                );
            }
        }
    }
    svg.push_str("</g>\n</g>\n");
}

/// Grid lines, ticks and axis labels of one plot area of size `w`×`h`.
fn axes(svg: &mut String, panels: &Panels, (lo, hi): (i32, i32), w: f64, h: f64) {
    let decades = hi - lo;
    for e in lo..=hi {
        let y = h - f64::from(e - lo) / f64::from(decades) * h;
        if e > lo && e < hi {
            svg.push_str(&format!(
                "<line x1=\"0\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#d4d4d4\"/>\n",
                fmt(w),
                y = fmt(y)
            ));
        }
        svg.push_str(&format!(
            "<text x=\"-6\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"central\" \
             fill=\"#333333\">{}</text>\n",
            fmt(y),
            decade_label(e)
        ));
        // Minor grid lines at 2, 5 (and 3..9 when the axis spans few decades).
        if e < hi {
            let minors: &[f64] = if decades <= 3 {
                &[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
            } else {
                &[2.0, 5.0]
            };
            for &f in minors {
                let ym = y - f.log10() / f64::from(decades) * h;
                svg.push_str(&format!(
                    "<line x1=\"0\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ececec\"/>\n",
                    fmt(w),
                    y = fmt(ym)
                ));
                // On a short axis, 2× and 5× get a label too.
                if decades <= 2 && (f == 2.0 || f == 5.0) {
                    svg.push_str(&format!(
                        "<text x=\"-6\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"central\" \
                         font-size=\"10\" fill=\"#888888\">{:.*}</text>\n",
                        fmt(ym),
                        (-e).max(0) as usize,
                        f * 10f64.powi(e)
                    ));
                }
            }
        }
    }
    let (mlo, mhi) = panels.log2_m;
    for e in mlo..=mhi {
        let x = panels.x_log2(f64::from(e), w);
        let labelled = e % 2 == 0 || mhi - mlo <= 8;
        let colour = if labelled { "#d4d4d4" } else { "#ececec" };
        {
            svg.push_str(&format!(
                "<line x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{}\" stroke=\"{colour}\"/>\n",
                fmt(h),
                x = fmt(x)
            ));
        }
        if labelled {
            svg.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333333\">{}</text>\n",
                fmt(x),
                fmt(h + 16.0),
                power_of_two_label(e)
            ));
        }
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333333\">M (batch rows, log scale)</text>\n",
        fmt(w / 2.0),
        fmt(h + 36.0)
    ));
    svg.push_str(&format!(
        "<text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\" \
         fill=\"#333333\">{}</text>\n",
        fmt(-PLOT_LEFT + 16.0),
        fmt(h / 2.0),
        panels.unit.label()
    ));
}

/// 10^e as a short label: 0.01, 1, 100, 1e5.
fn decade_label(e: i32) -> String {
    match e {
        -3..=-1 => format!("{:.*}", e.unsigned_abs() as usize, 10f64.powi(e)),
        0..=4 => format!("{}", 10u32.pow(e.unsigned_abs())),
        _ => format!("1e{e}"),
    }
}

/// 2^e as a short label: 1, 64, 1K, 64K.
fn power_of_two_label(e: i32) -> String {
    match e {
        i32::MIN..=-1 => format!("2^{e}"),
        0..=9 => format!("{}", 1u64 << e),
        10..=19 => format!("{}K", 1u64 << (e - 10)),
        20..=29 => format!("{}M", 1u64 << (e - 20)),
        _ => format!("2^{e}"),
    }
}

/// A coordinate with at most two decimals and no trailing zeros; never NaN (callers
/// only pass finite values, and a non-finite one is drawn at 0 rather than corrupting
/// the document).
fn fmt(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// A measured value with about four significant digits.
fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let magnitude = if v == 0.0 {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    let decimals = (3 - magnitude).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// Escapes text for SVG element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(decade_label(-2), "0.01");
        assert_eq!(decade_label(0), "1");
        assert_eq!(decade_label(3), "1000");
        assert_eq!(decade_label(6), "1e6");
        assert_eq!(power_of_two_label(0), "1");
        assert_eq!(power_of_two_label(10), "1K");
        assert_eq!(power_of_two_label(16), "64K");
        assert_eq!(fmt(1.0), "1");
        assert_eq!(fmt(-0.001), "0");
        assert_eq!(fmt(2.345), "2.35");
        assert_eq!(fmt(f64::NAN), "0");
        assert_eq!(number(1234.5678), "1235");
        assert_eq!(number(0.012345), "0.01235");
        assert_eq!(escape("a&b<c>\"'"), "a&amp;b&lt;c&gt;&quot;&apos;");
    }
}
