//! How each series is drawn: colour, dash pattern and width by variant, marker by dtype.
//!
//! A variant keeps its style in every panel: the fused kernel is a thick solid line, the
//! cuBLAS variants are dashed, the CPU dotted, PyTorch dash-dotted. Colours come from Okabe
//! and Ito's colour-blind-safe palette.

use std::collections::BTreeMap;

use plotters::coord::CoordTranslate;
use plotters::prelude::*;

use super::data::SeriesKey;
use crate::dtype::DType;

/// A dash pattern: (dash, gap) in pixels.
type Dash = (u32, u32);

/// How a series is drawn.
#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    pub colour: RGBColor,
    pub dash: Option<Dash>,
    pub width: u32,
    pub marker: Marker,
}

impl Style {
    /// The line's stroke.
    pub fn stroke(&self) -> ShapeStyle {
        self.colour.stroke_width(self.width)
    }
}

/// The marker of a dtype: ● f32, □ bf16, ▲ f16.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Marker {
    Circle,
    Square,
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
}

/// Draws `points` joined by `style`'s line (solid or dashed) on `chart`.
pub(super) fn draw_line<DB, CT>(
    chart: &mut ChartContext<'_, DB, CT>,
    points: Vec<CT::From>,
    style: &Style,
) -> Result<(), String>
where
    DB: DrawingBackend,
    CT: CoordTranslate,
    CT::From: Clone + 'static,
{
    let drawn = match style.dash {
        None => chart
            .draw_series(LineSeries::new(points, style.stroke()))
            .map(|_| ()),
        Some((dash, gap)) => chart
            .draw_series(DashedLineSeries::new(points, dash, gap, style.stroke()))
            .map(|_| ()),
    };
    drawn.map_err(|e| e.to_string())
}

/// Draws `style`'s marker on each of `points` on `chart`.
pub(super) fn draw_markers<DB, CT>(
    chart: &mut ChartContext<'_, DB, CT>,
    points: Vec<CT::From>,
    style: &Style,
) -> Result<(), String>
where
    DB: DrawingBackend,
    CT: CoordTranslate,
    CT::From: Clone + 'static,
{
    let colour = style.colour;
    let points = points.into_iter();
    let drawn = match style.marker {
        Marker::Circle => chart
            .draw_series(
                points.map(|at| EmptyElement::at(at) + Circle::new((0, 0), 4, colour.filled())),
            )
            .map(|_| ()),
        Marker::Square => chart
            .draw_series(points.map(|at| {
                EmptyElement::at(at) + Rectangle::new([(-3, -3), (4, 4)], colour.stroke_width(2))
            }))
            .map(|_| ()),
        Marker::Triangle => chart
            .draw_series(points.map(|at| TriangleMarker::new(at, 5, colour.filled())))
            .map(|_| ()),
    };
    drawn.map_err(|e| e.to_string())
}

/// Colour, dash pattern and width of the variants vecprop and the PyTorch script report.
fn known_variant(variant: &str) -> Option<(RGBColor, Option<Dash>, u32)> {
    Some(match variant {
        "fused" => (RGBColor(0xD5, 0x5E, 0x00), None, 3),
        "cublas-gemm-only" => (RGBColor(0x44, 0x44, 0x44), Some((2, 4)), 2),
        "cublas+epilogue" => (RGBColor(0x00, 0x72, 0xB2), Some((7, 4)), 2),
        "cublaslt-bias+act" => (RGBColor(0x00, 0x9E, 0x73), Some((12, 3)), 2),
        "cpu" => (RGBColor(0xCC, 0x79, 0xA7), Some((2, 3)), 2),
        "torch-eager" => (RGBColor(0xE6, 0x9F, 0x00), Some((9, 3)), 2),
        "torch-compile" => (RGBColor(0x56, 0xB4, 0xE9), Some((5, 5)), 2),
        _ => return None,
    })
}

/// Colours for any other variant, in order of first appearance.
const OTHER_COLOURS: [RGBColor; 8] = [
    RGBColor(0x8C, 0x3B, 0xB5),
    RGBColor(0x8C, 0x56, 0x4B),
    RGBColor(0x17, 0xBE, 0xCF),
    RGBColor(0xA6, 0xA6, 0x00),
    RGBColor(0xE4, 0x1A, 0x1C),
    RGBColor(0x1F, 0x4E, 0x9E),
    RGBColor(0x7F, 0x7F, 0x7F),
    RGBColor(0x2C, 0xA0, 0x2C),
];
const OTHER_DASHES: [Option<Dash>; 4] = [None, Some((5, 3)), Some((2, 3)), Some((10, 3))];

/// Every series with its style, in legend order: by variant in order of first appearance,
/// then by dtype.
pub(super) struct Styles {
    pub entries: Vec<(SeriesKey, Style)>,
}

impl Styles {
    pub fn new(series: &[SeriesKey]) -> Self {
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
                        Some((7, 4))
                    } else {
                        OTHER_DASHES[(i / OTHER_COLOURS.len()) % OTHER_DASHES.len()]
                    };
                    (OTHER_COLOURS[i % OTHER_COLOURS.len()], dash, 2)
                });
                let marker = Marker::for_dtype(key.dtype);
                let style = Style {
                    colour,
                    dash,
                    width,
                    marker,
                };
                (key.clone(), style)
            })
            .collect();
        let order: Vec<&str> = series.iter().map(|k| k.variant.as_str()).collect();
        entries.sort_by_key(|(key, _)| {
            let first = order.iter().position(|v| *v == key.variant);
            (first, key.dtype)
        });
        Styles { entries }
    }

    /// The style of `key`, which must be one of the series the styles were made for.
    pub fn of(&self, key: &SeriesKey) -> Option<&Style> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, s)| s)
    }
}
