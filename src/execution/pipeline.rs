//! Streaming batches through a plan: the ordering logic every device shares.
//!
//! A device supplies a `Pipeline`: it accepts up to `Pipeline::depth` chunks of at most
//! `max_batch` rows before the oldest must be finished, and finishes chunks in the order it
//! accepted them. `drive` splits batches into chunks, keeps the pipeline full, reassembles
//! each batch's output and hands finished batches to the sink in input order. Memory stays
//! bounded: at most `depth` chunks are in flight and at most `depth + 1` outputs pending,
//! however long the input is.

use std::collections::VecDeque;
use std::ops::Range;

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

use crate::error::{Error, Result};
use crate::tensor::check_batch;

/// Something [`Plan::forward_stream`](crate::Plan::forward_stream) can read a batch from:
/// an owned array, a view, or a reference to either.
pub trait StreamBatch {
    /// The batch, one example per row.
    fn batch_view(&self) -> ArrayView2<'_, f32>;
}

impl StreamBatch for Array2<f32> {
    fn batch_view(&self) -> ArrayView2<'_, f32> {
        self.view()
    }
}

impl StreamBatch for ArrayView2<'_, f32> {
    fn batch_view(&self) -> ArrayView2<'_, f32> {
        self.view()
    }
}

impl<B: StreamBatch + ?Sized> StreamBatch for &B {
    fn batch_view(&self) -> ArrayView2<'_, f32> {
        (**self).batch_view()
    }
}

