//! The benchmark engine shared by `vecprop bench` and the criterion benches.

mod cpu;
pub mod e2e;
mod peak;
pub mod plot;

pub use e2e::{run_end_to_end, EndToEnd};
pub use peak::cpu_fma_peak_gflops;

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use serde::Serialize;

use crate::device::Device;
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

/// Everything one `vecprop bench` run measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BenchReport {
    /// The device, as [`Device::name`] describes it.
    pub device: String,
    /// One row per shape, dtype and variant.
    pub results: Vec<Measurement>,
    /// `--latency`: small batches host to host, with and without CUDA Graphs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Vec<e2e::LatencyResult>>,
    /// `--network-throughput`: one large batch per dtype.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_throughput: Option<Vec<e2e::ThroughputResult>>,
    /// `--streaming`: many batches through `forward_stream`, with the bounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streaming: Option<Vec<e2e::StreamingResult>>,
    /// `--callers`: threads sharing one plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callers: Option<Vec<e2e::CallersResult>>,
}

impl BenchReport {
    /// An empty report for `device`.
    pub fn new(device: String) -> Self {
        BenchReport {
            device,
            results: Vec::new(),
            latency: None,
            network_throughput: None,
            streaming: None,
            callers: None,
        }
    }

    /// Fixed-width tables: per layer (shape, variant, dtype, median ms, GFLOP/s, GB/s),
    /// then each end-to-end section that was run.
    pub fn table(&self) -> String {
        let mut out = format!("device: {}\n", self.device);
        if !self.results.is_empty() {
            out.push_str(&format!(
                "{:<20} {:<22} {:<5} {:>12} {:>10} {:>9}\n",
                "shape (MxKxN)", "variant", "dtype", "median ms", "GFLOP/s", "GB/s"
            ));
        }
        for r in &self.results {
            let shape = format!("{}x{}x{}", r.m, r.k, r.n);
            out.push_str(&format!(
                "{:<20} {:<22} {:<5} {:>12.4} {:>10.1} {:>9.1}\n",
                shape, r.variant, r.dtype, r.median_ms, r.gflops, r.gbytes_per_s
            ));
        }
        out.push_str(&e2e::tables(self));
        out
    }
}

/// The shapes `vecprop bench` times on the CPU by default.
pub const CPU_DEFAULT_SHAPES: [Shape; 4] = [
    Shape::new(64, 784, 512),
    Shape::new(4096, 784, 512),
    Shape::new(16384, 1024, 1024),
    Shape::new(65536, 64, 64),
];

/// Times one dense layer (GEMM + bias + sigmoid) per shape and dtype on `device`.
///
/// Each measurement is the median of `repeats` runs after warm-up, on random non-zero
/// data, rotating between input sets so that the last-level cache does not flatter small
/// shapes. The CPU computes in f32 whatever the dtype, so it is timed once per shape.
pub fn run(
    device: &Device,
    shapes: &[Shape],
    dtypes: &[DType],
    repeats: usize,
) -> Result<BenchReport> {
    if repeats == 0 {
        return Err(Error::InvalidArgument("repeats must be at least 1".into()));
    }
    let mut results = Vec::new();
    for &shape in shapes {
        match device {
            Device::Cpu(cpu) => results.push(cpu::bench_dense(cpu, shape, repeats)),
            Device::Cuda(cuda) => {
                for &dtype in dtypes {
                    results.extend(crate::device::cuda::bench_dense(
                        cuda, shape, dtype, repeats,
                    )?);
                }
            }
        }
    }
    Ok(BenchReport {
        results,
        ..BenchReport::new(device.name())
    })
}

/// The median of `repeats` timings of `run`, in milliseconds, after `warmup` untimed calls.
/// `run` gets the repetition index, to rotate inputs.
pub fn median_ms(warmup: usize, repeats: usize, mut run: impl FnMut(usize)) -> f64 {
    for i in 0..warmup {
        run(i);
    }
    let mut times: Vec<f64> = (0..repeats)
        .map(|i| {
            let start = Instant::now();
            run(i);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(&mut times)
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
