//! vecprop's own kernels (kernels/ABI.md): names, lazy per-device loading, and launches.
//!
//! Modules are loaded the first time one of their kernels is asked for and cached with the
//! device, like candle's `get_or_load_func`. [`kernel_name`] is the one place that spells
//! kernel names. The launch wrappers check every size against the buffers before the one
//! `unsafe` call, whose SAFETY comment rests on those checks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute, CUresult};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaStream, CudaView, CudaViewMut, DriverError,
    LaunchArgs, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use super::context::driver_version;
use super::error::CudaResultExt;
use super::hopper_tile::{shared_bytes, HopperTile};
use super::operands::DenseOperands;
use super::{images, GpuElement};
use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Which kernel family (ABI.md), by the prefix of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KernelOp {
    /// `bias_<act>_<dtype>`: in-place bias + activation over a GEMM's output.
    BiasActivation,
    /// `fused_<act>_<dtype>`: GEMM + bias + activation, 128×128 tiles.
    Fused,
    /// `fused_small_<act>_<dtype>`: the same with 64×64 tiles, for small problems.
    FusedSmall,
    /// `simt_warp_<act>_f32`: f32 GEMM + bias + activation, warp-tiled, 64 KB dynamic shared.
    SimtWarp,
    /// `wgmma_<act>_{f16,bf16}`: Hopper (sm_90a) wgmma + TMA, 128×256 tiles; launched by
    /// `super::hopper`.
    Wgmma,
    /// `wgmma_narrow_<act>_{f16,bf16}`: the same with 128×128 tiles.
    WgmmaNarrow,
}

impl KernelOp {
    fn prefix(self) -> &'static str {
        match self {
            KernelOp::BiasActivation => "bias",
            KernelOp::Fused => "fused",
            KernelOp::FusedSmall => "fused_small",
            KernelOp::SimtWarp => "simt_warp",
            KernelOp::Wgmma => "wgmma",
            KernelOp::WgmmaNarrow => "wgmma_narrow",
        }
    }

    fn module(self) -> &'static str {
        match self {
            KernelOp::BiasActivation => "epilogue",
            KernelOp::Fused | KernelOp::FusedSmall => "fused_dense",
            KernelOp::SimtWarp => "simt_warp",
            KernelOp::Wgmma | KernelOp::WgmmaNarrow => "hopper_dense_sm90a",
        }
    }

    /// Bytes of dynamic shared memory a launch of this family needs (0: static only).
    pub(crate) fn dynamic_shared_bytes(self) -> u32 {
        match self {
            KernelOp::SimtWarp => 64 * 1024,
            KernelOp::Wgmma => shared_bytes(HopperTile::Wide),
            KernelOp::WgmmaNarrow => shared_bytes(HopperTile::Narrow),
            _ => 0,
        }
    }

    /// (block tile edge, threads per block) of the fused kernels.
    fn fused_tile(self) -> (u32, u32) {
        match self {
            KernelOp::FusedSmall => (64, 128),
            _ => (128, 256),
        }
    }
}

/// `<op>_<act>_<dtype>`, e.g. `fused_small_relu_bf16` or `bias_softmax_f32`.
///
/// Errors for a fused softmax, which the ABI does not have (softmax needs whole rows).
pub(crate) fn kernel_name(op: KernelOp, activation: Activation, dtype: DType) -> Result<String> {
    if op != KernelOp::BiasActivation && !activation.is_elementwise() {
        return Err(Error::InvalidArgument(format!(
            "there is no fused {activation} kernel; run a GEMM, then bias_{activation}"
        )));
    }
    Ok(format!(
        "{}_{}_{}",
        op.prefix(),
        activation.name(),
        dtype.name()
    ))
}

/// Every `<op>_<act>_<dtype>` kernel that [`kernel_name`] can form for a dtype its family
/// takes: SimtWarp is f32 only, the Hopper families f16 and bf16 only.
#[cfg(test)]
pub(super) fn launchable() -> Vec<String> {
    use KernelOp::*;
    let mut names = Vec::new();
    for op in [
        BiasActivation,
        Fused,
        FusedSmall,
        SimtWarp,
        Wgmma,
        WgmmaNarrow,
    ] {
        for dtype in DType::ALL {
            let takes = match op {
                SimtWarp => dtype == DType::F32,
                Wgmma | WgmmaNarrow => dtype != DType::F32,
                _ => true,
            };
            if takes {
                let named = Activation::ALL
                    .into_iter()
                    .map(|a| kernel_name(op, a, dtype));
                names.extend(named.filter_map(Result::ok));
            }
        }
    }
    names
}