/// A device's way of computing chunks with several in flight.
///
/// Dropping a pipeline with chunks still in flight must wait for them (or otherwise make
/// sure their buffers are no longer in use) before releasing anything.
pub(crate) trait Pipeline {
    /// How many chunks may be in flight at once (at least 1).
    fn depth(&self) -> usize;
    /// Starts computing `input` (1 to `max_batch` rows). It is read before this returns.
    fn submit(&mut self, input: ArrayView2<'_, f32>) -> Result<()>;
    /// Waits for the oldest chunk still in flight and writes its output.
    fn finish_oldest(&mut self, output: ArrayViewMut2<'_, f32>) -> Result<()>;
}

/// One submitted chunk: its rows within its batch, and whether it ends the batch.
struct Chunk {
    rows: Range<usize>,
    last: bool,
}

/// The shape of what flows through: rows per chunk, and input and output widths.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamShape {
    pub(crate) max_rows: usize,
    pub(crate) input_width: usize,
    pub(crate) output_width: usize,
}

/// Runs every batch through `pipeline`, calling `sink` with each batch's output, in order.
///
/// Stops at the first error, from the iterator, a batch's shape, the pipeline or the sink,
/// and returns it; chunks still in flight are then the pipeline's to wait for on drop.
pub(crate) fn drive<I, B>(
    pipeline: &mut dyn Pipeline,
    shape: StreamShape,
    batches: I,
    sink: &mut dyn FnMut(Array2<f32>) -> Result<()>,
) -> Result<()>
where
    I: IntoIterator<Item = Result<B>>,
    B: StreamBatch,
{
    if shape.max_rows == 0 {
        return Err(Error::InvalidArgument(
            "max_batch must be at least 1".into(),
        ));
    }
    let depth = pipeline.depth().max(1);
    let mut in_flight: VecDeque<Chunk> = VecDeque::with_capacity(depth);
    let mut pending: VecDeque<Array2<f32>> = VecDeque::with_capacity(depth + 1);
    for batch in batches {
        let batch = batch?;
        let input = batch.batch_view();
        check_batch(input, shape.input_width)?;
        let rows = input.nrows();
        if rows == 0 {
            // No chunk will carry it: sink it in its place, after the batches ahead of it.
            while !in_flight.is_empty() {
                finish_one(pipeline, &mut in_flight, &mut pending, sink)?;
            }
            sink(Array2::zeros((0, shape.output_width)))?;
            continue;
        }
        pending.push_back(Array2::zeros((rows, shape.output_width)));
        let mut start = 0;
        while start < rows {
            if in_flight.len() >= depth {
                finish_one(pipeline, &mut in_flight, &mut pending, sink)?;
            }
            let end = start.saturating_add(shape.max_rows).min(rows);
            pipeline.submit(input.slice(s![start..end, ..]))?;
            in_flight.push_back(Chunk {
                rows: start..end,
                last: end == rows,
            });
            start = end;
        }
    }
    while !in_flight.is_empty() {
        finish_one(pipeline, &mut in_flight, &mut pending, sink)?;
    }
    Ok(())
}

/// Finishes the oldest chunk into its batch's output; sinks the batch if it is complete.
fn finish_one(
    pipeline: &mut dyn Pipeline,
    in_flight: &mut VecDeque<Chunk>,
    pending: &mut VecDeque<Array2<f32>>,
    sink: &mut dyn FnMut(Array2<f32>) -> Result<()>,
) -> Result<()> {
    let (Some(chunk), Some(output)) = (in_flight.pop_front(), pending.front_mut()) else {
        return Err(Error::InvalidArgument(
            "internal: a streamed chunk has no batch to land in".into(),
        ));
    };
    pipeline.finish_oldest(output.slice_mut(s![chunk.rows.clone(), ..]))?;
    if chunk.last {
        if let Some(done) = pending.pop_front() {
            sink(done)?;
        }
    }
    Ok(())
}

/// A pipeline of depth 1 over any `run(input, output)`: computes each chunk on submit.
/// What devices without asynchronous execution (the CPU) stream with.
pub(crate) struct Immediate<F> {
    run: F,
    output_width: usize,
    ready: VecDeque<Array2<f32>>,
}

impl<F> Immediate<F>
where
    F: FnMut(ArrayView2<'_, f32>, ArrayViewMut2<'_, f32>) -> Result<()>,
{
    pub(crate) fn new(output_width: usize, run: F) -> Self {
        Immediate {
            run,
            output_width,
            ready: VecDeque::with_capacity(1),
        }
    }
}

impl<F> Pipeline for Immediate<F>
where
    F: FnMut(ArrayView2<'_, f32>, ArrayViewMut2<'_, f32>) -> Result<()>,
{
    fn depth(&self) -> usize {
        1
    }

    fn submit(&mut self, input: ArrayView2<'_, f32>) -> Result<()> {
        let mut output = Array2::zeros((input.nrows(), self.output_width));
        (self.run)(input, output.view_mut())?;
        self.ready.push_back(output);
        Ok(())
    }

    fn finish_oldest(&mut self, mut output: ArrayViewMut2<'_, f32>) -> Result<()> {
        let ready = self.ready.pop_front().ok_or_else(|| {
            Error::InvalidArgument("internal: no streamed chunk is in flight".into())
        })?;
        output.assign(&ready);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipeline that doubles its input, with `depth` chunks in flight, recording the
    /// largest number it ever held.
    struct Doubler {
        depth: usize,
        queue: VecDeque<Array2<f32>>,
        most: usize,
    }

    impl Pipeline for Doubler {
        fn depth(&self) -> usize {
            self.depth
        }
        fn submit(&mut self, input: ArrayView2<'_, f32>) -> Result<()> {
            self.queue.push_back(input.mapv(|x| 2.0 * x));
            self.most = self.most.max(self.queue.len());
            Ok(())
        }
        fn finish_oldest(&mut self, mut output: ArrayViewMut2<'_, f32>) -> Result<()> {
            output.assign(&self.queue.pop_front().unwrap());
            Ok(())
        }
    }

    fn batch(rows: usize, start: f32) -> Array2<f32> {
        Array2::from_shape_fn((rows, 2), |(r, c)| start + (2 * r + c) as f32)
    }

    #[test]
    fn order_is_kept_and_depth_is_respected() {
        let batches = [
            batch(5, 0.0),
            batch(3, 100.0),
            batch(1, 200.0),
            batch(7, 300.0),
        ];
        let mut pipeline = Doubler {
            depth: 3,
            queue: VecDeque::new(),
            most: 0,
        };
        let shape = StreamShape {
            max_rows: 2,
            input_width: 2,
            output_width: 2,
        };
        let mut got = Vec::new();
        drive(&mut pipeline, shape, batches.iter().map(Ok), &mut |out| {
            got.push(out);
            Ok(())
        })
        .unwrap();
        assert_eq!(pipeline.most, 3);
        let want: Vec<Array2<f32>> = batches.iter().map(|b| b.mapv(|x| 2.0 * x)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_first_error_stops_the_stream() {
        let shape = StreamShape {
            max_rows: 4,
            input_width: 2,
            output_width: 2,
        };
        let items: Vec<Result<Array2<f32>>> = vec![
            Ok(batch(3, 0.0)),
            Err(Error::InvalidArgument("boom".into())),
            Ok(batch(3, 0.0)),
        ];
        let mut seen = 0;
        let mut pipeline = Immediate::new(
            2,
            |i: ArrayView2<'_, f32>, mut o: ArrayViewMut2<'_, f32>| {
                o.assign(&i);
                Ok(())
            },
        );
        let err = drive(&mut pipeline, shape, items, &mut |_| {
            seen += 1;
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        assert_eq!(seen, 0, "the first batch was still in flight");

        let mut pipeline = Immediate::new(
            2,
            |i: ArrayView2<'_, f32>, mut o: ArrayViewMut2<'_, f32>| {
                o.assign(&i);
                Ok(())
            },
        );
        let err = drive(
            &mut pipeline,
            shape,
            (0..10).map(|i| Ok(batch(2, i as f32))),
            &mut |_| Err(Error::InvalidArgument("sink full".into())),
        )
        .unwrap_err();
        assert!(err.to_string().contains("sink full"), "{err}");
    }
}
