//! Host staging: converting rows of f32 into a device's element type, packed row-major
//! into a staging buffer (pinned memory on a GPU), and back, on every core.
//!
//! This is the host work of each chunk a GPU pass or stream uploads and downloads. It is
//! device-independent, so it compiles and is benchmarked without the `cuda` feature
//! (`cargo bench --bench all -- staging` reports GB/s). f32 needs no conversion and is a plain
//! parallel copy; f16 and bf16 go through `half`'s slice conversions (F16C where the CPU
//! has it). Work below [`PARALLEL_MIN`] elements stays on the calling thread: for a
//! small batch, waking the pool costs more than the conversion.
//!
//! ```
//! use half::bf16;
//! use ndarray::array;
//! use vecprop::device::staging::{pack_rows, unpack_rows};
//!
//! let input = array![[1.0f32, 2.0], [3.0, 4.5]];
//! let mut staged = vec![bf16::ZERO; 4];
//! pack_rows(input.view(), &mut staged)?;
//! let mut back = ndarray::Array2::zeros((2, 2));
//! unpack_rows(&staged, back.view_mut())?;
//! assert_eq!(back, input);
//! # Ok::<(), vecprop::Error>(())
//! ```

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use std::collections::VecDeque;

use ndarray::{s, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::execution::pipeline::Pipeline;

/// Elements below which conversion stays on the calling thread.
pub const PARALLEL_MIN: usize = 1 << 16;
/// Elements per parallel task: 128 KiB of f32, which stays in a core's L2.
pub const PARALLEL_CHUNK: usize = 1 << 15;

/// An element type that host staging can pack f32 values into and read them back from.
pub trait Staged: Element {
    /// Converts `src` into `dst` (equal lengths), rounding to nearest even.
    fn pack(src: &[f32], dst: &mut [Self]);
    /// Converts `src` into `dst` (equal lengths), exactly.
    fn unpack(src: &[Self], dst: &mut [f32]);
}

impl Staged for f32 {
    fn pack(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn unpack(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
}

/// The 16-bit types share `half`'s vectorised slice conversions.
macro_rules! staged_half {
    ($($t:ty),*) => {$(
        impl Staged for $t {
            fn pack(src: &[f32], dst: &mut [$t]) {
                dst.convert_from_f32_slice(src);
            }
            fn unpack(src: &[$t], dst: &mut [f32]) {
                src.convert_to_f32_slice(dst);
            }
        }
    )*};
}
staged_half!(f16, bf16);

fn length_error(what: &str, have: usize, need: usize) -> Error {
    Error::InvalidArgument(format!(
        "{what} holds {have} elements but the batch has {need}"
    ))
}

/// Converts `input` into `dst`, row-major, in parallel for large batches. `dst` must hold
/// exactly the batch's elements. Rows may be strided (a column range of a larger array);
/// each row is then converted on its own.
pub fn pack_rows<T: Staged>(input: ArrayView2<'_, f32>, dst: &mut [T]) -> Result<()> {
    if dst.len() != input.len() {
        return Err(length_error("the staging buffer", dst.len(), input.len()));
    }
    if let Some(src) = input.as_slice() {
        convert_chunks(src, dst, T::pack);
        return Ok(());
    }
    let width = input.ncols().max(1);
    let rows = input.axis_iter(Axis(0)).into_par_iter();
    let chunks = dst.par_chunks_mut(width);
    let min_rows = (PARALLEL_CHUNK / width).max(1);
    rows.zip(chunks)
        .with_min_len(if input.len() < PARALLEL_MIN {
            usize::MAX
        } else {
            min_rows
        })
        .for_each(|(row, dst)| match row.as_slice() {
            Some(src) => T::pack(src, dst),
            None => dst
                .iter_mut()
                .zip(row.iter())
                .for_each(|(d, &s)| *d = T::from_f32(s)),
        });
    Ok(())
}

/// Converts `src` (row-major, exactly the output's elements) into `output`, in parallel
/// for large batches.
pub fn unpack_rows<T: Staged>(src: &[T], mut output: ArrayViewMut2<'_, f32>) -> Result<()> {
    if src.len() != output.len() {
        return Err(length_error("the staged output", src.len(), output.len()));
    }
    if let Some(dst) = output.as_slice_mut() {
        convert_chunks(src, dst, T::unpack);
        return Ok(());
    }
    let width = output.ncols().max(1);
    let parallel = src.len() >= PARALLEL_MIN;
    let min_rows = (PARALLEL_CHUNK / width).max(1);
    output
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(src.par_chunks(width))
        .with_min_len(if parallel { min_rows } else { usize::MAX })
        .for_each(|(mut row, src)| match row.as_slice_mut() {
            Some(dst) => T::unpack(src, dst),
            None => row.iter_mut().zip(src).for_each(|(d, s)| *d = s.to_f32()),
        });
    Ok(())
}

/// `convert` over equal-length slices, split into [`PARALLEL_CHUNK`]-element tasks when
/// there are at least [`PARALLEL_MIN`] elements.
fn convert_chunks<A: Sync, B: Send>(src: &[A], dst: &mut [B], convert: fn(&[A], &mut [B])) {
    if src.len() < PARALLEL_MIN {
        convert(src, dst);
        return;
    }
    dst.par_chunks_mut(PARALLEL_CHUNK)
        .zip(src.par_chunks(PARALLEL_CHUNK))
        .for_each(|(dst, src)| convert(src, dst));
}

/// Bytes of input below which one call's batch is not worth splitting into a stream.
pub const STREAM_MIN_BYTES: usize = 8 << 20;
/// Input bytes per streamed chunk of a whole batch: about 150 µs of copying at 55 GB/s,
/// long enough to hide a pass's launches, short enough to fill the pipeline quickly.
pub const STREAM_CHUNK_BYTES: usize = 8 << 20;
/// The fewest chunks a streamed batch is split into, so that copies in, compute and
/// copies out of different chunks overlap.
pub const STREAM_MIN_CHUNKS: usize = 4;

/// How many rows per chunk a single batch of `rows` rows of `row_bytes` input bytes each
/// should be streamed in, or `None` when it is small enough to run as one pass.
///
/// ```
/// use vecprop::device::staging::stream_chunk_rows;
/// // 65,536 rows of 784 f32 (205 MB): chunks of about 8 MiB.
/// assert_eq!(stream_chunk_rows(65_536, 784 * 4), Some(2674));
/// // 64 rows: one pass.
/// assert_eq!(stream_chunk_rows(64, 784 * 4), None);
/// ```
pub fn stream_chunk_rows(rows: usize, row_bytes: usize) -> Option<usize> {
    let row_bytes = row_bytes.max(1);
    let total = rows.checked_mul(row_bytes)?;
    if total < STREAM_MIN_BYTES || rows < STREAM_MIN_CHUNKS {
        return None;
    }
    let by_bytes = (STREAM_CHUNK_BYTES / row_bytes).max(1);
    let by_count = rows.div_ceil(STREAM_MIN_CHUNKS);
    Some(by_bytes.min(by_count))
}

/// Runs one batch through `pipeline` in chunks of `chunk_rows` rows, keeping up to
/// `pipeline.depth()` in flight, and writes each chunk's output into its rows of `output`,
/// oldest first, calling `progress(rows_done)` after each. The first error stops it; the
/// pipeline waits for what is still in flight when dropped. (The GPU's large batches go
/// through it; the CPU computes each batch in one pass.)
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn stream_whole(
    pipeline: &mut dyn Pipeline,
    input: ArrayView2<'_, f32>,
    mut output: ArrayViewMut2<'_, f32>,
    chunk_rows: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    let rows = input.nrows();
    if output.nrows() != rows {
        return Err(Error::InvalidArgument(format!(
            "the output has {} rows but the input {rows}",
            output.nrows()
        )));
    }
    let (chunk_rows, depth) = (chunk_rows.max(1), pipeline.depth().max(1));
    let mut in_flight = VecDeque::with_capacity(depth);
    let mut start = 0;
    while start < rows || !in_flight.is_empty() {
        if start < rows && in_flight.len() < depth {
            let end = (start + chunk_rows).min(rows);
            pipeline.submit(input.slice(s![start..end, ..]))?;
            in_flight.push_back(start..end);
            start = end;
        } else if let Some(done) = in_flight.pop_front() {
            let end = done.end;
            pipeline.finish_oldest(output.slice_mut(s![done, ..]))?;
            progress(end);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn batch(rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(r, c)| {
            ((r * 31 + c * 7) % 1000) as f32 / 7.0 - 60.0
        })
    }

    fn round_trip<T: Staged>(input: ArrayView2<'_, f32>) {
        let mut staged = vec![T::default(); input.len()];
        pack_rows(input, &mut staged).unwrap();
        for (staged, &x) in staged.iter().zip(input.iter()) {
            assert_eq!(*staged, T::from_f32(x));
        }
        let mut back = Array2::from_elem(input.dim(), f32::NAN);
        unpack_rows(&staged, back.view_mut()).unwrap();
        let want = input.mapv(|x| T::from_f32(x).to_f32());
        assert_eq!(back, want);
        // Into a strided output too: the left columns of a wider array.
        let (rows, cols) = input.dim();
        let mut wide = Array2::from_elem((rows, cols + 3), f32::NAN);
        unpack_rows(&staged, wide.slice_mut(s![.., ..cols])).unwrap();
        assert_eq!(wide.slice(s![.., ..cols]), want);
        assert!(wide.slice(s![.., cols..]).iter().all(|x| x.is_nan()));
    }

    #[test]
    fn every_dtype_round_trips_on_awkward_shapes() {
        // Below and above the parallel threshold, widths that are not multiples of chunks.
        for (rows, cols) in [(1, 1), (3, 17), (17, 5), (1000, 67), (2049, 33)] {
            let input = batch(rows, cols);
            round_trip::<f32>(input.view());
            round_trip::<f16>(input.view());
            round_trip::<bf16>(input.view());
            // A strided input: a column range of a wider batch.
            let wide = batch(rows, cols + 4);
            round_trip::<bf16>(wide.slice(s![.., 2..cols + 2]));
            round_trip::<f32>(wide.slice(s![.., 2..cols + 2]));
        }
    }

    #[test]
    fn nan_and_infinities_survive_staging() {
        let input = ndarray::array![[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0]];
        let mut staged = vec![f16::ZERO; 4];
        pack_rows(input.view(), &mut staged).unwrap();
        let mut back = Array2::zeros((1, 4));
        unpack_rows(&staged, back.view_mut()).unwrap();
        assert!(back[[0, 0]].is_nan());
        assert_eq!(back[[0, 1]], f32::INFINITY);
        assert_eq!(back[[0, 2]], f32::NEG_INFINITY);
        assert!(back[[0, 3]] == 0.0 && back[[0, 3]].is_sign_negative());
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let input = batch(3, 4);
        let mut short = vec![0.0f32; 11];
        assert!(pack_rows(input.view(), &mut short).is_err());
        let mut out = Array2::zeros((3, 4));
        assert!(unpack_rows(&short, out.view_mut()).is_err());
    }

    /// A pipeline that negates its input, records how many chunks it held at most, and
    /// fails on the chunk numbered `fail_at`.
    struct Negate {
        queue: VecDeque<Array2<f32>>,
        most: usize,
        submitted: usize,
        fail_at: Option<usize>,
    }

    impl Pipeline for Negate {
        fn depth(&self) -> usize {
            3
        }
        fn submit(&mut self, input: ArrayView2<'_, f32>) -> Result<()> {
            if self.fail_at == Some(self.submitted) {
                return Err(Error::InvalidArgument("device failed".into()));
            }
            self.submitted += 1;
            self.queue.push_back(input.mapv(|x| -x));
            self.most = self.most.max(self.queue.len());
            Ok(())
        }
        fn finish_oldest(&mut self, mut output: ArrayViewMut2<'_, f32>) -> Result<()> {
            let done = self.queue.pop_front().expect("a chunk is in flight");
            output.assign(&done);
            Ok(())
        }
    }

    fn negate(fail_at: Option<usize>) -> Negate {
        Negate {
            queue: VecDeque::new(),
            most: 0,
            submitted: 0,
            fail_at,
        }
    }

    #[test]
    fn a_whole_batch_streams_in_order_within_the_depth() {
        let input = batch(1001, 5);
        for chunk in [1, 7, 250, 1000, 1001, 5000] {
            let mut pipeline = negate(None);
            let mut output = Array2::from_elem((1001, 5), f32::NAN);
            let mut seen = Vec::new();
            stream_whole(
                &mut pipeline,
                input.view(),
                output.view_mut(),
                chunk,
                &mut |done| seen.push(done),
            )
            .unwrap();
            assert_eq!(output, input.mapv(|x| -x), "chunk {chunk}");
            assert!(
                pipeline.most <= 3,
                "chunk {chunk}: {} in flight",
                pipeline.most
            );
            assert_eq!(pipeline.most, 1001usize.div_ceil(chunk).min(3));
            let want: Vec<usize> = (1..=1001usize.div_ceil(chunk))
                .map(|i| (i * chunk).min(1001))
                .collect();
            assert_eq!(seen, want, "chunk {chunk}");
        }
    }

    #[test]
    fn a_failing_chunk_stops_the_stream() {
        let input = batch(100, 2);
        let mut output = Array2::zeros((100, 2));
        let mut seen = Vec::new();
        let err = stream_whole(
            &mut negate(Some(4)),
            input.view(),
            output.view_mut(),
            10,
            &mut |done| seen.push(done),
        )
        .unwrap_err();
        assert!(err.to_string().contains("device failed"), "{err}");
        assert_eq!(
            seen,
            [10, 20],
            "chunks 0 and 1 landed before chunk 4 failed"
        );
        let mut short = Array2::zeros((99, 2));
        assert!(stream_whole(
            &mut negate(None),
            input.view(),
            short.view_mut(),
            10,
            &mut |_| {}
        )
        .is_err());
    }

    #[test]
    fn stream_chunks_cover_the_batch_in_at_least_four_pieces() {
        assert_eq!(stream_chunk_rows(100, 4), None);
        assert_eq!(stream_chunk_rows(3, 1 << 30), None);
        assert_eq!(stream_chunk_rows(usize::MAX, 2), None);
        for (rows, row_bytes) in [(65_536, 3136), (4_000_000, 4), (4, 8 << 20), (9999, 4096)] {
            let chunk = stream_chunk_rows(rows, row_bytes).unwrap();
            assert!(chunk >= 1 && rows.div_ceil(chunk) >= STREAM_MIN_CHUNKS);
            assert!(chunk * row_bytes <= STREAM_CHUNK_BYTES.max(row_bytes));
        }
    }
}
