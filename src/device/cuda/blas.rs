//! cuBLAS and cuBLASLt GEMMs on row-major matrices.
//!
//! cuBLAS is column-major; a row-major m×n matrix is the same memory as its n×m transpose
//! in column-major. So `Z = A·W` (row-major, A m×k, W k×n) is computed as the column-major
//! `Zᵀ = Wᵀ·Aᵀ`: pass W first (n×k, ld n), then A (k×m, ld k), into Z (n×m, ld n). No
//! transposes, no copies (candle's `gemm_config` does the same).
//!
//! The libraries are loaded on first use; each lane owns its handles (a cuBLAS handle is
//! bound to one stream), so concurrent callers never share one. cudarc's safe cuBLASLt
//! wrapper always computes f32 in TF32 and re-plans every call, so this file drives the
//! thin `result` layer itself: TF32 only when asked, descriptors and the chosen algorithm
//! cached per shape.

use std::collections::HashMap;
use std::ffi::c_void;
use std::mem::size_of;
use std::sync::{Arc, OnceLock};

use cudarc::cublas::result as cublas;
use cudarc::cublas::sys as cublas_sys;
use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys as lt_sys;
use cudarc::driver::sys::{CUdevice_attribute, CUdeviceptr};
use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut};

use super::error::{CudaResultExt, DropErrors};
use super::GpuElement;
use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Errors unless `libcublas` (`cublas`) or `libcublasLt` (`lt`) can be loaded.
fn require_library(lt_library: bool) -> Result<()> {
    static CUBLAS: OnceLock<bool> = OnceLock::new();
    static CUBLASLT: OnceLock<bool> = OnceLock::new();
    // SAFETY: each `is_culib_present` only tries to `dlopen` the library under its usual
    // names (libcublas.so.13, ...) and closes it again; cuBLAS's initialisers are sound.
    let (present, name) = if lt_library {
        (
            *CUBLASLT.get_or_init(|| unsafe { lt_sys::is_culib_present() }),
            "libcublasLt.so.13",
        )
    } else {
        (
            *CUBLAS.get_or_init(|| unsafe { cublas_sys::is_culib_present() }),
            "libcublas.so.13",
        )
    };
    if present {
        Ok(())
    } else {
        Err(Error::CudaUnavailable(format!(
            "{name} (cuBLAS 13) was not found; put the folder holding it on LD_LIBRARY_PATH, \
             or use the fused strategy, which needs no cuBLAS"
        )))
    }
}

/// The operands of `z = a · w`, row-major: `a` m×k, `w` k×n, `z` m×n.
pub(crate) struct GemmOperands<'a, 'b, T> {
    pub(crate) a: &'b CudaView<'a, T>,
    pub(crate) w: &'b CudaView<'a, T>,
    pub(crate) z: &'b mut CudaViewMut<'a, T>,
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
}

/// The three dimensions as cuBLAS's `int`s, after checking every buffer is large enough.
fn checked_dims<T>(ops: &GemmOperands<'_, '_, T>) -> Result<(i32, i32, i32)> {
    let (m, n, k) = (ops.m, ops.n, ops.k);
    for (what, have, need) in [
        ("the input", ops.a.len(), m.checked_mul(k)),
        ("the weights", ops.w.len(), k.checked_mul(n)),
        ("the output", ops.z.len(), m.checked_mul(n)),
    ] {
        let need = need.ok_or_else(|| Error::InvalidArgument(format!("{what} is too large")))?;
        if have < need {
            return Err(Error::InvalidArgument(format!(
                "{what} holds {have} elements but the GEMM needs {need}"
            )));
        }
    }
    let int = |x: usize| {
        i32::try_from(x)
            .map_err(|_| Error::InvalidArgument(format!("GEMM dimension {x} exceeds 2^31 - 1")))
    };
    Ok((int(m)?, int(n)?, int(k)?))
}

fn blas_type(dtype: DType) -> cublas_sys::cudaDataType {
    match dtype {
        DType::F32 => cublas_sys::cudaDataType::CUDA_R_32F,
        DType::F16 => cublas_sys::cudaDataType::CUDA_R_16F,
        DType::BF16 => cublas_sys::cudaDataType::CUDA_R_16BF,
    }
}

fn lt_type(dtype: DType) -> lt_sys::cudaDataType {
    match dtype {
        DType::F32 => lt_sys::cudaDataType::CUDA_R_32F,
        DType::F16 => lt_sys::cudaDataType::CUDA_R_16F,
        DType::BF16 => lt_sys::cudaDataType::CUDA_R_16BF,
    }
}