/// The kernel modules of one GPU, loaded on first use.
pub(crate) struct KernelCache {
    context: Arc<CudaContext>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    /// Modules the driver refused, so that `loads` asks it only once.
    refused: Mutex<HashSet<&'static str>>,
    multiprocessors: u32,
}

impl KernelCache {
    pub(crate) fn new(context: Arc<CudaContext>, multiprocessors: usize) -> Self {
        KernelCache {
            context,
            modules: Mutex::default(),
            functions: Mutex::default(),
            refused: Mutex::default(),
            multiprocessors: u32::try_from(multiprocessors).unwrap_or(u32::MAX).max(1),
        }
    }

    /// The kernel `<op>_<act>_<dtype>`, loading its module if needed. A family that uses
    /// dynamic shared memory ([`KernelOp::dynamic_shared_bytes`]) has its limit raised at
    /// load, once (never while a stream is being captured).
    pub(crate) fn get(
        &self,
        op: KernelOp,
        activation: Activation,
        dtype: DType,
    ) -> Result<CudaFunction> {
        let name = kernel_name(op, activation, dtype)?;
        self.function(op.module(), &name, op.dynamic_shared_bytes() > 0)
    }

    /// The kernel `name` of `module`, loading the module if needed. With `dynamic_shared`,
    /// the kernel is allowed (once, at load) the most dynamic shared memory the GPU grants
    /// a block ([`KernelCache::shared_limit`]); launches then pass what they use.
    pub(crate) fn function(
        &self,
        module: &'static str,
        name: &str,
        dynamic_shared: bool,
    ) -> Result<CudaFunction> {
        if let Some(function) = lock(&self.functions).get(name) {
            return Ok(function.clone());
        }
        let loaded = self.module(module)?;
        let function = loaded
            .load_function(name)
            .during(&format!("looking up kernel `{name}` in module `{module}`"))?;
        if dynamic_shared {
            let limit = i32::try_from(self.shared_limit()?).unwrap_or(i32::MAX);
            function
                .set_attribute(
                    CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    limit,
                )
                .during(&format!("allowing `{name}` {limit} bytes of shared memory"))?;
        }
        lock(&self.functions).insert(name.to_string(), function.clone());
        Ok(function)
    }

    /// The most shared memory one block may use on this GPU (the opt-in limit).
    pub(crate) fn shared_limit(&self) -> Result<usize> {
        let bytes = self
            .context
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            .during("reading the shared memory limit")?;
        Ok(usize::try_from(bytes).unwrap_or(0))
    }

    /// Streaming multiprocessors of this GPU (at least 1).
    pub(crate) fn multiprocessors(&self) -> u32 {
        self.multiprocessors
    }

    /// Whether the module of `op` is in this build and the driver accepts it (an sm_90a
    /// module loads only on a compute capability 9.0 GPU with a driver that takes it).
    pub(crate) fn loads(&self, op: KernelOp) -> bool {
        let name = op.module();
        if lock(&self.refused).contains(name) {
            return false;
        }
        let loaded = self.module(name).is_ok();
        if !loaded {
            lock(&self.refused).insert(name);
        }
        loaded
    }

    fn module(&self, name: &'static str) -> Result<Arc<CudaModule>> {
        let mut modules = lock(&self.modules);
        if let Some(module) = modules.get(name) {
            return Ok(Arc::clone(module));
        }
        // A cubin (the sm_90a modules) needs no JIT; PTX is compiled by the driver.
        // cuModuleLoadData tells the two apart by their first bytes.
        let Some(image) = images::image(name) else {
            return Err(Error::Cuda {
                context: format!("loading kernel module `{name}`"),
                message: format!("this build has no kernels/{name}.cu"),
            });
        };
        let image = Ptx::from_binary(image.load_data()?);
        let module = self
            .context
            .load_module(image)
            .map_err(|err| module_load_error(name, err))?;
        modules.insert(name, Arc::clone(&module));
        Ok(module)
    }
}

