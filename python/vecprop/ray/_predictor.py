"""A callable class for ``ray.data.Dataset.map_batches``: one model per actor."""

import numpy as np

from ._default_model import load_model
from ._device import AUTO, assigned_device

#: Name of the tensor column the predictions are written to, unless told otherwise.
OUTPUT_COLUMN = "output"


class Predictor:
    """Runs a vecprop model over Ray Data batches.

    Use it as the class of ``map_batches`` with ``batch_format="numpy"``::

        ds.map_batches(vecprop.ray.Predictor, fn_constructor_kwargs={"model": "m.safetensors"},
                       batch_format="numpy", concurrency=2)

    With ``compute=ray.data.ActorPoolStrategy(size=N, max_concurrent_calls_per_actor=2)``
    instead of ``concurrency=N``, Ray prepares the next batch while the model computes
    this one (the model still runs one batch at a time, on every core), as
    :func:`vecprop.ray.infer` does.

    The model is loaded once, when Ray builds the actor. Each batch is a dict of column
    arrays (or a bare 2-D array); the input is ``column`` or, by default, the batch's only
    2-D (tensor) column. The result keeps the batch's other columns, drops the input (unless
    ``keep_input``) and adds the predictions as ``output_column``, a (rows, outputs) float32
    tensor column. The read-only float32 arrays Ray hands out from its object store are
    read in place, never copied.

    ``device`` is "auto" (the GPU Ray assigned to the actor, i.e. ``num_gpus=1`` gives
    ``cuda:<that GPU>``, else the CPU), "cpu", "cuda" or "cuda:N". ``activations``,
    ``batch_size`` and ``dtype`` go to ``vecprop.load``. ``loader(model, device)`` replaces
    ``vecprop.load`` with any object whose call maps a 2-D array to a 2-D array (used to run
    other engines under the same job, for comparisons).
    """

    def __init__(
        self,
        model=None,
        device=AUTO,
        column=None,
        output_column=OUTPUT_COLUMN,
        keep_input=False,
        activations=None,
        batch_size=None,
        dtype=None,
        loader=None,
    ):
        self.device = assigned_device(device)
        if loader is None:
            self.model = load_model(
                model, self.device, activations=activations, batch_size=batch_size, dtype=dtype
            )
        else:
            self.model = loader(model, self.device)
        self.column = column
        self.output_column = output_column
        self.keep_input = keep_input

    def __call__(self, batch):
        """Predicts one batch: a dict of column arrays, or a 2-D array."""
        if isinstance(batch, np.ndarray):
            return {self.output_column: self.model(batch)}
        name = self.input_column(batch)
        kept = {key: value for key, value in batch.items() if self.keep_input or key != name}
        if self.output_column in kept:
            raise ValueError(
                f"the batch already has a column {self.output_column!r}; pass output_column=..."
            )
        kept[self.output_column] = self.model(as_matrix(batch[name]))
        return kept

    def input_column(self, batch):
        """The name of the column to predict from: ``column``, or the only tensor column."""
        if self.column is not None:
            if self.column not in batch:
                raise ValueError(
                    f"no column {self.column!r} in the batch (columns: {', '.join(batch)})"
                )
            return self.column
        tensors = [key for key, value in batch.items() if np.ndim(value) == 2 or _is_row_list(value)]
        if len(tensors) != 1:
            found = ", ".join(f"{key} {np.shape(value)}" for key, value in batch.items())
            raise ValueError(
                "pass column=...: the input must be the batch's only 2-D column, "
                f"and the batch has {len(tensors)} ({found})"
            )
        return tensors[0]


def _is_row_list(value):
    """Whether ``value`` is a column of equal-length 1-D arrays (how Ray hands out a
    Parquet list column), rather than a tensor column."""
    return (
        isinstance(value, np.ndarray)
        and value.ndim == 1
        and value.dtype == object
        and len(value) > 0
        and all(isinstance(row, np.ndarray) and row.ndim == 1 for row in value)
        and len({len(row) for row in value}) == 1
    )


def as_matrix(value):
    """A tensor column as it is (read in place), or a column of rows stacked into one."""
    return np.stack(value) if _is_row_list(value) else value
