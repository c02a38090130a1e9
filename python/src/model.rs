//! `vecprop.Model`: a network compiled for one device, callable on NumPy batches.

use std::path::PathBuf;

use ndarray::{s, Array2, Ix2};
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;
use vecprop::{Network, Plan, PlanOptions};

use crate::arguments;
use crate::arrays::{Floats, Role};
use crate::errors::to_py;

/// A dense network compiled for a device, ready to run batches.
///
/// Build one with `vecprop.load` or `vecprop.from_arrays`. Calling it runs the forward
/// pass on a 2-D float32 or float64 array (one example per row) and returns a new float32
/// array of shape (rows, output_width). The GIL is released while it computes, and one
/// Model may be called from several threads at once.
#[pyclass(frozen, module = "vecprop")]
pub(crate) struct Model {
    network: Network,
    plan: Plan,
    device: String,
}

impl Model {
    /// Compiles `network` for the device named `device`.
    pub(crate) fn compile(
        py: Python<'_>,
        network: Network,
        device: &str,
        dtype: Option<&str>,
        batch_size: Option<usize>,
    ) -> PyResult<Self> {
        let (device, name) = arguments::device(device)?;
        let mut options = PlanOptions {
            dtype: arguments::dtype(dtype)?,
            ..PlanOptions::default()
        };
        if let Some(rows) = arguments::batch_size(batch_size)? {
            options.max_batch = rows;
        }
        let plan = py
            .detach(|| network.compile(&device, options))
            .map_err(to_py)?;
        Ok(Model {
            network,
            plan,
            device: name,
        })
    }

    /// Runs the plan over `input` in chunks of at most `chunk` rows.
    fn run(
        &self,
        input: ndarray::ArrayView2<'_, f32>,
        chunk: usize,
    ) -> vecprop::Result<Array2<f32>> {
        vecprop::tensor::check_batch(input, self.plan.input_width())?;
        let rows = input.nrows();
        let mut output = Array2::zeros((rows, self.plan.output_width()));
        let mut start = 0;
        while start < rows {
            let end = rows.min(start + chunk);
            self.plan.forward_into(
                input.slice(s![start..end, ..]),
                output.slice_mut(s![start..end, ..]),
            )?;
            start = end;
        }
        Ok(output)
    }
}

#[pymethods]
impl Model {
    /// model(x) -> numpy.ndarray
    ///
    /// Same as `model.predict(x)`.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        self.predict(py, x, None)
    }

    /// predict(x, batch_size=None) -> numpy.ndarray
    ///
    /// Runs the network on `x`, a 2-D float32 or float64 array in C or Fortran order with
    /// one example per row, and returns a new float32 array of shape (rows, output_width).
    /// A C-contiguous float32 `x` is read in place, without a copy. Batches of any size
    /// are computed in chunks of `batch_size` rows (default: the model's batch size).
    /// Raises VecpropError for a wrong dtype, dimensionality or width; an empty batch gives
    /// an empty result.
    #[pyo3(signature = (x, batch_size=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        batch_size: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let chunk = arguments::batch_size(batch_size)?.unwrap_or(usize::MAX);
        let input = Floats::<Ix2>::extract(x, Role::Batch)?;
        let view = input.view();
        let output = py
            .detach(|| self.run(view.to_row_major_f32().view(), chunk))
            .map_err(to_py)?;
        Ok(output.into_pyarray(py))
    }

    /// summary() -> str
    ///
    /// A Keras-style table of the layers, their output shapes and parameter counts.
    fn summary(&self) -> String {
        self.network.summary()
    }

    /// save(path) -> None
    ///
    /// Writes the network to a safetensors file (the format `vecprop.load` and the CLI
    /// read), atomically: a failed write leaves no partial file behind.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| vecprop::io::save_model(&self.network, &path))
            .map_err(to_py)
    }

    /// Features per input example: the number of columns `x` must have.
    #[getter]
    fn input_width(&self) -> usize {
        self.plan.input_width()
    }

    /// Values per output example: the number of columns of the result.
    #[getter]
    fn output_width(&self) -> usize {
        self.plan.output_width()
    }

    /// Where the model runs: "cpu" or "cuda:N".
    #[getter]
    fn device(&self) -> &str {
        &self.device
    }

    fn __repr__(&self) -> String {
        format!(
            "Model(layers={}, input_width={}, output_width={}, device='{}', dtype='{}')",
            self.network.layers().len(),
            self.plan.input_width(),
            self.plan.output_width(),
            self.device,
            self.plan.dtype(),
        )
    }
}
