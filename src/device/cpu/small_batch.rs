//! A whole small batch through every layer on two cores, the units of each layer split
//! between the calling thread and one [`SpinWorker`].
//!
//! The worker reads the layer's input from a buffer both threads share (read-locked by both,
//! written only between layers), computes its panels into its own buffer, and the caller
//! copies those columns into place after its own half; then the next layer starts. Copying
//! the worker's half costs `rows × units / 2` floats per layer, far less than the layer.
//! Buffers grow to the largest batch seen and are reused, so a call allocates nothing.

use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock};

use ndarray::{s, ArrayView2, ArrayViewMut2};

use super::epilogue::activation_only;
use super::layer::CpuDense;
use super::packed::PANEL;
use super::panel::panel_dense;
use super::spin_worker::SpinWorker;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// What the worker computes: layer `layer`'s `panels` for `rows` rows read from
/// `activations[source]`.
#[derive(Clone, Debug)]
struct Job {
    rows: usize,
    layer: usize,
    source: usize,
    panels: Range<usize>,
}

/// What both threads see.
struct Shared {
    layers: Arc<[CpuDense]>,
    /// Each layer's input; layer `i` reads `activations[i % 2]` and writes the other.
    activations: [RwLock<Vec<f32>>; 2],
    /// The worker's columns of the current layer, `rows × (its units)`.
    worker_out: Mutex<Vec<f32>>,
}

/// The calling thread plus one spinning helper, for batches of at most
/// [`super::SMALL_BATCH_ROWS`] rows.
pub(super) struct SmallBatchRunner {
    shared: Arc<Shared>,
    worker: SpinWorker<Job>,
}

impl SmallBatchRunner {
    /// Starts the helper thread for `layers`.
    pub(super) fn new(layers: Arc<[CpuDense]>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            layers,
            activations: [RwLock::new(Vec::new()), RwLock::new(Vec::new())],
            worker_out: Mutex::new(Vec::new()),
        });
        let worker_shared = Arc::clone(&shared);
        let worker = SpinWorker::spawn("vecprop-small-batch", move |job: Job| {
            worker_shared.run_worker_part(job)
        })?;
        Ok(SmallBatchRunner { shared, worker })
    }

    /// Runs every layer on `input`, storing values in `storage` between layers, into `output`.
    pub(super) fn run(
        &self,
        input: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
        storage: DType,
    ) -> Result<()> {
        let rows = input.nrows();
        let layers = &self.shared.layers;
        {
            let mut first = write(&self.shared.activations[0]);
            grow(&mut first, rows * input.ncols());
            let mut stored = ArrayViewMut2::from_shape(input.dim(), &mut first[..input.len()])
                .map_err(shape_error)?;
            stored.zip_mut_with(&input, |s, &x| *s = storage.round(x));
        }
        let last = layers.len() - 1;
        for (index, layer) in layers.iter().enumerate() {
            let source = index % 2;
            let panels = layer.panels();
            let split = layer.split_point(rows);
            if split < panels {
                self.worker.post(Job {
                    rows,
                    layer: index,
                    source,
                    panels: split..panels,
                });
            }
            let mut next = (index != last).then(|| write(&self.shared.activations[1 - source]));
            let mut target = match next.as_mut() {
                Some(next) => {
                    grow(next, rows * layer.units());
                    ArrayViewMut2::from_shape(
                        (rows, layer.units()),
                        &mut next[..rows * layer.units()],
                    )
                    .map_err(shape_error)?
                }
                None => output.view_mut(),
            };
            let mine = layer.units().min(split * PANEL);
            let fused = layer.fused_activation();
            {
                let input = read(&self.shared.activations[source]);
                let input = &input[..rows * layer.inputs()];
                let input =
                    ArrayView2::from_shape((rows, layer.inputs()), input).map_err(shape_error)?;
                panel_dense(
                    input,
                    layer.packed(),
                    0..split,
                    fused,
                    target.slice_mut(s![.., ..mine]),
                );
            }
            if split < panels {
                let taken_back = self.worker.take_back_or_wait().map_err(|_| {
                    Error::InvalidArgument(
                        "the small-batch helper thread failed (a vecprop bug: please report it)"
                            .into(),
                    )
                })?;
                if let Some(job) = taken_back {
                    self.shared.run_worker_part(job);
                }
                let theirs = self
                    .shared
                    .worker_out
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let width = layer.units() - mine;
                let theirs = ArrayView2::from_shape((rows, width), &theirs[..rows * width])
                    .map_err(shape_error)?;
                target.slice_mut(s![.., mine..]).assign(&theirs);
            }
            if fused != layer.activation() {
                activation_only(target.view_mut(), layer.activation());
            }
            if storage != DType::F32 {
                target.mapv_inplace(|v| storage.round(v));
            }
        }
        Ok(())
    }
}

impl Shared {
    fn run_worker_part(&self, job: Job) {
        let layer = &self.layers[job.layer];
        let input = read(&self.activations[job.source]);
        let input = ArrayView2::from_shape(
            (job.rows, layer.inputs()),
            &input[..job.rows * layer.inputs()],
        )
        .expect("the caller sized the shared input");
        let first = job.panels.start * PANEL;
        let width = layer.units() - first;
        let mut out = self.worker_out.lock().unwrap_or_else(|p| p.into_inner());
        grow(&mut out, job.rows * width);
        let out = ArrayViewMut2::from_shape((job.rows, width), &mut out[..job.rows * width])
            .expect("just grown");
        panel_dense(
            input,
            layer.packed(),
            job.panels,
            layer.fused_activation(),
            out,
        );
    }
}

/// Grows `buffer` to at least `len` (only the first calls, or a larger batch, allocate).
fn grow(buffer: &mut Vec<f32>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
}

fn read(lock: &RwLock<Vec<f32>>) -> std::sync::RwLockReadGuard<'_, Vec<f32>> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write(lock: &RwLock<Vec<f32>>) -> std::sync::RwLockWriteGuard<'_, Vec<f32>> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn shape_error(err: ndarray::ShapeError) -> Error {
    Error::InvalidArgument(format!("small-batch buffer of the wrong size: {err}"))
}
