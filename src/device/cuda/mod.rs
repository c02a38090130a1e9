//! The CUDA backend (feature `cuda`): cuBLAS, cuBLASLt and vecprop's own kernels.
//!
//! - `context`: the context per GPU and its properties; [`describe_devices`].
//! - `stream`: a lane (stream + cuBLAS handles) per concurrent caller; event timing.
//! - `pool` and `pinned`: caching pools of device buffers and pinned host buffers.
//! - `images`: the compiled kernel modules, embedded zstd-compressed, decoded on first use;
//!   `kernels`: lazy module loading and checked launches of the kernels in `kernels/ABI.md`.
//!   `hopper`: the Hopper-only `wgmma` kernels (TMA tensor maps, launch, shape fallback).
//! - `blas`: row-major GEMMs on cuBLAS and cuBLASLt.
//! - `dense`: one dense layer by each strategy; `plan`: a whole network, whose passes
//!   are in `pass`, kernel choice (and tuning caches) in `tune`, CUDA Graph capture
//!   and replay in `graph_exec`, and the overlapping stream pipeline in `streaming`.
//! - `narrow`, `splitk`, `network_kernel`: vecprop's own kernels where cuBLAS is weakest
//!   (layers of up to 256 units, batches of up to 64 rows, whole small networks in one
//!   launch); `network_plan`: whether a plan runs the whole-network kernel.
//!
//! The benchmark engine that times these pieces lives above them, in `crate::bench`.

pub(crate) mod blas;
mod context;
pub(crate) mod dense;
pub(crate) mod error;
mod hopper;
mod hopper_tile;
mod images;
mod kernels;
mod narrow;
mod network_kernel;
pub(crate) mod operands;
mod pinned;
mod plan;
mod pool;
mod splitk;
pub(crate) mod stream;
mod workspace;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use cudarc::driver::{CudaContext, DeviceRepr, ValidAsZeroBits};

pub use context::{describe_devices, gpus, DeviceInfo, MIN_COMPUTE_CAPABILITY};
pub use images::{decode_kernel_image, kernel_images, KernelImageInfo};
pub use plan::CudaPlan;
pub use pool::PoolStats;

use crate::device::staging::Staged;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::execution::tuning::TuningCache;
use error::{CudaResultExt, DropErrors};
use kernels::KernelCache;
use pinned::PinnedPool;
use pool::{BufferPool, Counters};
use stream::LanePool;

/// An element type the GPU code is generic over: f32, f16 or bf16.
pub(crate) trait GpuElement: Staged + DeviceRepr + ValidAsZeroBits + Send + Sync {}

impl<T: Staged + DeviceRepr + ValidAsZeroBits + Send + Sync> GpuElement for T {}

/// One NVIDIA GPU. Cheap to clone (the clones share everything), `Send` and `Sync`.
///
/// It owns the GPU's context, its kernel modules (loaded on first use), a pool of streams,
/// and caching pools of device and pinned host memory, all shared by every plan on it.
#[derive(Clone)]
pub struct CudaDevice {
    pub(crate) inner: Arc<DeviceInner>,
}

/// What a [`CudaDevice`] shares. Fields drop in order: users of the context before it.
pub(crate) struct DeviceInner {
    pub(crate) lanes: Arc<LanePool>,
    pub(crate) buffers: Arc<BufferPool>,
    pub(crate) pinned: Arc<PinnedPool>,
    pub(crate) kernels: KernelCache,
    pub(crate) info: DeviceInfo,
    /// When set, every forward pass first fills its GPU buffers with NaN (a test aid).
    pub(crate) poison: AtomicBool,
    /// When non-zero, the Fused strategy always uses this tile edge (128 or 64).
    pub(crate) forced_fused_tile: AtomicUsize,
    /// When set, the Fused strategy runs this kernel for every layer (a test aid).
    pub(crate) forced_fused_kernel: Mutex<Option<dense::LayerKernel>>,
    /// What `Strategy::Auto` measured on this GPU, so that a second compile does no timing.
    pub(crate) tuning: TuningCache,
    /// Layers `Strategy::Auto` has timed on this GPU (cache hits excluded).
    pub(crate) tuning_runs: AtomicU64,
    /// Read-held while vecprop queues work or does first-use work (compiles, passes),
    /// write-held while a CUDA Graph is captured: see [`DeviceInner::capturing`].
    capture_gate: RwLock<()>,
    counters: Arc<Counters>,
    drop_errors: Arc<DropErrors>,
    context: Arc<CudaContext>,
}

impl CudaDevice {
    /// GPU number `ordinal`. Errors (never panics) when the driver library is missing, there
    /// is no such GPU, or its compute capability is below 8.0.
    pub fn new(ordinal: usize) -> Result<Self> {
        let (context, info) = context::open(ordinal)?;
        // SAFETY: cudarc's per-buffer event tracking is switched off before this context has
        // a stream or a buffer, so no buffer ever carries events (turning it off later leaves
        // stale events behind). vecprop orders GPU work itself, which is what tracking would
        // otherwise do: (1) a forward pass queues all its work on one lane's stream and
        // synchronises that stream before its buffers go back to the pools, on every path;
        // (2) weights are uploaded on one stream and synchronised before a plan is returned,
        // and afterwards are only read; (3) pooled buffers change streams only after such a
        // synchronisation. Without tracking, captured CUDA Graphs contain no event records
        // or waits on events from outside the capture, which capture would reject.
        unsafe { context.disable_event_tracking() };
        let drop_errors = Arc::new(DropErrors::default());
        let counters = Arc::new(Counters::default());
        let inner = DeviceInner {
            lanes: Arc::new(LanePool::new(
                Arc::clone(&context),
                Arc::clone(&drop_errors),
            )),
            buffers: Arc::new(BufferPool::new(Arc::clone(&counters))),
            pinned: Arc::new(PinnedPool::new(Arc::clone(&context), Arc::clone(&counters))),
            kernels: KernelCache::new(Arc::clone(&context), info.multiprocessors),
            info,
            poison: AtomicBool::new(false),
            forced_fused_tile: AtomicUsize::new(0),
            forced_fused_kernel: Mutex::new(None),
            tuning: TuningCache::in_memory(),
            tuning_runs: AtomicU64::new(0),
            capture_gate: RwLock::new(()),
            counters,
            drop_errors,
            context,
        };
        Ok(CudaDevice {
            inner: Arc::new(inner),
        })
    }

