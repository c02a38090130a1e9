//! The benchmark engine shared by `vecprop bench` and the criterion benches.

mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_stub.rs"]
mod cuda;
pub mod e2e;
mod peak;
pub mod plot;

pub use cpu::layer_parameters;
pub use cuda::{bench_ceilings, bench_copies, bench_dense, bench_dense_with, AUTO_VARIANT};
pub use e2e::{run_end_to_end, EndToEnd};
pub use peak::cpu_fma_peak_gflops;

use std::fmt;
use std::str::FromStr;

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
    /// For the `auto` variant: the kernel `Strategy::Auto` picks for this layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picked: Option<String>,
}

impl Measurement {
    /// The same measurement, noting the kernel that was picked (the `auto` variant).
    pub fn with_picked(mut self, kernel: impl Into<String>) -> Self {
        self.picked = Some(kernel.into());
        self
    }

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
            picked: None,
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

/// What the device can do at best, measured in the same run as the layers: the roofline
/// that each layer's time is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ceilings {
    /// Device-to-device copy of a 1 GiB buffer, bytes read plus bytes written, in GB/s.
    pub copy_gbytes_per_s: f64,
    /// cuBLAS bf16 GEMM at 8192×8192×8192 (f32 accumulation), in TFLOP/s: the ceiling for
    /// f16 and bf16 layers.
    pub bf16_gemm_tflops: f64,
    /// cuBLAS f32 SGEMM at 4096×4096×4096 (full f32, no TF32), in TFLOP/s: the ceiling for
    /// f32 layers.
    pub f32_gemm_tflops: f64,
}

impl Ceilings {
    /// The GEMM ceiling that binds layers of `dtype`, in TFLOP/s: bf16's for f16 and bf16.
    pub fn gemm_tflops(&self, dtype: DType) -> f64 {
        match dtype {
            DType::F32 => self.f32_gemm_tflops,
            DType::F16 | DType::BF16 => self.bf16_gemm_tflops,
        }
    }
}

impl fmt::Display for Ceilings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ceilings: d2d copy {:.1} GB/s (read + write), bf16 GEMM 8192³ {:.1} TFLOP/s, \
             f32 GEMM 4096³ {:.1} TFLOP/s",
            self.copy_gbytes_per_s, self.bf16_gemm_tflops, self.f32_gemm_tflops
        )
    }
}

/// The least time one dense layer of `shape` in `dtype` can take on a device with these
/// `ceilings`, in milliseconds: the larger of its FLOPs at the dtype's GEMM rate and its
/// minimum traffic ([`Shape::min_bytes`]) at the copy bandwidth. A ceiling that is not a
/// positive finite rate bounds nothing.
pub fn roofline_floor_ms(shape: Shape, dtype: DType, ceilings: &Ceilings) -> f64 {
    let seconds_at = |work: f64, per_second: f64| {
        if per_second.is_finite() && per_second > 0.0 {
            work / per_second
        } else {
            0.0
        }
    };
    let compute = seconds_at(shape.flops(), ceilings.gemm_tflops(dtype) * 1e12);
    let memory = seconds_at(shape.min_bytes(dtype), ceilings.copy_gbytes_per_s * 1e9);
    compute.max(memory) * 1e3
}

