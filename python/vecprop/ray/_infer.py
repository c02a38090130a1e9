"""The file job: .npy or Parquet files in, predictions out, on every node of a Ray cluster.

The output directory appears whole or not at all: the job writes to a private directory
beside it and renames that into place only after the write finished and the row count
was checked. Rows keep their order: Ray Data runs with ``preserve_order`` and the files are
named ``part-<task index>`` in row order (``manifest.json`` lists them with their rows).
"""

import dataclasses
import glob
import json
import os
import shutil
import tempfile

import numpy as np

from ._device import AUTO
from ._predictor import OUTPUT_COLUMN, Predictor

NUMPY, PARQUET = "numpy", "parquet"
_FORMATS = {".npy": NUMPY, ".parquet": PARQUET}
MANIFEST = "manifest.json"


@dataclasses.dataclass(frozen=True)
class InferResult:
    """What a finished job wrote: the output directory, its files in row order, the rows."""

    output: str
    files: tuple
    rows: int


class _PartNames:
    """Names the written files ``part-<task index>.<ext>``, which sort in row order."""

    def __init__(self, extension):
        self.extension = extension

    def get_filename_for_task(self, write_uuid, task_index):
        return f"part-{task_index:06}.{self.extension}"

    def get_filename_for_block(self, block, write_uuid, task_index, block_index):
        return f"part-{task_index:06}_{block_index:06}.{self.extension}"

    def get_filename_for_row(self, row, write_uuid, task_index, block_index, row_index):
        raise NotImplementedError("vecprop writes whole blocks, never one file per row")


def input_files(pattern):
    """The files a glob (or a list of globs) names, sorted, and their common format."""
    patterns = [pattern] if isinstance(pattern, (str, os.PathLike)) else list(pattern)
    files = sorted({path for p in patterns for path in glob.glob(os.fspath(p), recursive=True)})
    if not files:
        raise ValueError(f"no input file matches {', '.join(map(str, patterns))}")
    formats = {_FORMATS.get(os.path.splitext(path)[1].lower()) for path in files}
    if None in formats or len(formats) != 1:
        raise ValueError("the inputs must be all .npy or all .parquet files: " + ", ".join(files[:5]))
    return files, formats.pop()


def count_rows(path, format):
    """Rows in one .npy or Parquet file, from its header or footer alone."""
    if format == NUMPY:
        return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0])
    import pyarrow.parquet

    return pyarrow.parquet.read_metadata(path).num_rows


def infer(
    model,
    inputs,
    output,
    *,
    address=None,
    device=AUTO,
    column=None,
    concurrency=None,
    num_gpus=0,
    batch_size=4096,
    output_format=None,
):
    """Predicts every row of ``inputs`` (a glob or list of globs of .npy or Parquet files)
    into the new directory ``output``, and returns an :class:`InferResult`.

    Connects to the cluster at ``address`` ("auto" for the local node's cluster) or starts
    a local Ray when none runs. ``concurrency`` actors (default: one per node's CPUs as Ray
    sees fit, i.e. an autoscaling pool of 1 to the cluster's CPUs) each load ``model`` once;
    ``num_gpus`` per actor gives each a GPU. The output format is the input's unless
    ``output_format`` ("numpy" or "parquet") says otherwise. Raises ``ValueError`` for bad
    arguments and re-raises the job's error, leaving no output directory, if it fails.
    """
    import ray

    files, format = input_files(inputs)
    output = os.path.abspath(os.fspath(output))
    output_format = output_format or format
    if output_format not in (NUMPY, PARQUET):
        raise ValueError(f"unknown output format {output_format!r}: numpy or parquet")
    if os.path.lexists(output):
        raise ValueError(f"{output} already exists; the job writes a new directory")
    parent = os.path.dirname(output)
    if not os.path.isdir(parent):
        raise ValueError(f"{parent} is not a directory")
    expected_rows = sum(count_rows(path, format) for path in files)

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True

    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.partial-", dir=parent)
    try:
        dataset = ray.data.read_numpy(files) if format == NUMPY else ray.data.read_parquet(files)
        if concurrency is None:
            concurrency = (1, max(1, int(ray.cluster_resources().get("CPU", 1))))
        predicted = dataset.map_batches(
            Predictor,
            fn_constructor_kwargs={"model": model, "device": device, "column": column},
            batch_format="numpy",
            batch_size=batch_size,
            concurrency=concurrency,
            num_gpus=num_gpus,
        )
        names = _PartNames("npy" if output_format == NUMPY else "parquet")
        if output_format == NUMPY:
            predicted.write_numpy(staging, column=OUTPUT_COLUMN, filename_provider=names)
        else:
            predicted.write_parquet(staging, filename_provider=names)
        written = sorted(name for name in os.listdir(staging) if name.startswith("part-"))
        rows = [count_rows(os.path.join(staging, name), output_format) for name in written]
        if sum(rows) != expected_rows:
            raise RuntimeError(
                f"the job wrote {sum(rows)} rows for {expected_rows} input rows; nothing was kept"
            )
        manifest = {"rows": expected_rows, "files": [{"name": n, "rows": r} for n, r in zip(written, rows)]}
        with open(os.path.join(staging, MANIFEST), "w") as handle:
            json.dump(manifest, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return InferResult(output, tuple(os.path.join(output, name) for name in written), expected_rows)
