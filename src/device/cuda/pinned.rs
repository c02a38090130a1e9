//! Pinned (page-locked) host staging buffers, reused like the device buffers.
//!
//! A forward pass converts its f32 input into a pinned buffer of the plan's dtype, copies
//! it to the GPU asynchronously, and copies the result back into another pinned buffer.
//! Pinned memory is what makes those copies truly asynchronous (and about twice as fast).

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream, CudaView, CudaViewMut, PinnedHostSlice};

use super::error::CudaResultExt;
use super::pool::{key_for, Counters, Key, Shelf};
use super::GpuElement;
use crate::error::{Error, Result};

/// Idle pinned buffers by (element type, size class).
pub(crate) struct PinnedPool {
    context: Arc<CudaContext>,
    shelf: Shelf,
    counters: Arc<Counters>,
}

impl PinnedPool {
    pub(crate) fn new(context: Arc<CudaContext>, counters: Arc<Counters>) -> Self {
        PinnedPool {
            context,
            shelf: Shelf::default(),
            counters,
        }
    }

    /// A staging buffer of at least `len` elements.
    pub(crate) fn take<T: GpuElement>(self: &Arc<Self>, len: usize) -> Result<PinnedBuffer<T>> {
        let (key, capacity, bytes) = key_for::<T>(len)?;
        let host = match self.shelf.take::<PinnedHostSlice<T>>(key) {
            Some(host) => {
                self.counters.reused();
                host
            }
            None => {
                let host = self.allocate::<T>(capacity)?;
                self.counters.allocated(bytes);
                host
            }
        };
        Ok(PinnedBuffer {
            host: Some(host),
            len,
            key,
            pool: Arc::clone(self),
        })
    }

    fn allocate<T: GpuElement>(&self, capacity: usize) -> Result<PinnedHostSlice<T>> {
        // SAFETY: (1) `alloc_pinned_with_flags` returns page-locked memory that is not yet
        // initialised; the `write_bytes` below zeroes all `capacity` elements before any
        // reference to them exists, and all-zero bits are a valid `T` (`T: ValidAsZeroBits`).
        // (2) `capacity * size_of::<T>()` is a size class computed with checked arithmetic
        // in `size_class`, so cudarc's own overflow assertion cannot fire. (3) Flags 0 ask for
        // ordinary (cached, not write-combined) pinned memory, which the host reads quickly.
        unsafe {
            let mut host = self
                .context
                .alloc_pinned_with_flags::<T>(capacity, 0)
                .during("allocating pinned host memory")?;
            let pointer = host.as_mut_ptr().during("waiting for pinned host memory")?;
            std::ptr::write_bytes(pointer, 0, capacity);
            Ok(host)
        }
    }
}

/// A pinned host buffer borrowed from a [`PinnedPool`]; dropping it returns it.
///
/// # Ordering
/// [`PinnedBuffer::upload`] and [`PinnedBuffer::download`] only queue copies. The caller
/// must synchronise the stream before touching the buffer again or dropping it; a plan's
/// forward pass does so on every path, errors included.
pub(crate) struct PinnedBuffer<T: GpuElement> {
    /// `Some` from construction until `drop`.
    host: Option<PinnedHostSlice<T>>,
    len: usize,
    key: Key,
    pool: Arc<PinnedPool>,
}

impl<T: GpuElement> PinnedBuffer<T> {
    /// The requested number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first `len` elements, for the host to fill or read.
    pub(crate) fn host_mut(&mut self, len: usize) -> Result<&mut [T]> {
        self.check(len)?;
        let host = self
            .pinned_mut()
            .as_mut_slice()
            .during("waiting for pinned memory")?;
        Ok(&mut host[..len])
    }

    /// Queues a copy of the first `dst.len()` elements to the device.
    pub(crate) fn upload(
        &mut self,
        stream: &Arc<CudaStream>,
        dst: &mut CudaViewMut<'_, T>,
    ) -> Result<()> {
        let len = dst.len();
        let host = self.host_mut(len)?;
        stream
            .memcpy_htod(&*host, dst)
            .during("copying the input to the GPU")
    }

    /// Queues a copy of `src` into the first `src.len()` elements.
    pub(crate) fn download(
        &mut self,
        stream: &Arc<CudaStream>,
        src: &CudaView<'_, T>,
    ) -> Result<()> {
        let host = self.host_mut(src.len())?;
        stream
            .memcpy_dtoh(src, host)
            .during("copying the output from the GPU")
    }

    fn check(&self, len: usize) -> Result<()> {
        if len > self.len {
            return Err(Error::InvalidArgument(format!(
                "{len} elements do not fit a staging buffer of {}",
                self.len
            )));
        }
        Ok(())
    }

    fn pinned_mut(&mut self) -> &mut PinnedHostSlice<T> {
        match &mut self.host {
            Some(host) => host,
            None => unreachable!("a pinned buffer holds its memory until it is dropped"),
        }
    }
}

impl<T: GpuElement> Drop for PinnedBuffer<T> {
    fn drop(&mut self) {
        if let Some(host) = self.host.take() {
            self.pool.shelf.put(self.key, host);
        }
    }
}
