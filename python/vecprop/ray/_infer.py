"""The file job: .npy or Parquet files in, predictions out, on every node of a Ray cluster.

The output directory appears whole or not at all: the job writes to a private directory
beside it and renames that into place only after the write finished and the row count
was checked. Rows keep their order: Ray Data runs with ``preserve_order`` and the files are
named ``part-<task index>`` in row order (``manifest.json`` lists them with their rows).
"""

import dataclasses
import glob
import json
import logging
import os
import shutil
import tempfile

import numpy as np

from ._default_model import callers_path
from ._device import AUTO
from ._predictor import OUTPUT_COLUMN, Predictor

NUMPY, PARQUET = "numpy", "parquet"
_FORMATS = {".npy": NUMPY, ".parquet": PARQUET}
MANIFEST = "manifest.json"
#: Writes take no CPU slot. Reads take one (Ray Data's read functions fix that), so the
#: actors must leave one free: a read waiting behind actors that hold every slot never runs.
_IO_TASK = {"num_cpus": 0}
_READ_CPUS = 1
#: Calls each actor takes at once. The model still runs one batch at a time (and uses every
#: core), but Ray's batching of the next input and of the last output overlap it: the
#: steady rate of a 1M-row job on 2 cores rose from 262-263k to 279-286k rows/s (2026-12-08).
OVERLAPPED_CALLS = 2


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


def _ordered_parquet_sink(path, names):
    """A Parquet datasink that keeps each write task's rows in order.

    Ray 2.60's own ``write_parquet`` hands each task's blocks to
    ``pyarrow.dataset.write_dataset(use_threads=True)`` without ``preserve_order``, and
    Arrow then writes the blocks in whatever order its threads finish: 2 of 3 runs of a
    3-file, 42,346-row job came out shuffled (2026-12-07). This sink concatenates the task's
    blocks in the order Ray delivers them (as ``write_numpy`` does) and writes them with one
    ``pyarrow.parquet.write_table``, one file per task, named by ``names``.
    """
    import pyarrow.parquet
    from ray.data.datasource import BlockBasedFileDatasink

    class OrderedParquetSink(BlockBasedFileDatasink):
        def write_block_to_file(self, block, file):
            pyarrow.parquet.write_table(block.to_arrow(), file)

    return OrderedParquetSink(path, filename_provider=names, file_format="parquet")


def input_files(pattern):
    """The files a glob (or a list of globs) names, as sorted absolute paths, and their
    common format."""
    patterns = [pattern] if isinstance(pattern, (str, os.PathLike)) else list(pattern)
    # Absolute: Ray's read tasks run in worker processes whose working directory is not ours.
    files = sorted(
        {os.path.abspath(path) for p in patterns for path in glob.glob(os.fspath(p), recursive=True)}
    )
    if not files:
        raise ValueError(f"no input file matches {', '.join(map(str, patterns))}")
    formats = {_FORMATS.get(os.path.splitext(path)[1].lower()) for path in files}
    if None in formats or len(formats) != 1:
        raise ValueError("the inputs must be all .npy or all .parquet files: " + ", ".join(files[:5]))
    return files, formats.pop()


def _actor_pool(concurrency, cpus_per_actor, cluster_cpus):
    """``concurrency`` checked against the cluster, or the default pool (1 to as many as fit)."""
    fit = int((cluster_cpus - _READ_CPUS) // cpus_per_actor) if cpus_per_actor > 0 else 1 << 10
    if fit < 1:
        raise ValueError(
            f"the cluster has {cluster_cpus:g} CPUs: one actor of {cpus_per_actor:g} CPUs and "
            f"the read tasks' {_READ_CPUS} do not fit; lower --cpus-per-actor"
        )
    if concurrency is None:
        return {"min_size": 1, "max_size": fit}
    if concurrency > fit:
        raise ValueError(
            f"{concurrency} actors of {cpus_per_actor:g} CPUs leave the read tasks no CPU of "
            f"the cluster's {cluster_cpus:g}; use --concurrency {fit} or lower --cpus-per-actor"
        )
    return {"size": concurrency}


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
    cpus_per_actor=1,
    batch_size=4096,
    output_format=None,
    quiet=False,
):
    """Predicts every row of ``inputs`` (a glob or list of globs of .npy or Parquet files)
    into the new directory ``output``, and returns an :class:`InferResult`.

    Connects to the cluster at ``address`` ("auto" for the local node's cluster) or starts
    a local Ray when none runs. ``concurrency`` actors (default: a pool of 1 up to as many
    as fit), spread over the nodes, each load ``model`` once and reserve ``cpus_per_actor``
    CPUs (vecprop uses all of a node's cores whatever the reservation) and ``num_gpus``
    GPUs (1 gives each its own GPU). The actors must leave one CPU of the cluster for the
    read tasks, or the job is refused. The output format is the input's unless
    ``output_format`` ("numpy" or "parquet") says otherwise. Raises ``ValueError`` for bad
    arguments and re-raises the job's error, leaving no output directory, if it fails.
    ``quiet`` keeps Ray's log lines and progress reports off stderr.

    Actors are spread over the nodes (Ray Data's default scheduling, "SPREAD").
    """
    import ray

    files, format = input_files(inputs)
    model = callers_path(model)
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
        level = logging.CRITICAL if quiet else logging.INFO
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=level)
    context = ray.data.DataContext.get_current()
    if quiet:
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    context.execution_options.preserve_order = True

    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.partial-", dir=parent)
    try:
        dataset = ray.data.read_numpy(files) if format == NUMPY else ray.data.read_parquet(files)
        concurrency = _actor_pool(concurrency, cpus_per_actor, ray.cluster_resources().get("CPU", 0))
        predicted = dataset.map_batches(
            Predictor,
            fn_constructor_kwargs={"model": model, "device": device, "column": column},
            batch_format="numpy",
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(
                **concurrency, max_concurrent_calls_per_actor=OVERLAPPED_CALLS
            ),
            num_cpus=cpus_per_actor,
            num_gpus=num_gpus,
        )
        names = _PartNames("npy" if output_format == NUMPY else "parquet")
        if output_format == NUMPY:
            predicted.write_numpy(
                staging, column=OUTPUT_COLUMN, filename_provider=names, ray_remote_args=_IO_TASK
            )
        else:
            predicted.write_datasink(_ordered_parquet_sink(staging, names), ray_remote_args=_IO_TASK)
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