/// Everything one `vecprop bench` run measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BenchReport {
    /// The device, as [`Device::name`] describes it.
    pub device: String,
    /// One row per shape, dtype and variant.
    pub results: Vec<Measurement>,
    /// The device's copy bandwidth and GEMM rates, measured before the layers (GPU only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceilings: Option<Ceilings>,
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
            ceilings: None,
            latency: None,
            network_throughput: None,
            streaming: None,
            callers: None,
        }
    }

    /// Fixed-width tables: per layer (shape, variant, dtype, median ms, GFLOP/s, GB/s),
    /// then each end-to-end section that was run.
    ///
    /// With [`ceilings`](Self::ceilings), a line stating them comes first, and two columns
    /// follow GB/s: `% of gemm-only` (the `cublas-gemm-only` row of the same shape and
    /// dtype's time over this row's) and `% ceiling` ([`roofline_floor_ms`] over this row's
    /// time). A row with nothing to compare with leaves its cell blank.
    pub fn table(&self) -> String {
        let mut out = format!("device: {}\n", self.device);
        if let Some(ceilings) = &self.ceilings {
            out.push_str(&format!("{ceilings}\n"));
        }
        if !self.results.is_empty() {
            out.push_str(&format!(
                "{:<20} {:<22} {:<5} {:>12} {:>10} {:>9}",
                "shape (MxKxN)", "variant", "dtype", "median ms", "GFLOP/s", "GB/s"
            ));
            if self.ceilings.is_some() {
                out.push_str(&format!(" {:>14} {:>10}", "% of gemm-only", "% ceiling"));
            }
            out.push('\n');
        }
        for r in &self.results {
            let shape = Shape::new(r.m, r.k, r.n);
            out.push_str(&format!(
                "{:<20} {:<22} {:<5} {:>12.4} {:>10.1} {:>9.1}",
                shape.to_string(),
                match &r.picked {
                    Some(kernel) => format!("{}={kernel}", r.variant),
                    None => r.variant.clone(),
                },
                r.dtype,
                r.median_ms,
                r.gflops,
                r.gbytes_per_s
            ));
            if let Some(ceilings) = &self.ceilings {
                let gemm_only = self
                    .results
                    .iter()
                    .find(|g| {
                        g.variant == GEMM_ONLY
                            && (g.m, g.k, g.n, g.dtype) == (r.m, r.k, r.n, r.dtype)
                    })
                    .map(|g| g.median_ms);
                let floor = roofline_floor_ms(shape, r.dtype, ceilings);
                out.push_str(&format!(
                    " {:>14} {:>10}",
                    percent(gemm_only, r.median_ms),
                    percent(Some(floor), r.median_ms)
                ));
            }
            out.push('\n');
        }
        out.push_str(&e2e::tables(self));
        out
    }
}

/// The variant that times the bare cuBLAS GEMM, the reference for `% of gemm-only`.
pub const GEMM_ONLY: &str = "cublas-gemm-only";

