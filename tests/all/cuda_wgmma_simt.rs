//! GPU parity of the `wgmma` (Hopper, f16/bf16) and `simt_warp` (f32) layer kernels against
//! a float64 reference, and Auto timing them before it may pick them.
//!
//! Every activation, rows 1/3/17/1000/65537, and widths chosen against the kernels' tiles:
//! k and n multiples of 8 but not of the 64/128 tiles (wgmma's TMA path with partial tiles),
//! k smaller than one k tile, and k not a multiple of 8 (TMA cannot address those rows: the
//! wgmma variant must fall back to `fused` and still be right).
//!
//! They need an NVIDIA GPU and FAIL without one. The wgmma tests need compute capability 9.0:
//! on another GPU they check that the variant refuses to be forced, and say so on stderr.
//! Every GPU buffer is poisoned with NaN before each pass, so an unwritten element fails.
use crate::common;

use common::{gpu, random_input, random_network, reference_forward, relative_error};
use vecprop::device::cuda::{describe_devices, CudaDevice};
use vecprop::{Activation, DType, Device, Network, PlanOptions, Strategy};

/// Batch sizes: one row, odd sizes, and more rows than a 65536-row grid of tiles.
const ROWS: [usize; 5] = [1, 3, 17, 1000, 65_537];

/// Widths (input first). Per layer (k → n):
/// - 784 → 512 → 10: the MNIST-style network; TMA path, then n = 10 (not a multiple of 8).
/// - 136 → 72 → 24: k and n multiples of 8, off every tile size: TMA with partial tiles.
/// - 8 → 200 → 16: k = 8, a single partial k tile; 200 columns = 1 full + 1 partial tile.
/// - 130 → 17 → 3: k = 130 and 17, not multiples of 8: the fallback.
/// - 2 → 33 → 65 → 7: tiny and odd everywhere.
const TOPOLOGIES: [&[usize]; 5] = [
    &[784, 512, 10],
    &[136, 72, 24],
    &[8, 200, 16],
    &[130, 17, 3],
    &[2, 33, 65, 7],
];

/// 65537 rows only where the float64 reference stays cheap (multiply-adds per row).
const LARGE_BATCH_MAX_MACS_PER_ROW: usize = 20_000;

fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-5,
        DType::F16 | DType::BF16 => 1e-2,
    }
}

fn macs_per_row(widths: &[usize]) -> usize {
    widths.windows(2).map(|pair| pair[0] * pair[1]).sum()
}

/// Whether cuda:0 is a compute capability 9.0 GPU (the only one the wgmma kernel is built for).
fn is_hopper() -> bool {
    describe_devices()
        .map(|lines| {
            lines
                .iter()
                .any(|line| line.starts_with("cuda:0 (") && line.contains(", sm_90,"))
        })
        .unwrap_or(false)
}

/// Forces `kernel` under the Fused strategy and checks every topology, batch size and
/// activation against the float64 reference.
fn check_kernel(kernel: &str, dtype: DType) {
    let (device, cuda) = gpu();
    if kernel == "wgmma" && !is_hopper() {
        assert!(
            cuda.force_fused_kernel(Some(kernel), dtype).is_err(),
            "wgmma must refuse to run off compute capability 9.0"
        );
        eprintln!("wgmma parity not run: cuda:0 is not a compute capability 9.0 GPU");
        return;
    }
    cuda.force_fused_kernel(Some(kernel), dtype)
        .unwrap_or_else(|err| panic!("forcing {kernel} for {dtype}: {err}"));
    for activation in Activation::ALL {
        for (t, widths) in TOPOLOGIES.iter().enumerate() {
            let activations = vec![activation; widths.len() - 1];
            let mut network = random_network(widths, &activations, 900 + t as u64);
            network.set_dtype(dtype); // the reference sees the rounded parameters
            check_network(&device, &network, kernel, dtype, widths);
        }
    }
    cuda.force_fused_kernel(None, dtype).expect("un-forcing");
}

fn check_network(device: &Device, network: &Network, kernel: &str, dtype: DType, widths: &[usize]) {
    let options = PlanOptions {
        max_batch: 4096,
        dtype: Some(dtype),
        strategy: Strategy::Fused,
        ..PlanOptions::default()
    };
    let plan = network
        .compile(device, options)
        .unwrap_or_else(|err| panic!("compiling {widths:?} for {kernel} {dtype}: {err}"));
    for choice in plan.kernel_choices() {
        assert!(
            choice.contains(kernel),
            "{widths:?}: {choice} is not {kernel}"
        );
    }
    for rows in ROWS {
        if rows > 1000 && macs_per_row(widths) > LARGE_BATCH_MAX_MACS_PER_ROW {
            continue;
        }
        let input = random_input(rows, widths[0], rows as u64).mapv(|x| dtype.round(x));
        let what = format!("{kernel} {dtype} {widths:?} rows {rows}");
        let got = plan
            .forward(input.view())
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        let error = relative_error(&got, &reference_forward(network, &input));
        assert!(
            error <= tolerance(dtype),
            "{what}: relative error {error:e} > {:e} ({:?})",
            tolerance(dtype),
            plan.kernel_choices()
        );
    }
}

#[test]
fn wgmma_f16() {
    check_kernel("wgmma", DType::F16);
}

#[test]
fn wgmma_bf16() {
    check_kernel("wgmma", DType::BF16);
}

#[test]
fn simt_warp_f32() {
    check_kernel("simt_warp", DType::F32);
}

#[test]
fn simt_warp_refuses_16_bit() {
    let (_, cuda) = gpu();
    assert!(cuda
        .force_fused_kernel(Some("simt_warp"), DType::BF16)
        .is_err());
    assert!(cuda
        .force_fused_kernel(Some("no_such_kernel"), DType::F32)
        .is_err());
}

/// Auto times the new kernels where they run (their timings appear in the reason) and only
/// then may pick them; off Hopper, wgmma is not among the candidates.
#[test]
fn auto_times_the_new_kernels() {
    let (device, cuda): (Device, CudaDevice) = gpu();
    cuda.force_fused_kernel(None, DType::F32)
        .expect("un-forcing");
    let hopper = is_hopper();
    for (dtype, kernel) in [
        (DType::F32, "simt_warp"),
        (DType::BF16, "wgmma"),
        (DType::F16, "wgmma"),
    ] {
        let mut network = random_network(&[784, 512], &[Activation::Sigmoid], 7);
        network.set_dtype(dtype);
        let options = PlanOptions {
            max_batch: 2048,
            dtype: Some(dtype),
            strategy: Strategy::Auto,
            ..PlanOptions::default()
        };
        let plan = network
            .compile(&device, options)
            .expect("compiling with auto");
        let choices = plan.kernel_choices().join("; ");
        let expected = kernel != "wgmma" || hopper;
        assert_eq!(
            choices.contains(kernel),
            expected,
            "{dtype}: auto's candidates ({choices}) and {kernel}"
        );
    }
}
