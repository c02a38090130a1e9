"""Type stubs for vecprop (the Rust extension module vecprop._vecprop)."""

import os
from typing import Any, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Floats = Union[npt.NDArray[np.float32], npt.NDArray[np.float64]]
_Activations = Union[str, Sequence[str]]
_DType = Literal["f32", "f16", "bf16"]

class VecpropError(ValueError):
    """Raised for every error vecprop reports, with the library's own message."""

class Model:
    """A dense network compiled for a device. Call it on a 2-D batch (one example per row)."""

    @property
    def input_width(self) -> int:
        """Features per input example: the number of columns ``x`` must have."""
    @property
    def output_width(self) -> int:
        """Values per output example: the number of columns of the result."""
    @property
    def device(self) -> str:
        """Where the model runs: ``"cpu"`` or ``"cuda:N"``."""
    def __call__(self, x: _Floats) -> npt.NDArray[np.float32]:
        """Same as ``predict(x)``."""
    def predict(
        self, x: _Floats, batch_size: Optional[int] = None
    ) -> npt.NDArray[np.float32]:
        """Runs the network on ``x``, a 2-D float32 or float64 array in C or Fortran order.

        Returns a new float32 array of shape (rows, output_width). A C-contiguous float32
        ``x`` is read without a copy; any number of rows is computed in chunks of
        ``batch_size`` rows (default: the model's). The GIL is released meanwhile.
        Raises VecpropError for a wrong dtype, dimensionality or width; an empty batch gives
        an empty result.
        """
    def summary(self) -> str:
        """A Keras-style table of the layers, their output shapes and parameter counts."""
    def save(self, path: Union[str, os.PathLike[str]]) -> None:
        """Writes the network to a safetensors file, atomically."""

def load(
    path: Union[str, os.PathLike[str]],
    device: str = "cpu",
    activations: Optional[_Activations] = None,
    batch_size: Optional[int] = None,
    dtype: Optional[_DType] = None,
) -> Model:
    """Loads a model file (the format the CLI reads) and compiles it for ``device``.

    ``device`` is "cpu", "cuda" or "cuda:N"; ``activations`` (a comma-separated string or a
    list) overrides the file's metadata; ``batch_size`` is the most rows one pass computes;
    ``dtype`` ("f32", "f16", "bf16") is the compute precision, by default the file's.
    """

def from_arrays(
    layers: Sequence[Tuple[_Floats, _Floats]],
    activations: _Activations,
    device: str = "cpu",
    dtype: Optional[_DType] = None,
) -> Model:
    """Builds a model from (W, b) pairs, W shaped (inputs, units), b shaped (units,)."""

def devices() -> list[str]:
    """The devices this build can run on: "cpu", then "cuda:N" per usable GPU (one driver query)."""

def gpus() -> list[dict[str, Any]]:
    """What the driver reports about each GPU, asked once: device, name, compute_capability,
    memory_bytes, multiprocessors, usable. Empty without the `cuda` feature or a driver."""
