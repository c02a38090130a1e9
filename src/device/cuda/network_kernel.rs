//! The whole-network kernel (kernels/network.cu): every layer of a narrow network in one
//! launch, activations kept on chip.

use cudarc::driver::{
    CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DeviceRepr, LaunchConfig,
    PushKernelArg,
};

use super::error::CudaResultExt;
use super::kernels::{as_int, check_len, persistent_blocks, KernelCache};
use super::GpuElement;
use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The most layers and the widest layer the kernel takes (network.cu).
pub(crate) const NETWORK_MAX_LAYERS: usize = 8;
pub(crate) const NETWORK_MAX_WIDTH: usize = 256;
const WARPS: usize = 4;
const ROWS_PER_WARP: usize = 8;
const SOFTMAX_CODE: i32 = -1;

/// The element-wise activations in the order of `VECPROP_FOR_EACH_ACTIVATION`
/// (kernels/common.cuh): the kernel knows g by its position there. A unit test keeps the two
/// lists equal; an activation missing here simply makes the network ineligible.
const DEVICE_ACTIVATION_ORDER: [&str; 8] = [
    "linear",
    "sigmoid",
    "relu",
    "tanh",
    "gelu",
    "gelu_tanh",
    "silu",
    "leaky_relu",
];

/// The kernel's code for `activation`, `None` when it has none.
fn activation_code(activation: Activation) -> Option<i32> {
    if !activation.is_elementwise() {
        return Some(SOFTMAX_CODE);
    }
    let position = DEVICE_ACTIVATION_ORDER
        .iter()
        .position(|&name| name == activation.name())?;
    i32::try_from(position).ok()
}

/// `NetworkLayers` of network.cu, passed by value (`__grid_constant__`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct NetworkLayers {
    count: i32,
    widths: [i32; NETWORK_MAX_LAYERS + 1],
    activations: [i32; NETWORK_MAX_LAYERS],
    /// Each layer's `act_param` (leaky_relu's slope, 0 for the others).
    act_params: [f32; NETWORK_MAX_LAYERS],
    weights: [u64; NETWORK_MAX_LAYERS],
    biases: [u64; NETWORK_MAX_LAYERS],
}

// SAFETY: `NetworkLayers` is `#[repr(C)]` plain data (integers and floats only, every bit
// pattern valid) with the field order, types and therefore layout of the C struct in
// network.cu: 4 + 36 + 32 = 72 bytes of `int`, 32 bytes of `float` (104 bytes, a multiple
// of 8), then 16 eight-byte-aligned `unsigned long long` (no padding anywhere; the layout
// test below checks the size).
unsafe impl DeviceRepr for NetworkLayers {}

/// One layer as the kernel sees it.
pub(crate) struct NetworkLayer<'a, T> {
    pub(crate) weight: &'a CudaSlice<T>,
    pub(crate) bias: &'a CudaSlice<T>,
    pub(crate) inputs: usize,
    pub(crate) units: usize,
    pub(crate) activation: Activation,
}

/// Dynamic shared memory for a network whose widest activation is `widest`.
fn shared_bytes(widest: usize) -> usize {
    let stride = widest.div_ceil(32) * 32 + 4;
    WARPS * 2 * ROWS_PER_WARP * stride * 4
}

