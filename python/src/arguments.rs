//! The keyword arguments shared by `load` and `from_arrays`: device, activations, dtype.

use pyo3::prelude::*;
use pyo3::types::PyString;
use vecprop::activation::parse_list;
use vecprop::{Activation, DType, Device};

use crate::errors::{invalid_argument, to_py};

/// A device and the canonical name `Model.device` reports for it (`cpu`, `cuda:N`).
pub(crate) fn device(spec: &str) -> PyResult<(Device, String)> {
    let device: Device = spec.parse().map_err(to_py)?;
    let spec = spec.trim().to_ascii_lowercase();
    let name = match spec.strip_prefix("cuda:") {
        _ if !device.is_cuda() => "cpu".to_string(),
        // The library has parsed the ordinal already; this cannot fail.
        Some(ordinal) => format!("cuda:{}", ordinal.parse::<usize>().unwrap_or_default()),
        None => "cuda:0".to_string(),
    };
    Ok((device, name))
}

/// Activations given as `"sigmoid,relu"` or `["sigmoid", "relu"]`.
pub(crate) fn activations(list: &Bound<'_, PyAny>) -> PyResult<Vec<Activation>> {
    if let Ok(joined) = list.cast::<PyString>() {
        return parse_list(&joined.to_cow()?).map_err(to_py);
    }
    let names: Vec<String> = list.extract().map_err(|_| {
        invalid_argument(
            "activations must be a comma-separated string or a list of strings \
             (e.g. \"sigmoid,relu,linear\" or [\"sigmoid\", \"relu\", \"linear\"])",
        )
    })?;
    names
        .iter()
        .map(|name| name.parse().map_err(to_py))
        .collect()
}

/// `"f32"`, `"f16"` or `"bf16"`; `None` keeps the model's own precision.
pub(crate) fn dtype(name: Option<&str>) -> PyResult<Option<DType>> {
    name.map(|name| name.parse().map_err(to_py)).transpose()
}

/// A chunk size: at least one row.
pub(crate) fn batch_size(rows: Option<usize>) -> PyResult<Option<usize>> {
    match rows {
        Some(0) => Err(invalid_argument(
            "batch_size must be at least 1 (or None for the default)",
        )),
        other => Ok(other),
    }
}