/// `reference_ms / ms` as a percentage with one decimal, or blank when either time is not
/// positive and finite.
fn percent(reference_ms: Option<f64>, ms: f64) -> String {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    match reference_ms {
        Some(reference) if positive(reference) && positive(ms) => {
            format!("{:.1}%", reference / ms * 100.0)
        }
        _ => String::new(),
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
    run_with_tf32(device, shapes, dtypes, repeats, false)
}

/// [`run`], with f32 GEMMs on a GPU allowed TF32 tensor cores (`--tf32`; about 1e-3
/// relative error). The CPU ignores it.
pub fn run_with_tf32(
    device: &Device,
    shapes: &[Shape],
    dtypes: &[DType],
    repeats: usize,
    allow_tf32: bool,
) -> Result<BenchReport> {
    if repeats == 0 {
        return Err(Error::InvalidArgument("repeats must be at least 1".into()));
    }
    if let (Device::Cpu(_), Some(dtype)) = (device, dtypes.iter().find(|&&d| d != DType::F32)) {
        return Err(Error::InvalidArgument(format!(
            "the CPU benchmark times f32 only, not {dtype} (--dtype): a 16-bit plan on the \
             CPU stores values in 16 bits but computes in f32, so it is never faster"
        )));
    }
    let ceilings = match device {
        Device::Cpu(_) => None,
        Device::Cuda(cuda) => Some(bench_ceilings(cuda)?),
    };
    let mut results = Vec::new();
    for &shape in shapes {
        match device {
            Device::Cpu(cpu) => results.push(cpu::bench_dense(cpu, shape, repeats)),
            Device::Cuda(cuda) => {
                for &dtype in dtypes {
                    results.extend(bench_dense_with(cuda, shape, dtype, repeats, allow_tf32)?);
                }
            }
        }
    }
    Ok(BenchReport {
        results,
        ceilings,
        ..BenchReport::new(device.name())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CEILINGS: Ceilings = Ceilings {
        copy_gbytes_per_s: 1000.0,
        bf16_gemm_tflops: 500.0,
        f32_gemm_tflops: 50.0,
    };

    #[test]
    fn roofline_floor_is_the_slower_of_compute_and_traffic() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
        // Compute-bound: 2·4096³ FLOP at 500 TFLOP/s; 4·4096² + 4096 bf16 elements at
        // 1 TB/s take far less.
        let big = Shape::new(4096, 4096, 4096);
        let flops = 2.0 * 4096f64.powi(3);
        assert!(close(
            roofline_floor_ms(big, DType::BF16, &CEILINGS),
            flops / 500e12 * 1e3
        ));
        // f16 uses the bf16 ceiling, f32 its own.
        assert!(close(
            roofline_floor_ms(big, DType::F16, &CEILINGS),
            flops / 500e12 * 1e3
        ));
        assert!(close(
            roofline_floor_ms(big, DType::F32, &CEILINGS),
            flops / 50e12 * 1e3
        ));
        // Memory-bound: 65536×64×64 in f32 moves (2·65536·64 + 64·64 + 64)·4 bytes.
        let thin = Shape::new(65536, 64, 64);
        let bytes = ((2 * 65536 * 64 + 64 * 64 + 64) * 4) as f64;
        assert!(close(
            roofline_floor_ms(thin, DType::F32, &CEILINGS),
            bytes / 1000e9 * 1e3
        ));
        // A ceiling that was not measured bounds nothing.
        let no_copy = Ceilings {
            copy_gbytes_per_s: 0.0,
            ..CEILINGS
        };
        let thin_flops = 2.0 * 65536.0 * 64.0 * 64.0;
        assert!(close(
            roofline_floor_ms(thin, DType::F32, &no_copy),
            thin_flops / 50e12 * 1e3
        ));
    }

    #[test]
    fn table_shows_percentages_only_with_ceilings() {
        let shape = Shape::new(4096, 4096, 4096);
        let floor = roofline_floor_ms(shape, DType::BF16, &CEILINGS); // 0.2749 ms
        let mut report = BenchReport {
            device: "gpu".into(),
            results: vec![
                Measurement::new(shape, GEMM_ONLY, DType::BF16, 0.4),
                Measurement::new(shape, "fused", DType::BF16, 0.5),
                Measurement::new(shape, "fused", DType::F32, 4.0),
            ],
            ceilings: Some(CEILINGS),
            ..Default::default()
        };
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "device: gpu");
        assert!(
            lines[1].starts_with("ceilings: d2d copy 1000.0 GB/s"),
            "{table}"
        );
        assert!(
            lines[1].contains("bf16 GEMM 8192³ 500.0 TFLOP/s"),
            "{table}"
        );
        assert!(lines[1].contains("f32 GEMM 4096³ 50.0 TFLOP/s"), "{table}");
        assert!(lines[2].ends_with("% of gemm-only  % ceiling"), "{table}");
        let cells = |line: &str| {
            line.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let gemm = cells(lines[3]);
        assert_eq!(gemm[6], "100.0%");
        assert_eq!(gemm[7], format!("{:.1}%", floor / 0.4 * 100.0));
        let fused = cells(lines[4]);
        assert_eq!(fused[6], "80.0%");
        assert_eq!(fused[7], format!("{:.1}%", floor / 0.5 * 100.0));
        // No gemm-only row in f32: that cell is blank, the ceiling one is not.
        let f32_floor = roofline_floor_ms(shape, DType::F32, &CEILINGS);
        let f32_row = cells(lines[5]);
        assert_eq!(f32_row.len(), 7, "{table}");
        assert_eq!(f32_row[6], format!("{:.1}%", f32_floor / 4.0 * 100.0));
        assert_eq!(
            lines[5].len(),
            lines[4].len(),
            "columns stay aligned:\n{table}"
        );

        // Without ceilings (the CPU), the table has no percentage columns.
        report.ceilings = None;
        let table = report.table();
        assert!(
            !table.contains('%') && !table.contains("ceilings"),
            "{table}"
        );
        assert!(table.lines().nth(1).unwrap().ends_with("GB/s"), "{table}");
    }
}