/// Explains a PTX load failure; an unsupported PTX version means the driver is too old.
fn module_load_error(name: &str, err: DriverError) -> Error {
    let context = format!("loading kernel module `{name}`");
    if err.0 != CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION {
        return Error::Cuda {
            context,
            message: format!("{err:?}"),
        };
    }
    let driver = match driver_version() {
        Ok((major, minor)) => format!("this driver supports CUDA {major}.{minor}"),
        Err(_) => "the driver's version is unknown".to_string(),
    };
    Error::Cuda {
        context,
        message: format!(
            "the embedded PTX was built by CUDA 13.0 nvcc and needs a driver >= 580 (CUDA 13.0), \
             but {driver}. Update the driver, or rebuild with an nvcc no newer than your driver \
             (see scripts/install-nvcc.sh)"
        ),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The caches stay valid whatever panicked while they were held.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `n` as the kernels' `int`, or an error naming what overflowed.
pub(crate) fn as_int(n: usize, what: &str) -> Result<i32> {
    i32::try_from(n).map_err(|_| {
        Error::InvalidArgument(format!(
            "{what} = {n} exceeds the kernels' limit of 2^31 - 1"
        ))
    })
}

pub(crate) fn check_len(what: &str, have: usize, need: usize) -> Result<()> {
    if have < need {
        return Err(Error::InvalidArgument(format!(
            "{what} holds {have} elements but the launch needs {need}"
        )));
    }
    Ok(())
}

/// The scalar arguments of a dense-layer launch: m, n and k as the kernels' `int`s, and g's
/// `act_param`.
pub(crate) struct DenseArgs {
    pub(crate) m: i32,
    pub(crate) n: i32,
    pub(crate) k: i32,
    pub(crate) act_param: f32,
}

impl DenseArgs {
    /// Pushes ABI.md's dense-layer arguments, `(const T* a, const T* w, const T* bias,
    /// T* out, int m, int n, int k, float act_param)`, in that order: what the fused,
    /// simt_warp, narrow and narrow_mma kernels take.
    pub(crate) fn push<'a, T: GpuElement>(
        &'a self,
        launch: &mut LaunchArgs<'a>,
        ops: &'a mut DenseOperands<'_, '_, T>,
    ) {
        launch
            .arg(ops.a)
            .arg(ops.w)
            .arg(ops.bias)
            .arg(&mut *ops.out)
            .arg(&self.m)
            .arg(&self.n)
            .arg(&self.k)
            .arg(&self.act_param);
    }
}

/// The launch arguments of a dense layer, once m, n, k and their products fit an `int` and
/// every buffer holds what the shape needs; `None` when there is nothing to compute (no rows
/// or no units). Every dense-layer launcher starts with it.
pub(crate) fn launch_dims<T>(ops: &DenseOperands<'_, '_, T>) -> Result<Option<DenseArgs>> {
    let (m, n, k) = (ops.m, ops.n, ops.k);
    let args = DenseArgs {
        m: as_int(m, "m")?,
        n: as_int(n, "n")?,
        k: as_int(k, "k")?,
        act_param: ops.activation.parameter(),
    };
    for (what, product) in [
        ("m x k", m.checked_mul(k)),
        ("k x n", k.checked_mul(n)),
        ("m x n", m.checked_mul(n)),
    ] {
        as_int(product.unwrap_or(usize::MAX), what)?;
    }
    check_len("the input", ops.a.len(), m * k)?;
    check_len("the weights", ops.w.len(), k * n)?;
    check_len("the bias", ops.bias.len(), n)?;
    check_len("the output", ops.out.len(), m * n)?;
    Ok((m != 0 && n != 0).then_some(args))
}

/// How many blocks a persistent kernel (blocks stride over the work) gets: as many as fit
/// on every SM at once, at most `work_blocks` (what the work would fill), at least 1.
pub(crate) fn persistent_blocks(
    kernels: &KernelCache,
    stream: &CudaStream,
    function: &CudaFunction,
    threads: u32,
    shared_bytes: usize,
    work_blocks: usize,
) -> Result<u32> {
    // The occupancy query is a driver call on the function: its context must be current.
    stream
        .context()
        .bind_to_thread()
        .during("binding the CUDA context")?;
    let resident = function
        .occupancy_max_active_blocks_per_multiprocessor(threads, shared_bytes, None)
        .during("asking a kernel's occupancy")?
        .max(1);
    Ok(u32::try_from(work_blocks)
        .unwrap_or(u32::MAX)
        .min(resident.saturating_mul(kernels.multiprocessors()))
        .max(1))
}

/// `z[r][c] = g(z[r][c] + bias[c])` in place over a `rows × cols` row-major matrix;
/// `bias == None` adds nothing (passes NULL). Softmax works row by row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn bias_activation<T: GpuElement>(
    kernels: &KernelCache,
    stream: &CudaStream,
    activation: Activation,
    z: &mut CudaViewMut<'_, T>,
    bias: Option<&CudaView<'_, T>>,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let elements = rows.saturating_mul(cols);
    let (rows_i, cols_i) = (as_int(rows, "rows")?, as_int(cols, "columns")?);
    as_int(elements, "rows x columns")?;
    check_len("the output", z.len(), elements)?;
    if let Some(bias) = bias {
        check_len("the bias", bias.len(), cols)?;
    }
    if elements == 0 {
        return Ok(());
    }
    let function = kernels.get(KernelOp::BiasActivation, activation, T::DTYPE)?;
    let grid = if activation.is_elementwise() {
        // ABI.md: min(ceil(rows*cols / (256 * (16 / sizeof T))), 32 * SMs), at least 1.
        let per_block = 256 * (16 / T::DTYPE.size_in_bytes());
        let blocks = elements.div_ceil(per_block);
        u32::try_from(blocks)
            .unwrap_or(u32::MAX)
            .min(32 * kernels.multiprocessors)
            .max(1)
    } else {
        // ABI.md: one warp per row, 8 rows per 256-thread block.
        u32::try_from(rows.div_ceil(8)).map_err(|_| {
            Error::InvalidArgument(format!("{rows} rows are too many for one launch"))
        })?
    };
    let config = LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let null: u64 = 0;
    let act_param = activation.parameter();
    let mut launch = stream.launch_builder(&function);
    launch.arg(z);
    match bias {
        Some(bias) => launch.arg(bias),
        None => launch.arg(&null),
    };
    launch.arg(&rows_i).arg(&cols_i).arg(&act_param);
    // SAFETY:
    // 1. The arguments match ABI.md's `bias_<act>_<dtype>(T* z, const T* bias, int rows,
    //    int cols, float act_param)` in order and type: two device pointers of `T` (the
    //    kernel was looked up by `T::DTYPE`, so its `T` is ours), or NULL for the bias, which
    //    the ABI allows, then two `i32`s and an `f32`.
    // 2. `z` holds at least rows × cols elements and `bias` (when given) at least cols,
    //    checked above; rows × cols fits an `int`. The kernel touches nothing else.
    // 3. The buffers outlive the launch in stream order: they are borrowed here, cudarc's
    //    event tracking orders this launch after earlier writes on other streams, and the
    //    caller synchronises the stream before the buffers are freed or reused.
    // 4. The block size and grid are those ABI.md prescribes; no dynamic shared memory.
    unsafe { launch.launch(config) }.during(&format!("launching bias_{activation}"))?;
    Ok(())
}

