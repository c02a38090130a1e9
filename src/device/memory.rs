//! GPU memory arithmetic: the caching pool's size classes, what a plan needs, and the
//! largest batch that fits.
//!
//! Everything here is plain arithmetic on byte counts, so it compiles and is tested
//! without the `cuda` feature; the CUDA backend feeds it the driver's numbers.
//!
//! ```
//! use vecprop::device::memory::size_class;
//! use vecprop::size::human_bytes;
//! // 1000 bytes round up to the next 512 B, 100 MB to the next 2 MiB.
//! assert_eq!(size_class(1000), Some(1024));
//! assert_eq!(size_class(100_000_000), Some(48 * (2 << 20)));
//! assert_eq!(human_bytes(627_200_000_000), "627.2 GB");
//! ```

use std::fmt;

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::network::Network;
use crate::size::human_bytes;

/// The granule of small blocks: every size class is a multiple of 512 bytes.
pub const SMALL_GRANULE: usize = 512;
/// The granule of large blocks (16 MiB and up), as in PyTorch's caching allocator.
pub const LARGE_GRANULE: usize = 2 << 20;
/// Classes per doubling of size, as a power of two: 2³ = 8 classes per octave, so the
/// rounding never exceeds 1/8 of the request (above the small granule).
const CLASS_BITS: u32 = 3;

/// The bytes the caching pool allocates for a request of `bytes`: the request rounded up
/// to a granule of 1/8 of its power of two, at least [`SMALL_GRANULE`] and at most
/// [`LARGE_GRANULE`]. The waste is therefore below 512 B for requests under 4 KiB and at
/// most 1/8 of the request above, while sizes still fall into few classes (8 per octave)
/// so that freed blocks are found again. `None` when the rounding overflows.
pub fn size_class(bytes: usize) -> Option<usize> {
    let bytes = bytes.max(1);
    let octave = usize::BITS - 1 - bytes.leading_zeros();
    let granule = (1usize << octave.saturating_sub(CLASS_BITS)).clamp(SMALL_GRANULE, LARGE_GRANULE);
    bytes.checked_next_multiple_of(granule)
}

/// What a compiled plan holds on the GPU (and in pinned host memory) for one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanMemory {
    /// Rows per pass the figures are for.
    pub batch: usize,
    /// Weights and biases, resident for the plan's life.
    pub weights: u64,
    /// The two activation buffers one pass ping-pongs between (pool size classes).
    pub activations: u64,
    /// cuBLAS and cuBLASLt workspaces of the lane a pass runs on.
    pub workspace: u64,
    /// Pinned host staging, input and output (host memory, not on the GPU).
    pub pinned_host: u64,
}

impl PlanMemory {
    /// Device bytes of one pass: weights, activations and workspace.
    pub fn device_total(&self) -> u64 {
        self.weights + self.activations + self.workspace
    }

    /// Device bytes with `passes` passes in flight at once (each with its own activations
    /// and lane), as the stream pipeline keeps them; the weights are shared.
    pub fn device_total_with(&self, passes: usize) -> u64 {
        let passes = passes.max(1) as u64;
        self.weights
            .saturating_add(passes.saturating_mul(self.activations + self.workspace))
    }
}

impl fmt::Display for PlanMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GPU memory at batch {}: weights {}, activations {}, workspace {}; total {} per \
             pass, {} with {PIPELINE_DEPTH} passes in flight when streaming (pinned host \
             staging {} per pass)",
            self.batch,
            human_bytes(self.weights),
            human_bytes(self.activations),
            human_bytes(self.workspace),
            human_bytes(self.device_total()),
            human_bytes(self.device_total_with(PIPELINE_DEPTH)),
            human_bytes(self.pinned_host),
        )
    }
}

/// The shape facts [`plan_memory`] needs, taken from a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryShape {
    /// Per layer, (inputs, units).
    pub layers: Vec<(usize, usize)>,
    /// Features per input row.
    pub input_width: usize,
    /// Values per output row.
    pub output_width: usize,
}

