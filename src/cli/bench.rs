//! `vecprop bench`.

use std::path::PathBuf;

use vecprop::bench::Shape;
use vecprop::{io, DType, Error, Result};

/// Arguments of `vecprop bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Comma-separated MxKxN shapes (rows x inputs x units), e.g. 4096x784x512.
    #[arg(long, value_name = "LIST")]
    shapes: Option<String>,
    /// Comma-separated dtypes: f32, f16, bf16 (default: f32 on the CPU, all three on a GPU).
    #[arg(long, value_name = "LIST")]
    dtype: Option<String>,
    /// On a GPU, run f32 GEMMs on TF32 tensor cores (about 1e-3 relative error; strict f32
    /// is the default).
    #[arg(long)]
    tf32: bool,
    /// Timed repetitions per shape and dtype.
    #[arg(long, default_value_t = 10, value_name = "N")]
    repeats: usize,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also plot throughput against M, one panel per (K, N), to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Only measure the CPU's f32 FMA peak (the ceiling for CPU GEMM numbers) and print it.
    #[arg(long)]
    peak: bool,
    /// Latency of the 784-512-256-10 network at batch 1, 8 and 64, host to host, with and
    /// (on a GPU) without CUDA Graphs: median and p99 over 1000 runs.
    #[arg(long)]
    latency: bool,
    /// The same network on one batch of 65,536 rows: examples/s and TFLOP/s.
    #[arg(long)]
    network_throughput: bool,
    /// Many large batches through forward_stream, against the copy and compute bounds.
    #[arg(long)]
    streaming: bool,
    /// Comma-separated thread counts calling one shared plan at once, e.g. 1,2,4,8.
    #[arg(long, value_name = "LIST")]
    callers: Option<String>,
}

const CPU_SHAPES: &str = "64x784x512,4096x784x512,16384x1024x1024,65536x64x64";
/// The GPU grid: M ∈ {1, 64, 1024, 16384, 65536} × (K, N) ∈ {(64, 64), (256, 256),
/// (784, 512), (1024, 1024), (4096, 4096)}, 25 shapes.
const GPU_M: [usize; 5] = [1, 64, 1024, 16384, 65536];
const GPU_KN: [(usize, usize); 5] = [(64, 64), (256, 256), (784, 512), (1024, 1024), (4096, 4096)];

fn gpu_shapes() -> Vec<Shape> {
    GPU_KN
        .iter()
        .flat_map(|&(k, n)| GPU_M.iter().map(move |&m| Shape::new(m, k, n)))
        .collect()
}

/// Runs the benchmark, prints its table, and writes the JSON if asked.
pub fn run(args: Args) -> Result<()> {
    if args.peak {
        let gflops = vecprop::bench::cpu_fma_peak_gflops();
        return super::print(&format!("cpu f32 FMA peak: {gflops:.1} GFLOP/s\n"));
    }
    let device = super::parse_device(&args.device)?;
    let mut end_to_end = vecprop::bench::EndToEnd::sized_for(&device);
    end_to_end.latency = args.latency;
    end_to_end.network_throughput = args.network_throughput;
    end_to_end.streaming = args.streaming;
    if let Some(list) = args.callers.as_deref() {
        end_to_end.callers = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "bad --callers entry `{s}`: expected positive thread counts, e.g. 1,2,4,8"
                    ))
                })
            })
            .collect::<Result<_>>()?;
    }
    // With end-to-end sections asked for, the per-layer table runs only if --shapes is given.
    let layer_bench = !end_to_end.any() || args.shapes.is_some();
    let shapes: Vec<Shape> = match args.shapes.as_deref() {
        Some(list) => super::parse_comma_list(list)?,
        None if device.is_cuda() => gpu_shapes(),
        None => super::parse_comma_list(CPU_SHAPES)?,
    };
    let dtypes: Vec<DType> = match args.dtype.as_deref() {
        Some(list) => super::parse_comma_list(list)?,
        None if device.is_cuda() => DType::ALL.to_vec(),
        None => vec![DType::F32],
    };
    if shapes.is_empty() || dtypes.is_empty() || args.repeats == 0 {
        return Err(Error::InvalidArgument(
            "bench needs at least one shape, one dtype and one repeat".into(),
        ));
    }
    let mut report = if layer_bench {
        vecprop::bench::run_with_tf32(&device, &shapes, &dtypes, args.repeats, args.tf32)?
    } else {
        vecprop::bench::BenchReport::new(device.name())
    };
    vecprop::bench::run_end_to_end(&device, &end_to_end, &mut report)?;
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report)
            .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
        io::write_atomic(path, &json)?;
    }
    if let Some(path) = &args.plot {
        vecprop::bench::plot::write_svg(&report, path)?;
    }
    super::print(&report.table())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gpu_grid_has_every_m_for_every_k_n() {
        let shapes = gpu_shapes();
        assert_eq!(shapes.len(), 25);
        assert_eq!(shapes[0], Shape::new(1, 64, 64));
        assert_eq!(shapes[24], Shape::new(65536, 4096, 4096));
        for m in GPU_M {
            for (k, n) in GPU_KN {
                assert!(shapes.contains(&Shape::new(m, k, n)));
            }
        }
    }
}
