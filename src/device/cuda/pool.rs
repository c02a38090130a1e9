//! A caching pool of device buffers.
//!
//! Freed buffers go back to the pool, not to the driver: the next request of the same
//! element type and size class reuses one. The classes ([`size_class`](crate::device::memory::size_class))
//! waste at most 1/8 of a request (512 B granules for small buffers, 2 MiB for large), so
//! a plan's peak device memory stays within 1.125× of what it asks for. Buffers are stored as
//! typed `CudaSlice<T>` behind `dyn Any`, keyed by `(TypeId, size class)`, so taking one
//! back out is a checked downcast, not a cast.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut};

use super::error::CudaResultExt;
use super::GpuElement;
use crate::device::memory;
use crate::error::{Error, Result};

/// Counters of a device's buffer pools (device buffers and pinned host staging buffers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers obtained from the driver so far.
    pub allocations: u64,
    /// Requests served from the cache instead.
    pub reuses: u64,
    /// Bytes obtained from the driver so far.
    pub bytes_allocated: u64,
}

/// Allocation counters shared by the device and pinned pools.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    allocations: AtomicU64,
    reuses: AtomicU64,
    bytes_allocated: AtomicU64,
}

impl Counters {
    pub(crate) fn allocated(&self, bytes: usize) {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        self.bytes_allocated
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn reused(&self) {
        self.reuses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> PoolStats {
        PoolStats {
            allocations: self.allocations.load(Ordering::Relaxed),
            reuses: self.reuses.load(Ordering::Relaxed),
            bytes_allocated: self.bytes_allocated.load(Ordering::Relaxed),
        }
    }
}

/// The size class of `len` elements of `T`: (bytes, elements); see
/// [`size_class`](crate::device::memory::size_class).
pub(crate) fn size_class<T>(len: usize) -> Result<(usize, usize)> {
    let bytes = len
        .checked_mul(size_of::<T>())
        .and_then(memory::size_class)
        .ok_or_else(|| {
            Error::InvalidArgument(format!("a buffer of {len} elements is too large"))
        })?;
    Ok((bytes, bytes / size_of::<T>().max(1)))
}

/// What idle allocations are filed under: their element type and size class in bytes.
pub(crate) type Key = (TypeId, usize);

/// The key, the capacity in elements and the bytes of a request for `len` elements of `T`.
pub(crate) fn key_for<T: 'static>(len: usize) -> Result<(Key, usize, usize)> {
    let (bytes, capacity) = size_class::<T>(len)?;
    Ok(((TypeId::of::<T>(), bytes), capacity, bytes))
}

/// Idle allocations of any type, filed by [`Key`]: what both the device-buffer pool and the
/// pinned-staging pool keep between uses. Values are stored behind `dyn Any` and taken back
/// out with a checked downcast, not a cast.
#[derive(Default)]
pub(crate) struct Shelf {
    idle: Mutex<HashMap<Key, Vec<Box<dyn Any + Send + Sync>>>>,
}

impl Shelf {
    /// An idle value filed under `key`, if there is one of type `V`.
    pub(crate) fn take<V: Any + Send + Sync>(&self, key: Key) -> Option<V> {
        let boxed = self.lock().get_mut(&key).and_then(Vec::pop)?;
        boxed.downcast::<V>().ok().map(|value| *value)
    }

    /// Files `value` under `key` for the next [`Shelf::take`].
    pub(crate) fn put<V: Any + Send + Sync>(&self, key: Key, value: V) {
        self.lock().entry(key).or_default().push(Box::new(value));
    }

    /// Drops every idle value.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Vec<Box<dyn Any + Send + Sync>>>> {
        // The map stays valid whatever panicked while it was held.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Idle device buffers by (element type, size class).
#[derive(Default)]
pub(crate) struct BufferPool {
    shelf: Shelf,
    counters: Arc<Counters>,
}

impl BufferPool {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        BufferPool {
            shelf: Shelf::default(),
            counters,
        }
    }

    /// A buffer of at least `len` elements; new ones are allocated on `stream` and zeroed.
    pub(crate) fn take<T: GpuElement>(
        self: &Arc<Self>,
        stream: &Arc<CudaStream>,
        len: usize,
    ) -> Result<PooledBuffer<T>> {
        let (key, capacity, bytes) = key_for::<T>(len)?;
        let slice = match self.shelf.take::<CudaSlice<T>>(key) {
            Some(slice) => {
                self.counters.reused();
                slice
            }
            None => self.allocate(stream, capacity, bytes)?,
        };
        Ok(PooledBuffer {
            slice: Some(slice),
            len,
            key,
            pool: Arc::clone(self),
        })
    }

    fn allocate<T: GpuElement>(
        &self,
        stream: &Arc<CudaStream>,
        capacity: usize,
        bytes: usize,
    ) -> Result<CudaSlice<T>> {
        let slice = match stream.alloc_zeros::<T>(capacity) {
            Ok(slice) => slice,
            // Out of memory: give the cached buffers back to the driver and try once more.
            Err(_) => {
                self.release_idle();
                stream
                    .alloc_zeros::<T>(capacity)
                    .during(&format!("allocating a {bytes}-byte device buffer"))?
            }
        };
        self.counters.allocated(bytes);
        Ok(slice)
    }

    /// Frees every idle buffer.
    pub(crate) fn release_idle(&self) {
        self.shelf.clear();
    }
}

/// A device buffer borrowed from a [`BufferPool`]; dropping it returns it to the pool.
///
/// Its logical length is what was asked for; the allocation may be larger.
pub(crate) struct PooledBuffer<T: GpuElement> {
    /// `Some` from construction until `drop`.
    slice: Option<CudaSlice<T>>,
    len: usize,
    key: Key,
    pool: Arc<BufferPool>,
}

impl<T: GpuElement> PooledBuffer<T> {
    /// The requested number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first `len` elements, read-only. Errors if `len` exceeds the buffer.
    pub(crate) fn view(&self, len: usize) -> Result<CudaView<'_, T>> {
        self.check(len)?;
        Ok(self.slice().slice(..len))
    }

    /// The first `len` elements, writable. Errors if `len` exceeds the buffer.
    pub(crate) fn view_mut(&mut self, len: usize) -> Result<CudaViewMut<'_, T>> {
        self.check(len)?;
        Ok(self.slice_mut().slice_mut(..len))
    }

    fn check(&self, len: usize) -> Result<()> {
        if len > self.len {
            return Err(Error::InvalidArgument(format!(
                "a view of {len} elements does not fit a buffer of {}",
                self.len
            )));
        }
        Ok(())
    }

    fn slice(&self) -> &CudaSlice<T> {
        match &self.slice {
            Some(slice) => slice,
            None => unreachable!("a pooled buffer holds its slice until it is dropped"),
        }
    }

    fn slice_mut(&mut self) -> &mut CudaSlice<T> {
        match &mut self.slice {
            Some(slice) => slice,
            None => unreachable!("a pooled buffer holds its slice until it is dropped"),
        }
    }
}

impl<T: GpuElement> Drop for PooledBuffer<T> {
    fn drop(&mut self) {
        if let Some(slice) = self.slice.take() {
            self.pool.shelf.put(self.key, slice);
        }
    }
}
