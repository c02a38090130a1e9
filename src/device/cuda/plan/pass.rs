//! One forward pass: the resources it holds and the work it queues.
//!
//! A [`Pass`] bundles a lane, two activation buffers and the pinned staging buffers both
//! ways. The plain path takes one per call, the stream pipeline keeps a few in flight, and a
//! captured CUDA Graph owns one for good. Whatever owns it, a pass that still has work
//! queued synchronises its lane before its buffers go back to the pools (`Drop`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ndarray::{ArrayView2, ArrayViewMut2};

use super::{GpuLayer, GpuPlan};
use crate::device::cuda::dense::{run_dense, LayerKernel};
use crate::device::cuda::error::{CudaResultExt, DropErrors};
use crate::device::cuda::operands::DenseOperands;
use crate::device::cuda::pinned::PinnedBuffer;
use crate::device::cuda::pool::PooledBuffer;
use crate::device::cuda::stream::{Lane, LaneGuard};
use crate::device::cuda::GpuElement;
use crate::device::staging::{pack_rows, unpack_rows};
use crate::error::{Error, Result};

/// The two activation buffers a pass ping-pongs between.
pub(super) struct Scratch<T: GpuElement> {
    pub(super) ping: PooledBuffer<T>,
    pub(super) pong: PooledBuffer<T>,
}

/// Everything one pass in flight holds.
pub(super) struct Pass<T: GpuElement> {
    pub(super) scratch: Scratch<T>,
    pub(super) staging_in: PinnedBuffer<T>,
    pub(super) staging_out: PinnedBuffer<T>,
    pub(super) lane: LaneGuard,
    /// Rows of the chunk last queued.
    pub(super) rows: usize,
    /// Whether work is queued that nobody has synchronised yet.
    pub(super) in_flight: bool,
    /// Destroy the lane on drop instead of returning it (after a failed capture).
    pub(super) discard_lane: bool,
    drop_errors: Arc<DropErrors>,
}

impl<T: GpuElement> Pass<T> {
    /// Waits for this pass's queued work; asynchronous errors surface here.
    pub(super) fn synchronize(&mut self) -> Result<()> {
        self.in_flight = false;
        self.lane.synchronize()
    }
}

impl<T: GpuElement> Drop for Pass<T> {
    fn drop(&mut self) {
        if self.in_flight {
            // Abandoned mid-flight (an error elsewhere in a stream): the copies must finish
            // before the buffers are reused. The error, if any, surfaces at the next check.
            let result = self.lane.stream.synchronize();
            self.drop_errors
                .record("waiting for an abandoned forward pass", result);
        }
        if self.discard_lane {
            self.lane.discard();
        }
    }
}

impl<T: GpuElement> GpuPlan<T> {
    /// Two activation buffers of `rows` × the widest activation.
    pub(super) fn take_scratch(&self, lane: &Lane, rows: usize) -> Result<Scratch<T>> {
        let len = rows
            .checked_mul(self.widest)
            .ok_or_else(|| Error::InvalidArgument("rows x width is too large".into()))?;
        let buffers = &self.device.inner.buffers;
        Ok(Scratch {
            ping: buffers.take(&lane.stream, len)?,
            pong: buffers.take(&lane.stream, len)?,
        })
    }

    /// A lane from the pool and buffers for up to `rows` rows.
    pub(super) fn take_pass(&self, rows: usize) -> Result<Pass<T>> {
        let inner = &self.device.inner;
        let elements = |width: usize| {
            rows.checked_mul(width)
                .ok_or_else(|| Error::InvalidArgument("rows x width is too large".into()))
        };
        let (in_len, out_len) = (elements(self.input_width)?, elements(self.output_width)?);
        let lane = inner.lanes.acquire()?;
        Ok(Pass {
            scratch: self.take_scratch(&lane, rows)?,
            staging_in: inner.pinned.take::<T>(in_len)?,
            staging_out: inner.pinned.take::<T>(out_len)?,
            lane,
            rows: 0,
            in_flight: false,
            discard_lane: false,
            drop_errors: Arc::clone(&inner.drop_errors),
        })
    }

