//! The measurements of a report grouped for drawing: panels, series, points and axis ranges.

use std::collections::{BTreeMap, BTreeSet};

use super::super::Measurement;
use crate::dtype::DType;

/// The x range every panel shares when the report has nothing to say, in log₂ M.
const DEFAULT_LOG2_M: (i32, i32) = (0, 16);

/// One line: a variant in a dtype.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct SeriesKey {
    pub variant: String,
    pub dtype: DType,
}

impl SeriesKey {
    /// The legend's text for the series.
    pub fn label(&self) -> String {
        format!("{} ({})", self.variant, self.dtype)
    }
}

/// One measurement of a series.
#[derive(Debug, Clone, Copy)]
pub(super) struct Point {
    pub m: usize,
    /// GFLOP/s, or `None` when it cannot be drawn (zero, negative, infinite or NaN).
    pub gflops: Option<f64>,
    /// The median time, for the point's tooltip.
    pub median_ms: f64,
}

/// The unit of every y axis: TFLOP/s, or GFLOP/s when nothing reaches 1 TFLOP/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Unit {
    Gflops,
    Tflops,
}

impl Unit {
    pub fn label(self) -> &'static str {
        match self {
            Unit::Gflops => "GFLOP/s",
            Unit::Tflops => "TFLOP/s",
        }
    }

    /// Converts GFLOP/s into this unit.
    pub fn scale(self, gflops: f64) -> f64 {
        match self {
            Unit::Gflops => gflops,
            Unit::Tflops => gflops / 1e3,
        }
    }
}

/// The series of one panel, each with its points sorted by M.
pub(super) type PanelSeries = BTreeMap<SeriesKey, Vec<Point>>;

/// The measurements grouped for drawing, and the axis ranges.
pub(super) struct Panels {
    /// (K, N) → series → points. A point that cannot be drawn is kept as `gflops: None`, to
    /// break its line there.
    pub by_kn: BTreeMap<(usize, usize), PanelSeries>,
    /// Every drawn series, in order of first appearance in the report.
    pub series: Vec<SeriesKey>,
    /// Each panel's y range in log₁₀ of the display unit, whole decades.
    log_y: BTreeMap<(usize, usize), (i32, i32)>,
    /// The x range every panel shares, in log₂ M.
    pub log2_m: (i32, i32),
    pub unit: Unit,
}

fn drawable(gflops: f64) -> Option<f64> {
    (gflops.is_finite() && gflops > 0.0).then_some(gflops)
}

impl Panels {
    pub fn new(results: &[Measurement]) -> Self {
        let mut by_kn: BTreeMap<(usize, usize), PanelSeries> = BTreeMap::new();
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
            let point = Point {
                m: r.m,
                gflops: drawable(r.gflops),
                median_ms: r.median_ms,
            };
            by_kn
                .entry((r.k, r.n))
                .or_default()
                .entry(key)
                .or_default()
                .push(point);
        }
        // Sort by M; of two measurements of the same point, draw the faster.
        for points in by_kn.values_mut().flat_map(|s| s.values_mut()) {
            let speed = |p: &Point| p.gflops.unwrap_or(f64::NEG_INFINITY);
            points.sort_by(|a, b| a.m.cmp(&b.m).then(speed(b).total_cmp(&speed(a))));
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

    /// The y range of panel (K, N), in whole decades of the display unit.
    pub fn y_range(&self, kn: (usize, usize)) -> (i32, i32) {
        self.log_y.get(&kn).copied().unwrap_or((0, 2))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_cover_the_values_with_at_least_two() {
        assert_eq!(decades([3.0, 40.0].into_iter()), (0, 2));
        assert_eq!(decades([0.5, 700.0].into_iter()), (-1, 3));
        assert_eq!(decades(std::iter::empty()), (0, 2));
    }
}
