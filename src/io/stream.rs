//! Streaming a `.npy` batch through a plan, in bounded memory, with reading, computing and
//! writing overlapped.
//!
//! Three threads share the work: one reads chunk i+1 into a recycled buffer while the
//! caller's thread computes chunk i through [`Plan::forward_stream`] and a third writes the
//! outputs of chunk i−1. Bounded channels between them keep at most a few chunks in memory.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread;

use ndarray::{Array2, ArrayView2};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::execution::StreamBatch;
use crate::graph::label_head::LabelHead;
use crate::io::npy::{LabelWriter, NpyReader, NpyWriter};
use crate::plan::Plan;

/// Input buffers in circulation: one being read, one waiting, one being computed.
const INPUT_BUFFERS: usize = 3;
/// On the CPU, the most bytes of f32 input read per chunk: all the buffers in circulation
/// fit in the last-level cache, so the compute reads each chunk from cache right after it
/// was read from the file. Measured on the 2-core EPYC (32 MiB L3): the 784->1 file job
/// took 0.13-0.15 s with chunks of 0.8-3 MB and 0.20-0.36 s with 13 MB ones (4,096 rows).
const CPU_CHUNK_BYTES: usize = 2 << 20;
/// Outputs that may wait for the writer before the computing thread waits.
const OUTPUTS_QUEUED: usize = 2;

/// Runs `plan` over every row of the `.npy` file `input` and writes the outputs to the
/// `.npy` file `output` (f32), atomically. Returns the output shape.
///
/// Rows are read `chunk_rows` at a time (on the CPU, at most 2 MiB of them, so that a chunk
/// is still in cache when it is computed) and streamed through [`Plan::forward_stream`]:
/// reading the next chunk, computing this one and writing the last overlap, and memory
/// stays bounded however large the input. `progress(rows_done, rows_total)` is
/// called after each chunk is computed and handed to the writer. The input is checked
/// (rows, width) before the output is created, and on any error (reading, computing,
/// writing) no output file is left behind.
///
/// ```
/// use ndarray::array;
/// use vecprop::{io, Activation, Device, Network, PlanOptions};
///
/// let dir = std::env::temp_dir();
/// let (x, y) = (dir.join(format!("vecprop-fwd-x-{}.npy", std::process::id())),
///               dir.join(format!("vecprop-fwd-y-{}.npy", std::process::id())));
/// io::write_npy(&x, &array![[200.0, 17.0]])?;
/// let net = Network::builder(2)
///     .layer_with(array![[1.0, -3.0, 5.0], [-2.0, 4.0, -6.0]], array![-1.0, 1.0, 2.0], Activation::Sigmoid)
///     .build()?;
/// let plan = net.compile(&Device::cpu(), PlanOptions::default())?;
/// assert_eq!(io::forward_npy(&plan, &x, &y, 4096, |_, _| {})?, (1, 3));
/// assert_eq!(io::read_npy(&y)?.mapv(f32::round), array![[1.0, 0.0, 1.0]]);
/// # std::fs::remove_file(&x).unwrap(); std::fs::remove_file(&y).unwrap();
/// # Ok::<(), vecprop::Error>(())
/// ```
pub fn forward_npy(
    plan: &Plan,
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    chunk_rows: usize,
    progress: impl FnMut(usize, usize),
) -> Result<(usize, usize)> {
    check_batch_size(chunk_rows)?;
    let reader = NpyReader::open(input)?;
    forward_npy_from(plan, reader, output, chunk_rows, progress)
}

/// Like [`forward_npy`], from an open reader: a file, or a pipe or stdin through
/// [`NpyReader::from_reader`]. The rows are read front to back, once.
pub fn forward_npy_from(
    plan: &Plan,
    reader: NpyReader,
    output: impl AsRef<Path>,
    chunk_rows: usize,
    progress: impl FnMut(usize, usize),
) -> Result<(usize, usize)> {
    check_batch_size(chunk_rows)?;
    let (rows, cols) = check_input(plan, &reader)?;
    if rows == 0 {
        // No rows in, no rows out, as in PyTorch: an empty but complete output.
        NpyWriter::create_with_rows(output, plan.output_width(), 0)?.finish()?;
        return Ok((0, plan.output_width()));
    }
    // The row count is known up front, so a stream (stdout, a FIFO) never needs its header
    // rewritten.
    let writer = NpyWriter::create_with_rows(output, plan.output_width(), rows)?;
    let writer = overlap(
        plan,
        reader,
        writer,
        chunk_for(plan, cols, chunk_rows, rows),
        progress,
    )?;
    writer.finish()?;
    Ok((rows, plan.output_width()))
}

/// Like [`forward_npy`], writing each row's class label through `head` instead of its
/// values: an int64 `.npy` of shape `(rows,)`, or `(rows, 1)` with `column`. Returns the
/// number of rows.
pub fn forward_npy_labels(
    plan: &Plan,
    head: &LabelHead,
    column: bool,
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    chunk_rows: usize,
    progress: impl FnMut(usize, usize),
) -> Result<usize> {
    check_batch_size(chunk_rows)?;
    if head.classes().len() != plan.output_width() {
        return Err(Error::InvalidArgument(format!(
            "a label head of {} classes for a network of {} outputs",
            head.classes().len(),
            plan.output_width()
        )));
    }
    let reader = NpyReader::open(input)?;
    let (rows, cols) = check_input(plan, &reader)?;
    let writer = LabelWriter::create(output, rows, column)?;
    if rows == 0 {
        writer.finish()?;
        return Ok(0);
    }
    let sink = Labelling { head, writer };
    let sink = overlap(
        plan,
        reader,
        sink,
        chunk_for(plan, cols, chunk_rows, rows),
        progress,
    )?;
    sink.writer.finish()
}