/// f32 accumulation always; TF32 tensor cores for f32 inputs only when allowed.
fn uses_tf32(dtype: DType, allow_tf32: bool) -> bool {
    dtype == DType::F32 && allow_tf32
}

/// A cuBLAS handle bound to one stream, with a workspace of its own.
///
/// The explicit workspace makes the handle safe to use under CUDA Graph capture: without
/// one, cuBLAS may allocate from its default pool mid-capture. Fields drop after `Drop`
/// runs, so the handle is destroyed before its workspace is freed.
struct BlasHandle {
    handle: cublas_sys::cublasHandle_t,
    /// Kept alive for the handle; cuBLAS holds its pointer.
    _workspace: CudaSlice<u8>,
    drop_errors: Arc<DropErrors>,
}

// SAFETY: a cuBLAS handle may be used from any thread as long as no two threads use it at
// once; a `BlasHandle` lives in a `Lane`, which one caller owns at a time.
unsafe impl Send for BlasHandle {}

impl Drop for BlasHandle {
    fn drop(&mut self) {
        // SAFETY: `handle` came from `cublasCreate` and is destroyed exactly once, here.
        let result = unsafe { cublas::destroy_handle(self.handle) };
        self.drop_errors
            .record("destroying a cuBLAS handle", result);
    }
}

/// A cuBLASLt handle and its workspace.
struct LtHandle {
    handle: lt_sys::cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    drop_errors: Arc<DropErrors>,
}

// SAFETY: as for `BlasHandle`: one owner at a time, through its lane.
unsafe impl Send for LtHandle {}

impl Drop for LtHandle {
    fn drop(&mut self) {
        // SAFETY: `handle` came from `cublasLtCreate` and is destroyed exactly once, here.
        let result = unsafe { lt::destroy_handle(self.handle) };
        self.drop_errors
            .record("destroying a cuBLASLt handle", result);
    }
}

/// The descriptors and chosen algorithm of one cuBLASLt GEMM shape.
struct LtMatmul {
    desc: lt_sys::cublasLtMatmulDesc_t,
    /// W (n×k), A (k×m), Z (n×m), column-major.
    layouts: [lt_sys::cublasLtMatrixLayout_t; 3],
    algo: lt_sys::cublasLtMatmulAlgo_t,
    drop_errors: Arc<DropErrors>,
}

// SAFETY: descriptors are plain host memory owned by this value; one owner at a time.
unsafe impl Send for LtMatmul {}

