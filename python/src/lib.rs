//! The `vecprop` Python module: load a dense network, run NumPy batches through it on the
//! CPU or a GPU. Built with PyO3 and maturin as `vecprop._vecprop`; the pure-Python
//! package `vecprop` re-exports it. See python/vecprop/__init__.pyi for the API.

mod arguments;
mod arrays;
mod errors;
mod heap;
mod model;

use std::path::PathBuf;

use ndarray::{Ix1, Ix2};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use vecprop::Network;

use arrays::{Floats, Role};
use errors::{invalid_argument, to_py, VecpropError};
use model::Model;

/// load(path, device="cpu", activations=None, batch_size=None, dtype=None) -> Model
///
/// Loads a model file (safetensors in torch.nn.Linear layout, as the CLI reads) and compiles
/// it for `device` ("cpu", "cuda" or "cuda:N"). `activations`, a comma-separated string or a
/// list, overrides the file's `activations` metadata; `batch_size` is the most rows one pass
/// computes (larger batches run in chunks); `dtype` ("f32", "f16" or "bf16") is the compute
/// precision, by default the file's.
#[pyfunction]
#[pyo3(signature = (path, device="cpu", activations=None, batch_size=None, dtype=None))]
fn load(
    py: Python<'_>,
    path: PathBuf,
    device: &str,
    activations: Option<&Bound<'_, PyAny>>,
    batch_size: Option<usize>,
    dtype: Option<&str>,
) -> PyResult<Model> {
    let activations = activations.map(arguments::activations).transpose()?;
    let network = py
        .detach(|| vecprop::io::load_model(&path, activations.as_deref()))
        .map_err(to_py)?;
    Model::compile(py, network, device, dtype, batch_size)
}

/// from_arrays(layers, activations, device="cpu", dtype=None) -> Model
///
/// Builds a model from a list of (W, b) NumPy pairs, W shaped (inputs, units) and b shaped
/// (units,), and one activation per layer (a list or a comma-separated string).
///
/// >>> import numpy as np, vecprop
/// >>> W = np.array([[1, -3, 5], [-2, 4, -6]], np.float32)
/// >>> b = np.array([-1, 1, 2], np.float32)
/// >>> model = vecprop.from_arrays([(W, b)], ["sigmoid"])
/// >>> model(np.array([[200, 17]], np.float32)).round()
/// array([[1., 0., 1.]], dtype=float32)
#[pyfunction]
#[pyo3(signature = (layers, activations, device="cpu", dtype=None))]
fn from_arrays(
    py: Python<'_>,
    layers: Vec<Bound<'_, PyAny>>,
    activations: &Bound<'_, PyAny>,
    device: &str,
    dtype: Option<&str>,
) -> PyResult<Model> {
    let activations = arguments::activations(activations)?;
    if layers.len() != activations.len() {
        return Err(to_py(vecprop::Error::ActivationCount {
            layers: layers.len(),
            given: activations.len(),
            source_of_list: "the activations argument".into(),
        }));
    }
    let pairs = layers
        .iter()
        .enumerate()
        .map(|(index, pair)| layer_pair(pair, index))
        .collect::<PyResult<Vec<_>>>()?;
    let Some((first, _)) = pairs.first() else {
        return Err(invalid_argument(
            "layers must hold at least one (W, b) pair",
        ));
    };
    let builder = Network::builder(first.nrows());
    let network = pairs
        .into_iter()
        .zip(activations)
        .fold(builder, |builder, ((weight, bias), activation)| {
            builder.layer_with(weight, bias, activation)
        })
        .build()
        .map_err(to_py)?;
    Model::compile(py, network, device, dtype, None)
}

/// Layer `index`'s (W, b) pair as float32 arrays.
fn layer_pair(
    pair: &Bound<'_, PyAny>,
    index: usize,
) -> PyResult<(ndarray::Array2<f32>, ndarray::Array1<f32>)> {
    let (weight, bias): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract().map_err(|_| {
        invalid_argument(format!(
            "layers[{index}] must be a (W, b) pair of numpy arrays"
        ))
    })?;
    let weight_name = format!("layers[{index}] W (shaped inputs x units)");
    let bias_name = format!("layers[{index}] b (shaped units)");
    let weight = Floats::<Ix2>::extract(&weight, Role::Parameter(&weight_name))?;
    let bias = Floats::<Ix1>::extract(&bias, Role::Parameter(&bias_name))?;
    Ok((
        weight.view().to_row_major_f32().into_owned(),
        bias.view().to_row_major_f32().into_owned(),
    ))
}

/// devices() -> list[str]
///
/// The devices this build can run on, as `device=` takes them: "cpu", then "cuda:N" for
/// each GPU the driver reports that the kernels run on (compute capability 8.0+; none when
/// vecprop was built without the `cuda` feature or no driver is present). One query of the
/// driver; no GPU context is created.
#[pyfunction]
fn devices(py: Python<'_>) -> Vec<String> {
    let gpus = py.detach(found_gpus);
    std::iter::once("cpu".to_string())
        .chain(gpus.into_iter().filter(|g| g.usable).map(|g| g.device))
        .collect()
}

/// gpus() -> list[dict]
///
/// What the driver reports about each GPU, asked once: `device` ("cuda:N"), `name`,
/// `compute_capability` ((major, minor)), `memory_bytes`, `multiprocessors`, and `usable`
/// (whether vecprop's kernels run on it). Empty without the `cuda` feature or a driver.
#[pyfunction]
fn gpus(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    let found = py.detach(found_gpus);
    found
        .into_iter()
        .map(|gpu| {
            let dict = PyDict::new(py);
            dict.set_item("device", gpu.device)?;
            dict.set_item("name", gpu.name)?;
            dict.set_item("compute_capability", gpu.compute_capability)?;
            dict.set_item("memory_bytes", gpu.memory_bytes)?;
            dict.set_item("multiprocessors", gpu.multiprocessors)?;
            dict.set_item("usable", gpu.usable)?;
            Ok(dict)
        })
        .collect()
}

/// One GPU as the driver reported it.
struct FoundGpu {
    device: String,
    name: String,
    compute_capability: (i32, i32),
    memory_bytes: usize,
    multiprocessors: usize,
    usable: bool,
}

#[cfg(feature = "cuda")]
fn found_gpus() -> Vec<FoundGpu> {
    // No driver (or a driver error) means no GPU to offer; `vecprop devices` says why.
    let gpus = vecprop::device::cuda::gpus().unwrap_or_default();
    gpus.into_iter()
        .map(|info| FoundGpu {
            device: format!("cuda:{}", info.ordinal),
            usable: info.usable(),
            name: info.name,
            compute_capability: info.compute_capability,
            memory_bytes: info.total_memory,
            multiprocessors: info.multiprocessors,
        })
        .collect()
}

#[cfg(not(feature = "cuda"))]
fn found_gpus() -> Vec<FoundGpu> {
    Vec::new()
}

#[global_allocator]
static ALLOCATOR: heap::CountingAllocator = heap::CountingAllocator;

#[pymodule]
fn _vecprop(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("VecpropError", module.py().get_type::<VecpropError>())?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<Model>()?;
    module.add_function(wrap_pyfunction!(load, module)?)?;
    module.add_function(wrap_pyfunction!(from_arrays, module)?)?;
    module.add_function(wrap_pyfunction!(devices, module)?)?;
    module.add_function(wrap_pyfunction!(gpus, module)?)?;
    module.add_function(wrap_pyfunction!(heap::_heap_peak, module)?)?;
    Ok(())
}