/// Launches `fused_<act>` or `fused_small_<act>` (by `op`) on `ops`; `ops.activation`
/// must be element-wise (softmax is not fused).
pub(crate) fn fused_dense<T: GpuElement>(
    kernels: &KernelCache,
    stream: &CudaStream,
    op: KernelOp,
    mut ops: DenseOperands<'_, '_, T>,
) -> Result<()> {
    if matches!(
        op,
        KernelOp::BiasActivation | KernelOp::Wgmma | KernelOp::WgmmaNarrow
    ) {
        return Err(Error::InvalidArgument(format!(
            "{} is not launched with fused_dense's arguments",
            op.prefix()
        )));
    }
    let Some(args) = launch_dims(&ops)? else {
        return Ok(()); // nothing to compute
    };
    let (m, n, activation) = (ops.m, ops.n, ops.activation);
    let function = kernels.get(op, activation, T::DTYPE)?;
    let (tile, threads) = op.fused_tile();
    let grid_x = u32::try_from(n.div_ceil(tile as usize)).unwrap_or(u32::MAX);
    let grid_y = u32::try_from(m.div_ceil(tile as usize)).unwrap_or(u32::MAX);
    if grid_y > 65_535 {
        return Err(Error::InvalidArgument(format!(
            "{m} rows need {grid_y} row tiles, more than one launch allows (65535); lower max_batch"
        )));
    }
    let config = LaunchConfig {
        grid_dim: (grid_x, grid_y, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: op.dynamic_shared_bytes(),
    };
    let mut launch = stream.launch_builder(&function);
    args.push(&mut launch, &mut ops);
    // SAFETY:
    // 1. The arguments match ABI.md's `fused_*_<act>_<dtype>(const T* a, const T* w,
    //    const T* bias, T* out, int m, int n, int k, float act_param)` in order and type;
    //    the kernel was looked up by `T::DTYPE`, so its `T` is ours. The bias is never NULL.
    // 2. `a` ≥ m·k, `w` ≥ k·n, `bias` ≥ n and `out` ≥ m·n elements, checked above, and each
    //    product fits an `int`; the ABI's kernels are bounds-checked for any shape, so they
    //    touch nothing outside those ranges. `out` is a `&mut` view, so it aliases no input.
    // 3. The views borrow their buffers for this call; cudarc's event tracking orders the
    //    launch after earlier writes, and the caller synchronises before freeing or reuse.
    // 4. Grid and block are ABI.md's for this tile size (grid.y ≤ 65535 checked above);
    //    the dynamic shared memory is what the family declares (0 for the static ones), and
    //    `get` raised the function's limit to the GPU's opt-in maximum (a launch above it
    //    fails with an error, it does not run).
    unsafe { launch.launch(config) }.during(&format!("launching {}_{activation}", op.prefix()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_abi() {
        let name = |op, act, dtype| kernel_name(op, act, dtype).unwrap();
        assert_eq!(
            name(KernelOp::BiasActivation, Activation::Sigmoid, DType::F32),
            "bias_sigmoid_f32"
        );
        assert_eq!(
            name(KernelOp::BiasActivation, Activation::Softmax, DType::BF16),
            "bias_softmax_bf16"
        );
        assert_eq!(
            name(KernelOp::Fused, Activation::Relu, DType::F16),
            "fused_relu_f16"
        );
        assert_eq!(
            name(KernelOp::FusedSmall, Activation::Linear, DType::F32),
            "fused_small_linear_f32"
        );
        assert!(kernel_name(KernelOp::Fused, Activation::Softmax, DType::F32).is_err());
        // One kernel serves every slope: the slope is its `act_param` argument.
        assert_eq!(
            name(
                KernelOp::Fused,
                Activation::LeakyRelu { slope: 0.2 },
                DType::BF16
            ),
            "fused_leaky_relu_bf16"
        );
    }

    #[test]
    fn the_f32_and_hopper_kernels_are_in_their_ptx() {
        for activation in Activation::ALL.into_iter().filter(|a| a.is_elementwise()) {
            for (op, dtypes) in [
                (KernelOp::SimtWarp, &[DType::F32][..]),
                (KernelOp::Wgmma, &[DType::F16, DType::BF16][..]),
                (KernelOp::WgmmaNarrow, &[DType::F16, DType::BF16][..]),
            ] {
                for &dtype in dtypes {
                    let name = kernel_name(op, activation, dtype).unwrap();
                    let found = images::image(op.module()).is_some_and(|m| m.defines(&name));
                    assert!(found, "module {} lacks {name}", op.module());
                }
            }
        }
        assert_eq!(
            images::image(KernelOp::Wgmma.module()).map(|m| m.format()),
            Some(images::ImageFormat::Cubin),
            "the Hopper module is embedded as an sm_90a cubin"
        );
    }

    #[test]
    fn every_abi_kernel_is_in_the_ptx() {
        for dtype in DType::ALL {
            for activation in Activation::ALL {
                for op in [
                    KernelOp::BiasActivation,
                    KernelOp::Fused,
                    KernelOp::FusedSmall,
                ] {
                    let Ok(name) = kernel_name(op, activation, dtype) else {
                        continue;
                    };
                    let params = images::entry_params(op.module(), &name);
                    let params = params.unwrap_or_else(|| panic!("no {name} in the PTX"));
                    // bias_*: z, bias, rows, cols, act_param; fused_*: a, w, bias, out, m,
                    // n, k, act_param (ABI.md): what the launchers below push.
                    let count = if op == KernelOp::BiasActivation { 5 } else { 8 };
                    assert_eq!(params.len(), count, "{name}: {params:?}");
                    assert_eq!(params.last().unwrap(), ".f32", "{name} ends in act_param");
                }
            }
        }
        for activation in Activation::ALL.into_iter().filter(|a| a.is_elementwise()) {
            let name = kernel_name(KernelOp::SimtWarp, activation, DType::F32).unwrap();
            let params = images::entry_params(KernelOp::SimtWarp.module(), &name).unwrap();
            assert_eq!(params.len(), 8, "{name}: {params:?}");
            assert_eq!(params.last().unwrap(), ".f32", "{name} ends in act_param");
        }
    }
}