impl Drop for LtMatmul {
    fn drop(&mut self) {
        for layout in self.layouts {
            if !layout.is_null() {
                // SAFETY: each non-null layout came from `cublasLtMatrixLayoutCreate` and is
                // destroyed once.
                let result = unsafe { lt::destroy_matrix_layout(layout) };
                self.drop_errors
                    .record("destroying a cuBLASLt layout", result);
            }
        }
        if !self.desc.is_null() {
            // SAFETY: `desc` came from `cublasLtMatmulDescCreate` and is destroyed once.
            let result = unsafe { lt::destroy_matmul_desc(self.desc) };
            self.drop_errors
                .record("destroying a cuBLASLt descriptor", result);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct LtKey {
    m: usize,
    n: usize,
    k: usize,
    dtype: DType,
    tf32: bool,
    epilogue: LtEpilogue,
}

/// A cuBLASLt epilogue: what the GEMM applies to `A·W` before storing it.
pub(crate) type LtEpilogue = lt_sys::cublasLtEpilogue_t;

/// The bias-only epilogue (the activation, if any, runs as a separate kernel).
pub(crate) const LT_BIAS: LtEpilogue = lt_sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS;

/// The cuBLASLt epilogue that applies the bias and `activation` inside the GEMM, so that the
/// whole layer is one call; `None` when cuBLASLt has none for it.
///
/// cuBLASLt's GELU is the tanh approximation, so it serves `gelu_tanh` only; the exact
/// (erf) `gelu`, sigmoid, tanh, silu, leaky ReLU and softmax have no epilogue.
pub(crate) fn fused_epilogue(activation: Activation) -> Option<LtEpilogue> {
    match activation {
        Activation::Linear => Some(LT_BIAS),
        Activation::Relu => Some(lt_sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_RELU_BIAS),
        Activation::GeluTanh => Some(lt_sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_GELU_BIAS),
        _ => None,
    }
}

/// The cuBLAS and cuBLASLt state of one lane, created on first use.
pub(crate) struct LaneBlas {
    blas: Option<BlasHandle>,
    lt: Option<LtHandle>,
    lt_plans: HashMap<LtKey, LtMatmul>,
    drop_errors: Arc<DropErrors>,
}

impl LaneBlas {
    pub(crate) fn new(drop_errors: Arc<DropErrors>) -> Self {
        LaneBlas {
            blas: None,
            lt: None,
            lt_plans: HashMap::new(),
            drop_errors,
        }
    }

    fn blas(&mut self, stream: &Arc<CudaStream>) -> Result<cublas_sys::cublasHandle_t> {
        if let Some(blas) = &self.blas {
            return Ok(blas.handle);
        }
        require_library(false)?;
        stream
            .context()
            .bind_to_thread()
            .during("binding the CUDA context")?;
        let bytes = workspace_bytes(stream)?;
        let mut workspace = stream
            .alloc_zeros::<u8>(bytes)
            .during("allocating the cuBLAS workspace")?;
        let handle = cublas::create_handle().during("creating a cuBLAS handle")?;
        let work = {
            let (work, _record_work) = workspace.device_ptr_mut(stream);
            work as *mut c_void
        };
        let blas = BlasHandle {
            handle,
            _workspace: workspace,
            drop_errors: Arc::clone(&self.drop_errors),
        };
        // SAFETY: `handle` is live and `stream` belongs to the current context; the stream
        // outlives the handle: both live in one `Lane`, whose handles drop before its stream.
        unsafe { cublas::set_stream(handle, stream.cu_stream() as _) }
            .during("binding cuBLAS to a stream")?;
        // SAFETY: set after `set_stream`, which resets the workspace to the default pool.
        // `work` points at `bytes` bytes owned by `blas._workspace`, which lives exactly as
        // long as the handle (it drops after the handle is destroyed), and is used only on
        // this lane's stream, which serialises every GEMM that touches it.
        unsafe { cublas_sys::cublasSetWorkspace_v2(handle, work, bytes) }
            .result()
            .during("giving cuBLAS its workspace")?;
        Ok(self.blas.insert(blas).handle)
    }

    fn lt(&mut self, stream: &Arc<CudaStream>) -> Result<&mut LtHandle> {
        if self.lt.is_none() {
            require_library(true)?;
            stream
                .context()
                .bind_to_thread()
                .during("binding the CUDA context")?;
            let bytes = workspace_bytes(stream)?;
            let workspace = stream
                .alloc_zeros::<u8>(bytes)
                .during("allocating the cuBLASLt workspace")?;
            let handle = lt::create_handle().during("creating a cuBLASLt handle")?;
            self.lt = Some(LtHandle {
                handle,
                workspace,
                drop_errors: Arc::clone(&self.drop_errors),
            });
        }
        match &mut self.lt {
            Some(handle) => Ok(handle),
            None => unreachable!("created above"),
        }
    }
}

/// NVIDIA's recommended cuBLAS/cuBLASLt workspace: 32 MiB on Hopper and newer, 4 MiB before.
fn workspace_bytes(stream: &CudaStream) -> Result<usize> {
    let major = stream
        .context()
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        .during("reading the compute capability")?;
    Ok(workspace_bytes_for((major, 0)))
}

/// The workspace of one cuBLAS or cuBLASLt handle on a GPU of this compute capability.
pub(crate) fn workspace_bytes_for(compute_capability: (i32, i32)) -> usize {
    if compute_capability.0 >= 9 {
        32 << 20
    } else {
        4 << 20
    }
}

/// Queues `z = a · w` on `stream` with cuBLAS (`cublasGemmEx`, f32 accumulation).
pub(crate) fn gemm<T: GpuElement>(
    lane: &mut LaneBlas,
    stream: &Arc<CudaStream>,
    ops: GemmOperands<'_, '_, T>,
    allow_tf32: bool,
) -> Result<()> {
    let (m, n, k) = checked_dims(&ops)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    let handle = lane.blas(stream)?;
    stream
        .context()
        .bind_to_thread()
        .during("binding the CUDA context")?;
    let data_type = blas_type(T::DTYPE);
    let compute = if uses_tf32(T::DTYPE, allow_tf32) {
        cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
    } else {
        cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F
    };
    let (alpha, beta) = (1.0_f32, 0.0_f32);
    let (w, _record_w) = ops.w.device_ptr(stream);
    let (a, _record_a) = ops.a.device_ptr(stream);
    let (z, _record_z) = ops.z.device_ptr_mut(stream);
    let op_n = cublas_sys::cublasOperation_t::CUBLAS_OP_N;
    // SAFETY:
    // 1. Column-major view (module docs): C (n×m, ldc n) = A' (n×k, lda n) · B' (k×m, ldb k)
    //    with A' = W and B' = A. `checked_dims` proved W ≥ k·n, A ≥ m·k and Z ≥ m·n
    //    elements, exactly what those shapes and leading dimensions address.
    // 2. All three matrices are of `T`, which `data_type` names; alpha/beta are f32, the
    //    scale type of CUBLAS_COMPUTE_32F(_FAST_TF32); they live on this stack frame and
    //    the host pointer mode (the default) reads them before the call returns.
    // 3. `handle` is bound to `stream`, whose context is current; the device pointers come
    //    from views borrowed for this call, whose record guards order the GEMM against
    //    other streams, and the caller synchronises before the buffers are freed or reused.
    unsafe {
        cublas::gemm_ex(
            handle,
            op_n,
            op_n,
            n,
            m,
            k,
            (&alpha as *const f32).cast::<c_void>(),
            w as *const c_void,
            data_type,
            n,
            a as *const c_void,
            data_type,
            k,
            (&beta as *const f32).cast::<c_void>(),
            z as *mut c_void,
            data_type,
            n,
            compute,
            cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .during("running a cuBLAS GEMM")
}

/// Queues `z = epilogue(a · w + bias)` on `stream` with cuBLASLt: [`LT_BIAS`] adds the bias
/// only; [`fused_epilogue`] gives those that also apply an activation.
pub(crate) fn gemm_bias_lt<T: GpuElement>(
    lane: &mut LaneBlas,
    stream: &Arc<CudaStream>,
    ops: GemmOperands<'_, '_, T>,
    bias: &CudaView<'_, T>,
    allow_tf32: bool,
    epilogue: LtEpilogue,
) -> Result<()> {
    let (m, n, _) = checked_dims(&ops)?;
    if bias.len() < ops.n {
        return Err(Error::InvalidArgument(format!(
            "the bias holds {} elements but the layer has {} units",
            bias.len(),
            ops.n
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let key = LtKey {
        m: ops.m,
        n: ops.n,
        k: ops.k,
        dtype: T::DTYPE,
        tf32: uses_tf32(T::DTYPE, allow_tf32),
        epilogue,
    };
    let drop_errors = Arc::clone(&lane.drop_errors);
    let handle = lane.lt(stream)?.handle;
    if !lane.lt_plans.contains_key(&key) {
        let workspace_bytes = lane.lt(stream)?.workspace.len();
        let plan = plan_lt(handle, key, workspace_bytes, drop_errors)?;
        lane.lt_plans.insert(key, plan);
    }
    let plan = match lane.lt_plans.get(&key) {
        Some(plan) => plan,
        None => unreachable!("inserted above"),
    };
    stream
        .context()
        .bind_to_thread()
        .during("binding the CUDA context")?;
    let (bias_ptr, _record_bias) = bias.device_ptr(stream);
    // SAFETY: `desc` is live; BIAS_POINTER takes a device pointer passed by address with
    // its size, and cuBLASLt copies it into the descriptor before returning.
    unsafe {
        lt::set_matmul_desc_attribute(
            plan.desc,
            lt_sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
            (&bias_ptr as *const CUdeviceptr).cast::<c_void>(),
            size_of::<CUdeviceptr>(),
        )
    }
    .during("setting the cuBLASLt bias")?;
    let (alpha, beta) = (1.0_f32, 0.0_f32);
    let workspace = match &lane.lt {
        Some(lt_handle) => &lt_handle.workspace,
        None => unreachable!("created above"),
    };
    let (w, _record_w) = ops.w.device_ptr(stream);
    let (a, _record_a) = ops.a.device_ptr(stream);
    let (z, _record_z) = ops.z.device_ptr_mut(stream);
    let (work, _record_work) = workspace.device_ptr(stream);
    // SAFETY:
    // 1. The layouts were built for exactly this (m, n, k, dtype): W n×k ld n, A k×m ld k,
    //    Z n×m ld n, column-major (module docs), and `checked_dims` proved each buffer
    //    holds that many elements; the bias (≥ n elements, checked) is one value per row
    //    of the column-major D, i.e. per unit. C = D = Z with beta = 0.
    // 2. Every operand starts at the beginning of its own allocation (pooled or resident
    //    buffers, viewed from offset 0), so it meets the 256-byte alignment the heuristic
    //    assumes by default.
    // 3. The workspace belongs to this lane, is used only on its stream, and its size is
    //    the one the algorithm was chosen for; alpha/beta are f32 (the scale type) on this
    //    stack frame, read before the call returns.
    // 4. Device pointers come from views borrowed for this call; the record guards order
    //    the matmul against other streams, and the caller synchronises before reuse.
    unsafe {
        lt::matmul(
            handle,
            plan.desc,
            (&alpha as *const f32).cast::<c_void>(),
            (&beta as *const f32).cast::<c_void>(),
            w as *const c_void,
            plan.layouts[0],
            a as *const c_void,
            plan.layouts[1],
            z as *const c_void,
            plan.layouts[2],
            z as *mut c_void,
            plan.layouts[2],
            &plan.algo,
            work as *mut c_void,
            workspace.len(),
            stream.cu_stream() as _,
        )
    }
    .during("running a cuBLASLt GEMM")
}

/// Builds the descriptors for `key` and asks the heuristic for the best algorithm.
fn plan_lt(
    handle: lt_sys::cublasLtHandle_t,
    key: LtKey,
    workspace_bytes: usize,
    drop_errors: Arc<DropErrors>,
) -> Result<LtMatmul> {
    let data_type = lt_type(key.dtype);
    let compute = if key.tf32 {
        lt_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
    } else {
        lt_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F
    };
    let (m, n, k) = (key.m as u64, key.n as u64, key.k as u64);
    let mut plan = LtMatmul {
        desc: std::ptr::null_mut(),
        layouts: [std::ptr::null_mut(); 3],
        algo: lt_sys::cublasLtMatmulAlgo_t { data: [0; 8] },
        drop_errors,
    };
    // Filled one by one so that `plan`'s Drop frees whatever was created if a step fails.
    plan.desc = lt::create_matmul_desc(compute, lt_sys::cudaDataType::CUDA_R_32F)
        .during("creating a cuBLASLt descriptor")?;
    for (slot, (rows, cols, ld)) in [(n, k, n), (k, m, k), (n, m, n)].into_iter().enumerate() {
        plan.layouts[slot] = lt::create_matrix_layout(data_type, rows, cols, ld as i64)
            .during("creating a cuBLASLt layout")?;
    }
    let epilogue = key.epilogue;
    // SAFETY: `desc` is live; EPILOGUE takes a `cublasLtEpilogue_t` by address with its size.
    unsafe {
        lt::set_matmul_desc_attribute(
            plan.desc,
            lt_sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_EPILOGUE,
            (&epilogue as *const lt_sys::cublasLtEpilogue_t).cast::<c_void>(),
            size_of::<lt_sys::cublasLtEpilogue_t>(),
        )
    }
    .during("setting the cuBLASLt epilogue")?;
    let preference = Preference::new(workspace_bytes)?;
    // SAFETY: every descriptor is live and built above for this shape; the call writes
    // one heuristic result, which cudarc checks (`algo_count > 0`, state OK).
    let heuristic = unsafe {
        lt::get_matmul_algo_heuristic(
            handle,
            plan.desc,
            plan.layouts[0],
            plan.layouts[1],
            plan.layouts[2],
            plan.layouts[2],
            preference.0,
        )
    }
    .during("choosing a cuBLASLt algorithm")?;
    plan.algo = heuristic.algo;
    Ok(plan)
}

/// A cuBLASLt preference descriptor limiting the workspace.
struct Preference(lt_sys::cublasLtMatmulPreference_t);

impl Preference {
    fn new(workspace_bytes: usize) -> Result<Self> {
        let preference =
            Preference(lt::create_matmul_pref().during("creating a cuBLASLt preference")?);
        // SAFETY: the preference is live; MAX_WORKSPACE_BYTES takes a u64 by address.
        let bytes = workspace_bytes as u64;
        unsafe {
            lt::set_matmul_pref_attribute(
                preference.0,
                lt_sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&bytes as *const u64).cast::<c_void>(),
                size_of::<u64>(),
            )
        }
        .during("limiting the cuBLASLt workspace")?;
        Ok(preference)
    }
}

impl Drop for Preference {
    fn drop(&mut self) {
        // SAFETY: created by `cublasLtMatmulPreferenceCreate`, destroyed once. Its error is
        // dropped: the preference is only host memory and nothing else depends on it.
        let _ = unsafe { lt::destroy_matmul_pref(self.0) };
    }
}
