//! Turning cudarc's driver and cuBLAS errors into vecprop's [`Error::Cuda`], and keeping
//! the errors that `Drop` implementations cannot return until the next synchronisation.

use std::fmt::Debug;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Adds what vecprop was doing to a cudarc error.
pub(crate) trait CudaResultExt<T> {
    /// Maps the error to [`Error::Cuda`] with `context` (e.g. "loading module epilogue").
    fn during(self, context: &str) -> Result<T>;
}

impl<T, E: Debug> CudaResultExt<T> for std::result::Result<T, E> {
    fn during(self, context: &str) -> Result<T> {
        // cudarc's `Debug` carries both the enum name and the driver's description, e.g.
        // `DriverError(CUDA_ERROR_OUT_OF_MEMORY, "out of memory")`.
        self.map_err(|err| Error::Cuda {
            context: context.to_string(),
            message: format!("{err:?}"),
        })
    }
}

/// Errors raised while releasing a resource in `Drop`, where they cannot be returned.
/// They surface at the next [`DropErrors::take`], which synchronisation calls.
#[derive(Debug, Default)]
pub(crate) struct DropErrors {
    pending: Mutex<Vec<String>>,
}

impl DropErrors {
    /// Keeps `result`'s error, if any, with what was being released.
    pub(crate) fn record<E: Debug>(&self, what: &str, result: std::result::Result<(), E>) {
        if let Err(err) = result {
            self.lock().push(format!("{what}: {err:?}"));
        }
    }

    /// Returns (and clears) the errors recorded since the last call, as one error.
    pub(crate) fn take(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.lock());
        if pending.is_empty() {
            Ok(())
        } else {
            Err(Error::Cuda {
                context: "releasing GPU resources (reported at the next synchronisation)"
                    .to_string(),
                message: pending.join("; "),
            })
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // A panic while holding this lock cannot leave the Vec invalid.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}