/// The input's shape, checked against the plan's width.
fn check_input(plan: &Plan, reader: &NpyReader) -> Result<(usize, usize)> {
    let (rows, cols) = reader.shape();
    if cols != plan.input_width() {
        return Err(Error::InputWidth {
            expected: plan.input_width(),
            actual: cols,
        });
    }
    Ok((rows, cols))
}

/// Rows per chunk: on the CPU, no more than fit [`CPU_CHUNK_BYTES`]; never more than `rows`.
fn chunk_for(plan: &Plan, cols: usize, chunk_rows: usize, rows: usize) -> usize {
    let chunk = match plan.device() {
        Device::Cpu(_) => chunk_rows.min((CPU_CHUNK_BYTES / (cols * 4).max(1)).max(1)),
        _ => chunk_rows,
    };
    chunk.min(rows)
}

/// Where computed chunks go: the writing thread hands each to its sink, in order.
trait Sink: Send {
    fn write(&mut self, y: ArrayView2<'_, f32>) -> Result<()>;
}

impl Sink for NpyWriter {
    fn write(&mut self, y: ArrayView2<'_, f32>) -> Result<()> {
        self.write_rows(y)
    }
}

/// Each row's label, written as int64.
struct Labelling<'h> {
    head: &'h LabelHead,
    writer: LabelWriter,
}

impl Sink for Labelling<'_> {
    fn write(&mut self, y: ArrayView2<'_, f32>) -> Result<()> {
        self.writer.write_labels(&self.head.labels(y)?)
    }
}

/// Reads, computes and writes on three threads; returns the sink with every row written.
fn overlap<S: Sink>(
    plan: &Plan,
    reader: NpyReader,
    mut writer: S,
    chunk: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<S> {
    let rows = reader.rows();
    thread::scope(|scope| {
        let (filled_tx, filled_rx) = mpsc::sync_channel(1);
        let (free_tx, free_rx) = mpsc::channel();
        let reading = scope.spawn(move || read_ahead(reader, chunk, filled_tx, free_rx));
        let (output_tx, output_rx) = mpsc::sync_channel::<Array2<f32>>(OUTPUTS_QUEUED);
        let writing = scope.spawn(move || -> Result<S> {
            for y in output_rx {
                writer.write(y.view())?;
            }
            Ok(writer)
        });

        let batches = filled_rx.into_iter().map(|filled: Result<Array2<f32>>| {
            filled.map(|array| Recycled {
                array,
                home: free_tx.clone(),
            })
        });
        let mut done = 0;
        let computed = plan.forward_stream(batches, |y| {
            done += y.nrows();
            output_tx
                .send(y)
                .map_err(|_| Error::InvalidArgument("internal: the writer stopped".into()))?;
            progress(done, rows);
            Ok(())
        });
        // Everything the writer will get has been sent, and the reader sees its consumer gone.
        drop(output_tx);
        drop(free_tx);
        let written = writing
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        reading
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        match (computed, written) {
            // A failed write is the cause of the compute side's "writer stopped".
            (_, Err(write_error)) => Err(write_error),
            (Err(error), Ok(_)) => Err(error),
            (Ok(()), Ok(writer)) if done == rows => Ok(writer),
            (Ok(()), Ok(_)) => Err(Error::InvalidArgument(format!(
                "internal: {done} of {rows} rows came through the stream"
            ))),
        }
    })
}

/// The reading thread: fills chunks of `chunk` rows in order and sends them on, reusing
/// the buffers the consumer hands back. Stops at the end, at the first error (which it
/// sends), or when the consumer is gone.
fn read_ahead(
    mut reader: NpyReader,
    chunk: usize,
    filled: SyncSender<Result<Array2<f32>>>,
    free: Receiver<Array2<f32>>,
) {
    let (rows, cols) = reader.shape();
    let mut allocated = 0;
    let mut next = 0;
    while next < rows {
        let n = chunk.min(rows - next);
        let buffer = if allocated < INPUT_BUFFERS {
            allocated += 1;
            None
        } else {
            match free.recv() {
                Ok(buffer) => Some(buffer),
                Err(_) => return,
            }
        };
        let mut buffer = match buffer {
            Some(buffer) if buffer.nrows() == n => buffer,
            _ => Array2::zeros((n, cols)),
        };
        let read = reader.read_rows_into(next, buffer.view_mut());
        let failed = read.is_err();
        if filled.send(read.map(|()| buffer)).is_err() || failed {
            return;
        }
        next += n;
    }
}

/// An input chunk that goes back to the reading thread for reuse once computed.
struct Recycled {
    array: Array2<f32>,
    home: Sender<Array2<f32>>,
}

impl StreamBatch for Recycled {
    fn batch_view(&self) -> ArrayView2<'_, f32> {
        self.array.view()
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let array = std::mem::take(&mut self.array);
        // The reader may have finished; then the buffer is simply freed.
        let _ = self.home.send(array);
    }
}

/// Errors for a batch size of 0, which every streamed job refuses before opening a file.
fn check_batch_size(chunk_rows: usize) -> Result<()> {
    if chunk_rows == 0 {
        return Err(Error::InvalidArgument(
            "the batch size must be at least 1".into(),
        ));
    }
    Ok(())
}