    /// Queues every layer over `rows` rows starting in `scratch.ping`; returns the buffer
    /// that holds the output.
    pub(super) fn queue_layers<'s>(
        &self,
        lane: &mut Lane,
        scratch: &'s mut Scratch<T>,
        rows: usize,
    ) -> Result<&'s PooledBuffer<T>> {
        if self.whole_network.is_some() {
            return self.queue_network(lane, scratch, rows);
        }
        let Scratch { ping, pong } = scratch;
        let (mut src, mut dst) = (ping, pong);
        for layer in &self.layers {
            self.queue_layer(lane, layer, layer.kernel, src, dst, rows)?;
            std::mem::swap(&mut src, &mut dst);
        }
        Ok(src)
    }

    /// Queues `layer` with `kernel` on `rows` rows, reading `src` and writing `dst`.
    pub(super) fn queue_layer(
        &self,
        lane: &mut Lane,
        layer: &GpuLayer<T>,
        kernel: LayerKernel,
        src: &PooledBuffer<T>,
        dst: &mut PooledBuffer<T>,
        rows: usize,
    ) -> Result<()> {
        let a = src.view(rows * layer.inputs)?;
        let mut out = dst.view_mut(rows * layer.units)?;
        let (w, bias) = (layer.weight.as_view(), layer.bias.as_view());
        let ops = DenseOperands {
            a: &a,
            w: &w,
            bias: &bias,
            out: &mut out,
            m: rows,
            n: layer.units,
            k: layer.inputs,
            activation: layer.activation,
        };
        run_dense(&self.device.inner, lane, kernel, ops, self.allow_tf32)
    }

    /// Queues the whole pass on `pass`'s lane: input conversion and upload, every layer,
    /// the download. The caller synchronises (or drops the pass, which does).
    pub(super) fn queue_pass(&self, pass: &mut Pass<T>, input: ArrayView2<'_, f32>) -> Result<()> {
        let rows = input.nrows();
        let (in_len, out_len) = (rows * self.input_width, rows * self.output_width);
        if self.device.inner.poison.load(Ordering::Relaxed) {
            self.poison(pass)?;
        }
        pack_rows(input, pass.staging_in.host_mut(in_len)?)?;
        pass.rows = rows;
        pass.in_flight = true;
        pass.staging_in
            .upload(&pass.lane.stream, &mut pass.scratch.ping.view_mut(in_len)?)?;
        let output = self.queue_layers(&mut pass.lane, &mut pass.scratch, rows)?;
        pass.staging_out
            .download(&pass.lane.stream, &output.view(out_len)?)
    }

    /// Converts a synchronised pass's output into `output` (its rows × output width).
    pub(super) fn read_output(
        &self,
        pass: &mut Pass<T>,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        if output.dim() != (pass.rows, self.output_width) {
            return Err(Error::InvalidArgument(format!(
                "output buffer has shape {:?}, expected ({}, {})",
                output.dim(),
                pass.rows,
                self.output_width
            )));
        }
        unpack_rows(
            pass.staging_out.host_mut(pass.rows * self.output_width)?,
            output,
        )
    }

    /// Fills the activation buffers and the output staging with NaN, so that any element
    /// a kernel fails to write shows up in the output. A test aid.
    pub(super) fn poison(&self, pass: &mut Pass<T>) -> Result<()> {
        let nan = T::from_f32(f32::NAN);
        let longest = pass.scratch.ping.len().max(pass.scratch.pong.len());
        let values = vec![nan; longest];
        for buffer in [&mut pass.scratch.ping, &mut pass.scratch.pong] {
            let len = buffer.len();
            pass.lane
                .stream
                .memcpy_htod(&values[..len], &mut buffer.view_mut(len)?)
                .during("poisoning an activation buffer")?;
        }
        // The copies read `values`, pageable memory: wait before it is freed.
        pass.lane.synchronize()?;
        let len = pass.staging_out.len();
        pass.staging_out.host_mut(len)?.fill(nan);
        Ok(())
    }
}
