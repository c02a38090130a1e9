//! The benchmark engine shared by `vecprop bench` and the criterion benches.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::dtype::DType;
use crate::error::{Error, Result};

/// One dense layer's problem size: M rows, K inputs, N units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Shape {
    /// Rows (examples in the batch).
    pub m: usize,
    /// Inputs per example.
    pub k: usize,
    /// Units.
    pub n: usize,
}

impl Shape {
    /// A shape.
    pub const fn new(m: usize, k: usize, n: usize) -> Self {
        Shape { m, k, n }
    }

    /// The GEMM's floating-point operations, 2·M·K·N.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }

    /// The fewest bytes a dense layer must move: A, W and B read once, the output written once.
    pub fn min_bytes(&self, dtype: DType) -> f64 {
        let elements = self.m * self.k + self.k * self.n + self.n + self.m * self.n;
        (elements * dtype.size_in_bytes()) as f64
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.m, self.k, self.n)
    }
}

impl FromStr for Shape {
    type Err = Error;
    /// `MxKxN`, e.g. `4096x784x512`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidArgument(format!(
                "bad shape `{s}`: expected MxKxN with positive integers, e.g. 4096x784x512"
            ))
        };
        let parts: Vec<usize> = s
            .trim()
            .split(['x', 'X'])
            .map(|p| p.parse::<usize>().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        match parts[..] {
            [m, k, n] if m > 0 && k > 0 && n > 0 => Ok(Shape { m, k, n }),
            _ => Err(bad()),
        }
    }
}

/// One timed variant of one shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// Rows.
    pub m: usize,
    /// Inputs.
    pub k: usize,
    /// Units.
    pub n: usize,
    /// What was timed, e.g. `cpu`, `cublas+epilogue`, `fused`.
    pub variant: String,
    /// The element type of inputs, weights and outputs.
    pub dtype: DType,
    /// Median time of one layer, in milliseconds.
    pub median_ms: f64,
    /// 2·M·K·N over the median time, in GFLOP/s.
    pub gflops: f64,
    /// The minimum traffic ([`Shape::min_bytes`]) over the median time, in GB/s.
    pub gbytes_per_s: f64,
}

impl Measurement {
    /// A measurement from a shape, a label and the median time.
    pub fn new(shape: Shape, variant: impl Into<String>, dtype: DType, median_ms: f64) -> Self {
        let seconds = median_ms / 1e3;
        Measurement {
            m: shape.m,
            k: shape.k,
            n: shape.n,
            variant: variant.into(),
            dtype,
            median_ms,
            gflops: shape.flops() / seconds / 1e9,
            gbytes_per_s: shape.min_bytes(dtype) / seconds / 1e9,
        }
    }
}

impl Serialize for DType {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

// placeholder: replaced by the bench engine
/// The results of [`run`]: one measurement per shape, dtype and variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// The device, in words.
    pub device: String,
    /// The measurements.
    pub results: Vec<Measurement>,
}

// placeholder: replaced by the bench engine
impl BenchReport {
    /// A plain-text table of the results.
    pub fn table(&self) -> String {
        format!("{}: {} results\n", self.device, self.results.len())
    }
}

// placeholder: replaced by the bench engine
/// Times every shape in every dtype on `device`, `repeats` times each.
pub fn run(
    device: &crate::device::Device,
    _shapes: &[Shape],
    _dtypes: &[DType],
    _repeats: usize,
) -> Result<BenchReport> {
    Ok(BenchReport {
        device: device.name(),
        results: Vec::new(),
    })
}
