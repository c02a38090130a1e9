//! `vecprop.VecpropError`: every error the library reports, as one Python exception.

use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

pyo3::create_exception!(
    vecprop,
    VecpropError,
    PyValueError,
    "Raised for every error vecprop reports (bad input, unreadable model files, unknown \
     activations or devices, device failures). A subclass of ValueError whose message is \
     the library's own."
);

/// Converts the library's error into a `VecpropError` with the same message.
pub(crate) fn to_py(err: vecprop::Error) -> PyErr {
    let hint = match err {
        // The library's message names the CLI's flag; say the keyword too.
        vecprop::Error::MissingActivations { .. } => {
            " (from Python: vecprop.load(path, activations=\"sigmoid,relu,linear\"))"
        }
        _ => "",
    };
    VecpropError::new_err(format!("{err}{hint}"))
}

/// A `VecpropError` for a bad argument that the library itself never sees.
pub(crate) fn invalid_argument(message: impl Into<String>) -> PyErr {
    to_py(vecprop::Error::InvalidArgument(message.into()))
}
