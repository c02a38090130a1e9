//! The CPU's measured f32 fused-multiply-add peak: the ceiling CPU GEMM numbers are
//! compared against.

use std::hint::black_box;
use std::time::Instant;

/// Independent accumulator registers per thread: 12, more than FMA latency × FMA ports, so
/// the loop is bound by throughput, not latency (12 × 8 lanes on AVX2, 12 × 16 on AVX-512,
/// where 96 lanes would be only 6 registers and the loop latency-bound).
const CHAINS: usize = 12;
const ITERATIONS: usize = 2_000_000;

/// Runs independent FMA chains on every rayon thread at once and returns the aggregate
/// rate in GFLOP/s (one FMA = 2 FLOPs), best of three tries.
///
/// The loop is compiled for the widest SIMD level the processor has (through `pulp`), so
/// this is the practical peak a GEMM kernel can approach.
pub fn cpu_fma_peak_gflops() -> f64 {
    (0..3).map(|_| one_try()).fold(0.0, f64::max)
}

fn one_try() -> f64 {
    let runs: Vec<(f64, usize)> = rayon::broadcast(|_| pulp::Arch::new().dispatch(FmaChains));
    let slowest = runs.iter().map(|run| run.0).fold(0.0, f64::max);
    let lanes: usize = runs.iter().map(|run| run.1).sum();
    let flops = 2.0 * (lanes * ITERATIONS) as f64;
    flops / slowest / 1e9
}

/// The timed loop, as a `WithSimd` so that pulp compiles it with the detected features.
struct FmaChains;

impl pulp::WithSimd for FmaChains {
    /// Seconds, and the lanes timed.
    type Output = (f64, usize);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> (f64, usize) {
        match S::F32_LANES {
            16 => (chains::<{ CHAINS * 16 }>(), CHAINS * 16),
            _ => (chains::<{ CHAINS * 8 }>(), CHAINS * 8),
        }
    }
}

/// The loop over `LANES` accumulators, inlined into the SIMD context that calls it.
#[inline(always)]
fn chains<const LANES: usize>() -> f64 {
    let mut acc = black_box([1.0_f32; LANES]);
    let (a, b) = (black_box(0.999_999_f32), black_box(1e-7_f32));
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        for x in acc.iter_mut() {
            *x = x.mul_add(a, b);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    black_box(acc);
    elapsed
}
