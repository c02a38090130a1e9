//! NumPy arrays in, ndarray views out: float32 is borrowed in place, float64 converted.

use ndarray::{Array, ArrayView, CowArray, Dimension};
use numpy::{PyArray, PyArrayMethods, PyReadonlyArray, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::{invalid_argument, to_py};

/// A NumPy array of float32 or float64 with `D` dimensions, borrowed read-only from Python
/// for as long as this value lives.
pub(crate) enum Floats<'py, D: Dimension> {
    F32(PyReadonlyArray<'py, f32, D>),
    F64(PyReadonlyArray<'py, f64, D>),
}

/// What an array argument is for, so that a wrong one is reported in its own terms.
pub(crate) enum Role<'a> {
    /// The input batch of a forward pass: rank and dtype errors are the library's own.
    Batch,
    /// A layer parameter such as `layers[0][0] (W, shaped inputs x units)`.
    Parameter(&'a str),
}

impl<'py, D: Dimension> Floats<'py, D> {
    /// Borrows `object` if it is a float32 or float64 ndarray with `D` dimensions, and
    /// says precisely what is wrong otherwise.
    pub(crate) fn extract(object: &Bound<'py, PyAny>, role: Role<'_>) -> PyResult<Self> {
        let Ok(array) = object.cast::<PyUntypedArray>() else {
            let type_name = object.get_type().name()?;
            return Err(invalid_argument(format!(
                "{} must be a numpy.ndarray of float32 or float64, not {type_name}",
                role.describe()
            )));
        };
        let expected_rank = D::NDIM.unwrap_or(array.ndim());
        if array.ndim() != expected_rank {
            return Err(role.rank_error(expected_rank, array.shape()));
        }
        // Unaligned data cannot be viewed from Rust; NumPy's own copy is aligned.
        if !array.is_aligned() {
            return Self::extract(&object.call_method0("copy")?, role);
        }
        if let Ok(f32s) = object.cast::<PyArray<f32, D>>() {
            return Ok(Floats::F32(f32s.try_readonly().map_err(borrow_error)?));
        }
        if let Ok(f64s) = object.cast::<PyArray<f64, D>>() {
            return Ok(Floats::F64(f64s.try_readonly().map_err(borrow_error)?));
        }
        Err(to_py(vecprop::Error::UnsupportedDType {
            dtype: array.dtype().str()?.to_string(),
            context: role.describe(),
            supported: "float32, float64 (native byte order)",
        }))
    }

    /// A view of the data, which may cross into code that runs without the GIL.
    pub(crate) fn view(&self) -> FloatsView<'_, D> {
        match self {
            Floats::F32(array) => FloatsView::F32(array.as_array()),
            Floats::F64(array) => FloatsView::F64(array.as_array()),
        }
    }
}

/// A view of a float32 or float64 array; `Send`, unlike the borrow it comes from.
pub(crate) enum FloatsView<'a, D: Dimension> {
    F32(ArrayView<'a, f32, D>),
    F64(ArrayView<'a, f64, D>),
}

impl<'a, D: Dimension> FloatsView<'a, D> {
    /// The data as row-major float32: the array itself when it already is (no copy),
    /// otherwise a converted copy.
    pub(crate) fn to_row_major_f32(&self) -> CowArray<'a, f32, D> {
        match self {
            FloatsView::F32(view) if view.is_standard_layout() => CowArray::from(view.clone()),
            FloatsView::F32(view) => CowArray::from(convert(view, |v| v)),
            FloatsView::F64(view) => CowArray::from(convert(view, |v| v as f32)),
        }
    }
}

/// A row-major copy of `view` with each element passed through `cast`.
fn convert<T: Copy, D: Dimension>(view: &ArrayView<'_, T, D>, cast: fn(T) -> f32) -> Array<f32, D> {
    let mut out = Array::zeros(view.raw_dim());
    out.zip_mut_with(view, |o, &v| *o = cast(v));
    out
}

impl Role<'_> {
    fn describe(&self) -> String {
        match self {
            Role::Batch => "the input batch".to_string(),
            Role::Parameter(name) => (*name).to_string(),
        }
    }

    fn rank_error(&self, expected: usize, shape: &[usize]) -> PyErr {
        match self {
            Role::Batch => to_py(vecprop::Error::InputRank {
                ndim: shape.len(),
                shape: shape.to_vec(),
            }),
            Role::Parameter(name) => invalid_argument(format!(
                "{name} must be a {expected}-D array, but it has shape {shape:?}"
            )),
        }
    }
}

fn borrow_error(err: numpy::BorrowError) -> PyErr {
    invalid_argument(format!("cannot read the array: {err}"))
}