impl MemoryShape {
    /// The shapes of `network`'s layers.
    pub fn of(network: &Network) -> Self {
        MemoryShape {
            layers: network
                .layers()
                .iter()
                .map(|layer| (layer.inputs(), layer.units()))
                .collect(),
            input_width: network.input_width(),
            output_width: network.output_width(),
        }
    }

    /// The widest activation, the input or any layer's output: each of the two buffers a
    /// pass ping-pongs between holds rows × this (tuning runs any layer on either).
    pub fn widest(&self) -> usize {
        self.layers
            .iter()
            .map(|&(_, units)| units)
            .fold(self.input_width, usize::max)
    }
}

/// What a plan of `shape` in `dtype` holds for one pass of `batch` rows, given the lane's
/// `workspace` bytes; the activation buffers and staging are counted at their pool size
/// classes, which is what the pools really allocate. Errors when a size overflows.
pub fn plan_memory(
    shape: &MemoryShape,
    dtype: DType,
    batch: usize,
    workspace: u64,
) -> Result<PlanMemory> {
    let element = dtype.size_in_bytes();
    let too_large =
        || Error::InvalidArgument(format!("a plan for batch {batch} is too large to address"));
    let bytes = |elements: Option<usize>| -> Result<u64> {
        elements
            .and_then(|n| n.checked_mul(element))
            .map(|b| b as u64)
            .ok_or_else(too_large)
    };
    let pooled = |elements: Option<usize>| -> Result<u64> {
        elements
            .and_then(|n| n.checked_mul(element))
            .and_then(size_class)
            .map(|b| b as u64)
            .ok_or_else(too_large)
    };
    let mut weights = 0u64;
    for &(inputs, units) in &shape.layers {
        let layer = bytes(inputs.checked_mul(units).and_then(|w| w.checked_add(units)))?;
        weights = weights.checked_add(layer).ok_or_else(too_large)?;
    }
    let activations = pooled(batch.checked_mul(shape.widest()))?
        .checked_mul(2)
        .ok_or_else(too_large)?;
    let staging_in = pooled(batch.checked_mul(shape.input_width))?;
    let staging_out = pooled(batch.checked_mul(shape.output_width))?;
    Ok(PlanMemory {
        batch,
        weights,
        activations,
        workspace,
        pinned_host: staging_in.checked_add(staging_out).ok_or_else(too_large)?,
    })
}

/// The out-of-memory error for a plan that needs `needed` bytes at `batch` rows when the
/// GPU has `free` bytes, or `Ok` when it fits.
pub fn check_fits(needed: u64, batch: usize, free: u64) -> Result<()> {
    if needed > free {
        return Err(Error::OutOfGpuMemory {
            needed,
            batch,
            free,
        });
    }
    Ok(())
}

/// The share of free GPU memory an automatically sized batch may use.
pub const AUTO_BATCH_SHARE: f64 = 0.5;
/// Automatic batch sizes stop here: larger chunks no longer speed up the pipeline, and
/// they delay the first output.
pub const AUTO_BATCH_MAX: usize = 1 << 18;

/// The largest batch (at most [`AUTO_BATCH_MAX`], at least 1) whose plan, with `passes`
/// passes in flight, fits in `budget` device bytes. `None` when not even one row fits.
pub fn largest_batch(
    shape: &MemoryShape,
    dtype: DType,
    workspace: u64,
    passes: usize,
    budget: u64,
) -> Option<usize> {
    let fits = |rows: usize| {
        plan_memory(shape, dtype, rows, workspace)
            .is_ok_and(|memory| memory.device_total_with(passes) <= budget)
    };
    if !fits(1) {
        return None;
    }
    // Binary search on the monotonic `fits`: `low` always fits, `high` never does.
    let (mut low, mut high) = (1usize, AUTO_BATCH_MAX + 1);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if fits(middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    Some(low)
}

/// Passes a GPU stream keeps in flight at once (upload, compute and download overlap), so
/// what an automatically sized batch must fit [`PIPELINE_DEPTH`] times.
pub const PIPELINE_DEPTH: usize = 3;
/// The batch size on the CPU when none is given.
pub const CPU_DEFAULT_BATCH: usize = 4096;

/// A batch size chosen for a network and a device, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoBatch {
    /// Rows per pass.
    pub rows: usize,
    /// One line for verbose output.
    pub reason: String,
}