/// Why the kernel cannot run this network, or `None` when it can.
pub(crate) fn unsupported<T>(
    layers: &[NetworkLayer<'_, T>],
    shared_limit: usize,
) -> Option<String> {
    if layers.is_empty() || layers.len() > NETWORK_MAX_LAYERS {
        return Some(format!(
            "{} layers (1 to {NETWORK_MAX_LAYERS} fit)",
            layers.len()
        ));
    }
    let widest = layers
        .iter()
        .map(|l| l.inputs.max(l.units))
        .max()
        .unwrap_or(0);
    if widest > NETWORK_MAX_WIDTH || layers.iter().any(|l| l.inputs == 0 || l.units == 0) {
        return Some(format!(
            "widths up to {widest} (1 to {NETWORK_MAX_WIDTH} fit)"
        ));
    }
    if shared_bytes(widest) > shared_limit {
        return Some("not enough shared memory".to_string());
    }
    layers
        .iter()
        .find(|l| activation_code(l.activation).is_none())
        .map(|l| format!("no whole-network code for {}", l.activation))
}

/// Queues the whole network on `rows` rows: `input` (rows × first width) → `out` (rows × last
/// width), in one launch.
pub(crate) fn network_forward<T: GpuElement>(
    kernels: &KernelCache,
    stream: &CudaStream,
    layers: &[NetworkLayer<'_, T>],
    input: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
    rows: usize,
) -> Result<()> {
    let shared_limit = kernels.shared_limit()?;
    if let Some(reason) = unsupported(layers, shared_limit) {
        return Err(Error::InvalidArgument(format!(
            "the whole-network kernel cannot run this network: {reason}"
        )));
    }
    let mut params = NetworkLayers {
        count: as_int(layers.len(), "layers")?,
        ..NetworkLayers::default()
    };
    let first = layers[0].inputs;
    params.widths[0] = as_int(first, "input width")?;
    let mut previous = first;
    let mut guards = Vec::with_capacity(2 * layers.len());
    for (l, layer) in layers.iter().enumerate() {
        if layer.inputs != previous {
            return Err(Error::InvalidArgument(format!(
                "layer {l} takes {} inputs but the previous layer gives {previous}",
                layer.inputs
            )));
        }
        check_len(
            "a layer's weights",
            layer.weight.len(),
            layer.inputs * layer.units,
        )?;
        check_len("a layer's bias", layer.bias.len(), layer.units)?;
        params.widths[l + 1] = as_int(layer.units, "layer width")?;
        params.activations[l] = activation_code(layer.activation).unwrap_or(SOFTMAX_CODE);
        params.act_params[l] = layer.activation.parameter();
        let (weight, weight_guard) = layer.weight.device_ptr(stream);
        let (bias, bias_guard) = layer.bias.device_ptr(stream);
        params.weights[l] = weight;
        params.biases[l] = bias;
        guards.push(weight_guard);
        guards.push(bias_guard);
        previous = layer.units;
    }
    let last = previous;
    let m_i = as_int(rows, "rows")?;
    as_int(rows.saturating_mul(first.max(last)), "rows x width")?;
    check_len("the input", input.len(), rows * first)?;
    check_len("the output", out.len(), rows * last)?;
    if rows == 0 {
        return Ok(());
    }
    let widest = layers
        .iter()
        .map(|l| l.inputs.max(l.units))
        .max()
        .unwrap_or(1);
    let shared = shared_bytes(widest);
    let name = kernel_name(T::DTYPE);
    let function = kernels.function("network", &name, true)?;
    let threads = (32 * WARPS) as u32;
    let work = rows.div_ceil(WARPS * ROWS_PER_WARP);
    let blocks = persistent_blocks(kernels, stream, &function, threads, shared, work)?;
    let config = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: u32::try_from(shared).unwrap_or(u32::MAX),
    };
    let mut launch = stream.launch_builder(&function);
    launch.arg(input).arg(out).arg(&m_i).arg(&params);
    // SAFETY:
    // 1. The arguments match ABI.md's `network_<dtype>(const T* input, T* out, int m,
    //    NetworkLayers layers)`: the kernel was looked up by `T::DTYPE`, and `NetworkLayers`
    //    has the C layout (see its `DeviceRepr` impl).
    // 2. Every pointer in `params` is the start of a layer's weight (≥ inputs·units) or bias
    //    (≥ units) buffer of `T`, checked above; the widths chain (checked above) and are at
    //    most 256, so the kernel reads W[k][c] only for k < inputs, c < units. `input` holds
    //    rows·first and `out` rows·last elements (checked); rows are bounds-checked.
    // 3. The weights belong to the plan, which outlives every pass it queues; the views are
    //    borrowed for this call, and the caller synchronises before buffers are reused.
    // 4. Dynamic shared memory is the size the kernel's layout needs for the widest layer,
    //    within the opt-in limit granted at load (checked by `unsupported`); 128 threads.
    unsafe { launch.launch(config) }.during(&format!("launching {name}"))?;
    drop(guards);
    Ok(())
}

/// `network_<dtype>`: one kernel runs every layer, whatever their activations.
fn kernel_name(dtype: DType) -> String {
    format!("network_{}", dtype.name())
}

/// Every kernel the launcher here can name.
#[cfg(test)]
pub(super) fn launchable() -> Vec<String> {
    DType::ALL.into_iter().map(kernel_name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel knows activations by their position in common.cuh's list: keep them equal.
    #[test]
    fn activation_codes_follow_common_cuh() {
        let header = include_str!("../../../kernels/common.cuh");
        let start = header
            .find("#define VECPROP_FOR_EACH_ACTIVATION")
            .expect("common.cuh defines VECPROP_FOR_EACH_ACTIVATION");
        let names: Vec<&str> = header[start..]
            .lines()
            .skip(1)
            .take_while(|line| line.trim_start().starts_with("MACRO("))
            .filter_map(|line| line.trim_start().strip_prefix("MACRO(")?.split(',').next())
            .collect();
        assert_eq!(
            names, DEVICE_ACTIVATION_ORDER,
            "update DEVICE_ACTIVATION_ORDER"
        );
        assert_eq!(activation_code(Activation::Softmax), Some(SOFTMAX_CODE));
    }

    #[test]
    fn the_parameter_block_has_the_c_layout() {
        assert_eq!(std::mem::size_of::<NetworkLayers>(), 72 + 32 + 16 * 8);
        assert_eq!(std::mem::offset_of!(NetworkLayers, act_params), 72);
        assert_eq!(std::mem::offset_of!(NetworkLayers, weights), 104);
        // The compiled kernel takes the struct by value with exactly this size.
        let params = super::super::images::entry_params("network", "network_f32").unwrap();
        let size = std::mem::size_of::<NetworkLayers>();
        assert_eq!(params.last().unwrap(), &format!(".align 8 .b8[{size}]"));
        assert_eq!(std::mem::align_of::<NetworkLayers>(), 8);
    }

    #[test]
    fn shared_memory_covers_two_buffers_per_warp() {
        assert_eq!(shared_bytes(64), 4 * 2 * 8 * 68 * 4);
        assert_eq!(shared_bytes(256), 4 * 2 * 8 * 260 * 4);
    }
}