    /// For example `cuda:0 (NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.2 GiB)`.
    pub fn name(&self) -> String {
        self.inner.info.describe()
    }

    /// Waits until all work queued on the GPU is done. Surfaces asynchronous kernel errors
    /// and errors recorded while releasing resources since the last check.
    pub fn synchronize(&self) -> Result<()> {
        self.inner
            .context
            .synchronize()
            .during("synchronising the GPU")?;
        self.inner.check_deferred_errors()
    }

    /// Allocation counters of the device and pinned-memory pools. A warm plan's forward pass
    /// leaves `allocations` unchanged.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.counters.snapshot()
    }

    /// How many layers `Strategy::Auto` has timed on this GPU so far. A compile whose every
    /// layer was found in a tuning cache (this device's, or the plan's file) adds nothing.
    pub fn tuning_runs(&self) -> u64 {
        self.inner.tuning_runs.load(Ordering::Relaxed)
    }

    /// Free and total device memory in bytes, as the driver reports them now.
    pub fn memory_info(&self) -> Result<(usize, usize)> {
        self.inner.memory_info()
    }

    /// Bytes of cuBLAS and cuBLASLt workspace each lane (stream) of this GPU holds.
    pub fn lane_workspace_bytes(&self) -> u64 {
        2 * blas::workspace_bytes_for(self.inner.info.compute_capability) as u64
    }

    /// Gives the pools' idle device buffers back to the driver.
    pub fn release_cached_memory(&self) {
        self.inner.buffers.release_idle();
    }

    /// Test aid: when `on`, every forward pass fills its activation buffers and output
    /// staging with NaN first, so an element no kernel writes cannot pass as a result.
    #[doc(hidden)]
    pub fn poison_outputs(&self, on: bool) {
        self.inner.poison.store(on, Ordering::Relaxed);
    }

    /// Test aid: makes plans compiled afterwards with the Fused strategy use `fused`
    /// (`Some(128)`) or `fused_small` (`Some(64)`) everywhere, instead of choosing by shape
    /// (`None`). Other values are ignored.
    #[doc(hidden)]
    pub fn force_fused_tile(&self, tile: Option<usize>) {
        let tile = tile.filter(|edge| matches!(edge, 64 | 128)).unwrap_or(0);
        self.inner.forced_fused_tile.store(tile, Ordering::Relaxed);
    }

    /// Test aid: makes plans compiled afterwards with the Fused strategy run the kernel named
    /// `name` (`fused`, `fused_small`, `simt_warp`, `wgmma`) for every layer, or choose as
    /// usual (`None`). Errors for an unknown name, and for a kernel that does not exist for
    /// `dtype` on this GPU (`wgmma` needs f16/bf16 on compute capability 9.0).
    #[doc(hidden)]
    pub fn force_fused_kernel(&self, name: Option<&str>, dtype: DType) -> Result<()> {
        let kernel = match name {
            None => None,
            Some(name) => {
                let kernel: dense::LayerKernel = name.parse()?;
                if !kernel.runs_on(&self.inner, dtype) {
                    return Err(Error::InvalidArgument(format!(
                        "kernel `{kernel}` does not run {dtype} on {}",
                        self.inner.info.describe()
                    )));
                }
                Some(kernel)
            }
        };
        *self
            .inner
            .forced_fused_kernel
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = kernel;
        Ok(())
    }
}

impl DeviceInner {
    /// Free and total device memory in bytes.
    pub(crate) fn memory_info(&self) -> Result<(usize, usize)> {
        self.context
            .mem_get_info()
            .during("asking the driver for free GPU memory")
    }

    /// Held while queueing work or doing first-use work (loading modules, creating
    /// handles, a library's first launch of a kernel, allocating). Never held across a
    /// call that takes it again: the lock is writer-preferring, so nesting could deadlock.
    pub(crate) fn queueing(&self) -> RwLockReadGuard<'_, ()> {
        // `()` cannot be left inconsistent by a panic.
        self.capture_gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Held for the length of a CUDA Graph capture (begin to end). With lazy module
    /// loading, the first use of a kernel or of a cuBLASLt algorithm may synchronise the
    /// context, which invalidates a capture in progress on any stream, even in
    /// thread-local capture mode. Excluding vecprop's other queueing (which is where first
    /// uses happen) for those few microseconds keeps other threads' first uses out of it.
    pub(crate) fn capturing(&self) -> RwLockWriteGuard<'_, ()> {
        self.capture_gate.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Errors that cudarc or vecprop recorded in `Drop` since the last check.
    pub(crate) fn check_deferred_errors(&self) -> Result<()> {
        self.context
            .check_err()
            .during("an earlier asynchronous operation")?;
        self.drop_errors.take()
    }
}

impl fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaDevice")
            .field("ordinal", &self.inner.info.ordinal)
            .field("name", &self.inner.info.name)
            .finish_non_exhaustive()
    }
}

/// Compile-time proof that devices and plans may be shared between threads.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<CudaDevice>();
    shareable::<CudaPlan>();
};