/// The batch size to use when the user gives none: on a GPU the largest that fits
/// [`AUTO_BATCH_SHARE`] of the free memory with [`PIPELINE_DEPTH`] passes in flight (at
/// most [`AUTO_BATCH_MAX`]); on the CPU [`CPU_DEFAULT_BATCH`]. `dtype` is the compute
/// precision (`None`: the network's). Errors with [`Error::OutOfGpuMemory`] when not even
/// one row fits.
pub fn auto_batch_size(
    network: &Network,
    device: &Device,
    dtype: Option<DType>,
) -> Result<AutoBatch> {
    let Device::Cuda(gpu) = device else {
        return Ok(AutoBatch {
            rows: CPU_DEFAULT_BATCH,
            reason: format!("batch size {CPU_DEFAULT_BATCH} (the CPU default)"),
        });
    };
    let dtype = dtype.unwrap_or(network.dtype());
    let shape = MemoryShape::of(network);
    let workspace = gpu.lane_workspace_bytes();
    let (free, _total) = gpu.memory_info()?;
    let free = free as u64;
    let budget = (free as f64 * AUTO_BATCH_SHARE) as u64;
    match largest_batch(&shape, dtype, workspace, PIPELINE_DEPTH, budget) {
        Some(rows) => Ok(AutoBatch {
            rows,
            reason: format!(
                "batch size {rows} (auto: the largest of at most {AUTO_BATCH_MAX} rows whose \
                 {PIPELINE_DEPTH} passes in flight fit in {:.0}% of the {} free on the GPU)",
                AUTO_BATCH_SHARE * 100.0,
                human_bytes(free)
            ),
        }),
        None => {
            let one = plan_memory(&shape, dtype, 1, workspace)?;
            Err(Error::OutOfGpuMemory {
                needed: one.device_total_with(PIPELINE_DEPTH),
                batch: 1,
                free,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_waste_at_most_an_eighth() {
        let mut sizes: Vec<usize> = (1..20_000).collect();
        // Around every power of two up to 64 GiB, and a spread in between.
        for bit in 10..36 {
            let p = 1usize << bit;
            sizes.extend([p - 1, p, p + 1, p + p / 3, p + p / 8 + 1, 2 * p - 1]);
        }
        sizes.extend((0..2000).map(|i| 1 + i * 7_919_993));
        for bytes in sizes {
            let class = size_class(bytes).unwrap();
            assert!(class >= bytes, "{bytes} -> {class}");
            assert_eq!(class % SMALL_GRANULE, 0, "{bytes} -> {class}");
            let waste = class - bytes;
            assert!(
                waste < SMALL_GRANULE || waste * 8 <= bytes,
                "{bytes} -> {class} wastes {waste}"
            );
        }
    }

    #[test]
    fn size_classes_follow_the_granules() {
        assert_eq!(size_class(0), Some(512));
        assert_eq!(size_class(1), Some(512));
        assert_eq!(size_class(513), Some(1024));
        // 1 MiB + 1: the granule is 128 KiB.
        assert_eq!(size_class((1 << 20) + 1), Some((1 << 20) + (128 << 10)));
        // Large blocks: 2 MiB granularity.
        assert_eq!(size_class((100 << 20) + 1), Some(102 << 20));
        // The 627 GB request of the issue is rounded by under 2 MiB, not to 1 TiB.
        let request = 627_200_000_000usize;
        let class = size_class(request).unwrap();
        assert!(class - request < LARGE_GRANULE, "{class}");
        assert_eq!(size_class(usize::MAX), None);
    }

    #[test]
    fn equal_requests_share_a_class_and_classes_are_few() {
        let classes: std::collections::BTreeSet<usize> = (1..=(64usize << 20))
            .step_by(4093)
            .map(|b| size_class(b).unwrap())
            .collect();
        // 8 per octave above 4 KiB, plus the 512 B steps below.
        assert!(classes.len() < 8 * 14 + 8, "{}", classes.len());
    }

    fn mlp() -> MemoryShape {
        MemoryShape {
            layers: vec![(784, 512), (512, 256), (256, 10)],
            input_width: 784,
            output_width: 10,
        }
    }

    #[test]
    fn plan_memory_counts_weights_activations_and_workspace() {
        let memory = plan_memory(&mlp(), DType::F32, 4096, 64 << 20).unwrap();
        let weights = (784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10) * 4;
        assert_eq!(memory.weights, weights as u64);
        // Two buffers of 4096 rows x 784 (the widest) f32.
        assert_eq!(mlp().widest(), 784);
        assert_eq!(
            memory.activations,
            2 * size_class(4096 * 784 * 4).unwrap() as u64
        );
        assert_eq!(memory.workspace, 64 << 20);
        assert_eq!(
            memory.device_total(),
            memory.weights + memory.activations + memory.workspace
        );
        let bf16 = plan_memory(&mlp(), DType::BF16, 4096, 0).unwrap();
        assert_eq!(bf16.weights * 2, memory.weights);
        let text = memory.to_string();
        assert!(text.contains("weights 2.1 MB"), "{text}");
        assert!(text.contains("workspace 67.1 MB"), "{text}");
    }

    #[test]
    fn the_issue_batch_is_reported_with_the_numbers() {
        let memory = plan_memory(&mlp(), DType::F32, 200_000_000, 64 << 20).unwrap();
        let err = check_fits(memory.device_total(), 200_000_000, 78_900_000_000).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("out of GPU memory: the plan needs 1254.")
                && text.ends_with(" GB at batch 200000000, 78.9 GB are free; lower --batch-size"),
            "{text}"
        );
        assert!(check_fits(10, 1, 10).is_ok());
        // Overflowing sizes are an error, not a wrap.
        assert!(plan_memory(&mlp(), DType::F32, usize::MAX / 2, 0).is_err());
    }

    #[test]
    fn the_largest_batch_fits_and_one_more_row_would_not() {
        let workspace = 64 << 20;
        let budget = 8_000_000_000u64;
        let rows = largest_batch(&mlp(), DType::F32, workspace, 3, budget).unwrap();
        let need = |rows| {
            plan_memory(&mlp(), DType::F32, rows, workspace)
                .unwrap()
                .device_total_with(3)
        };
        assert!(need(rows) <= budget);
        assert!(rows == AUTO_BATCH_MAX || need(rows + 1) > budget, "{rows}");
        let small = largest_batch(&mlp(), DType::F32, workspace, 3, 400_000_000).unwrap();
        assert!(small < rows && need(small) <= 400_000_000 && need(small + 1) > 400_000_000);
        assert_eq!(largest_batch(&mlp(), DType::F32, workspace, 3, 1000), None);
    }

    #[test]
    fn the_widest_activation_may_be_the_input_or_a_layer() {
        let widening = MemoryShape {
            layers: vec![(4, 8), (8, 64), (64, 2)],
            input_width: 4,
            output_width: 2,
        };
        assert_eq!(widening.widest(), 64);
        assert_eq!(mlp().widest(), 784);
    }

    #[test]
    fn the_cpu_keeps_its_default_batch() {
        let network = Network::builder(3)
            .dense(2, crate::activation::Activation::Relu)
            .build()
            .unwrap();
        let auto = auto_batch_size(&network, &Device::cpu(), None).unwrap();
        assert_eq!(auto.rows, CPU_DEFAULT_BATCH);
        assert!(auto.reason.contains("CPU default"), "{}", auto.reason);
    }

    #[test]
    fn human_bytes_uses_decimal_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(78_900_000_000), "78.9 GB");
        assert_eq!(human_bytes(13_107_200), "13.1 MB");
    }
}
