"""vecprop on Ray: batch inference on Ray Data and online serving on Ray Serve.

Install with ``pip install "./python[ray]"``; the core ``vecprop`` package never imports
ray, this subpackage does.

* :class:`Predictor`: a callable class for ``Dataset.map_batches``: loads the model once per
  actor and maps a tensor column (or a 2-D array) to an ``output`` tensor column.
* :func:`infer`, also ``python -m vecprop.ray infer``: a whole file job (``.npy`` or Parquet
  in, the same format out), order and row count kept, the output directory complete or absent.
* :func:`deployment` and the builder :func:`app` (``serve run vecprop.ray:app model=...``):
  a Ray Serve deployment that merges concurrent HTTP requests into one forward pass.

``model`` is a model file path everywhere, or ``None`` for :func:`default_model`, the
784-512-256-10 network of ``vecprop demo``'s timed part (random, seeded weights).
"""

import importlib

from ._default_model import default_model
from ._device import assigned_device
from ._infer import InferResult, infer
from ._predictor import Predictor

#: Loaded on first use: ray.serve costs a Ray Data actor 0.6 s of start-up to import
#: (measured 2026-12-08), and a Predictor never needs it.
_SERVE_NAMES = ("VecpropServer", "app", "deployment")


def __getattr__(name):
    if name in _SERVE_NAMES:
        return getattr(importlib.import_module("._serve", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "InferResult",
    "Predictor",
    "VecpropServer",
    "app",
    "assigned_device",
    "default_model",
    "deployment",
    "infer",
]
