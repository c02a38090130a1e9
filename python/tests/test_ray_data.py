"""vecprop.ray on Ray Data, on a real local Ray (2 CPUs, loopback, no dashboard)."""

import os
import shutil
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from ray_helpers import LOOPBACK, deadline, import_ray, random_rows, save_model  # noqa: F401

ray = import_ray()

import vecprop  # noqa: E402
import vecprop.ray  # noqa: E402
from vecprop import _vecprop  # noqa: E402

ROWS, WIDTH = 100_000, 32


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address=LOOPBACK, log_to_driver=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    return save_model(path, [WIDTH, 48, 8], ["tanh", "linear"])


class WorkerTaggingPredictor(vecprop.ray.Predictor):
    """Predictor that also says which process computed each row."""

    def __call__(self, batch):
        out = super().__call__(batch)
        out["pid"] = np.full(len(out["output"]), os.getpid())
        return out


def collect(dataset, *columns):
    batches = list(dataset.iter_batches(batch_format="numpy", batch_size=None))
    return [np.concatenate([b[c] for b in batches]) for c in columns]


def test_two_actors_give_predict_bit_for_bit_in_order(local_ray, model_path):
    x = random_rows(ROWS, WIDTH)
    predicted = ray.data.from_numpy(np.array_split(x, 20)).map_batches(
        WorkerTaggingPredictor,
        fn_constructor_kwargs={"model": model_path, "device": "cpu"},
        batch_format="numpy",
        batch_size=4096,
        concurrency=2,
    )
    out, pids = collect(predicted, "output", "pid")
    expected = vecprop.load(model_path).predict(x)
    assert out.shape == expected.shape and out.dtype == np.float32
    assert np.array_equal(out, expected), "Ray Data's rows differ from Model.predict's"
    assert len(set(pids.tolist())) == 2, f"expected 2 actors, rows came from {set(pids.tolist())}"


class CopyMeasuringPredictor(vecprop.ray.Predictor):
    """Predictor that reports, per batch, what it was handed and what predicting it cost in
    memory: bytes that Python (tracemalloc, which sees NumPy's buffers) and the Rust side
    (the extension's heap counter) allocated, as a fraction of the input's bytes."""

    def __call__(self, batch):
        x = batch["data"]
        tracemalloc.start()
        rust_before = _vecprop._heap_peak(reset=True)
        out = super().__call__(batch)
        rust = _vecprop._heap_peak() - rust_before
        python = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows = len(x)
        out["writeable"] = np.full(rows, x.flags.writeable)
        out["c_float32"] = np.full(rows, x.flags.c_contiguous and x.dtype == np.float32)
        out["arrow_backed"] = np.full(rows, _owned_by_arrow(x))
        out["python_growth"] = np.full(rows, python / x.nbytes)
        out["rust_growth"] = np.full(rows, rust / x.nbytes)
        return out


def _owned_by_arrow(array):
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return type(base).__module__.startswith("pyarrow")


def test_object_store_arrays_are_read_in_place(local_ray, tmp_path):
    width, rows = 512, 20_000  # 512 in, 2 out: the output is 1/256 of the input
    path = save_model(tmp_path / "wide.safetensors", [width, 2], ["linear"])
    x = random_rows(rows, width)
    predicted = ray.data.from_numpy(np.array_split(x, 4)).map_batches(
        CopyMeasuringPredictor,
        fn_constructor_kwargs={"model": path, "device": "cpu"},
        batch_format="numpy",
        batch_size=2048,
        concurrency=1,
    )
    columns = ["output", "writeable", "c_float32", "arrow_backed", "python_growth", "rust_growth"]
    out, writeable, c_float32, arrow, python, rust = collect(predicted, *columns)
    assert np.array_equal(out, vecprop.load(path).predict(x))
    assert not writeable.any(), "the batches were writable copies, not the object store's buffers"
    assert c_float32.all() and arrow.all(), "the batches were not Arrow-backed float32 in C order"
    # A copy of the input would be >= 1.0; the output and bookkeeping are about 0.004.
    assert python.max() < 0.05, f"Python allocated {python.max():.3f}x the input per batch"
    assert rust.max() < 0.05, f"the extension allocated {rust.max():.3f}x the input per batch"


def test_predictor_picks_the_tensor_column_and_keeps_the_others(model_path):
    predictor = vecprop.ray.Predictor(model_path, device="cpu")
    x = random_rows(10, WIDTH)
    out = predictor({"id": np.arange(10), "features": x})
    assert sorted(out) == ["id", "output"]
    assert np.array_equal(out["output"], vecprop.load(model_path)(x))
    assert np.array_equal(predictor(x)["output"], out["output"])
    with pytest.raises(ValueError, match="only 2-D column"):
        predictor({"a": x, "b": x})
    with pytest.raises(ValueError, match="no column 'c'"):
        vecprop.ray.Predictor(model_path, device="cpu", column="c")({"a": x})
    with pytest.raises(vecprop.VecpropError):
        predictor({"features": random_rows(3, WIDTH + 1)})


def test_auto_device_is_the_gpu_ray_assigned():
    device_for = vecprop.ray._device.device_for
    assert device_for("auto", [], {}) == "cpu"
    assert device_for("auto", [3], {"CUDA_VISIBLE_DEVICES": "3"}) == "cuda:0"
    assert device_for("auto", ["2"], {"CUDA_VISIBLE_DEVICES": "1,2"}) == "cuda:1"
    assert device_for("auto", [2], {"RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1"}) == "cuda:2"
    assert device_for("cpu", [0], {"CUDA_VISIBLE_DEVICES": "0"}) == "cpu"
    with pytest.raises(ValueError, match="no GPU"):
        device_for("cuda", [], {})


def run_infer(address, *args, timeout=180, cwd=None):
    command = [sys.executable, "-m", "vecprop.ray", "infer", "--address", address, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def leftovers(folder):
    return [name for name in os.listdir(folder) if ".partial-" in name]


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_infer_entry_point_keeps_order_and_count(local_ray, model_path, tmp_path, suffix):
    parts = [random_rows(rows, WIDTH, seed=rows) for rows in (30_000, 1, 12_345)]
    for i, part in enumerate(parts):
        write_input(tmp_path / f"x{i}{suffix}", part)
    output = tmp_path / "predictions"
    done = run_infer(local_ray, "--model", model_path, "--input", str(tmp_path / f"x*{suffix}"),
                     "--output", str(output), "--concurrency", "2", "--cpus-per-actor", "0.5",
                     "--batch-size", "5000")
    assert done.returncode == 0, done.stderr
    expected = vecprop.load(model_path).predict(np.concatenate(parts))
    assert np.array_equal(read_output(output, suffix), expected)
    assert leftovers(tmp_path) == []


def test_infer_reads_relative_paths_from_the_callers_directory(local_ray, model_path, tmp_path):
    # Ray's read tasks and actors run in worker processes with their own working directory:
    # relative paths (inputs, model, output) must mean the caller's.
    x = random_rows(500, WIDTH)
    np.save(tmp_path / "x0.npy", x)
    shutil.copy(model_path, tmp_path / "m.safetensors")
    done = run_infer(local_ray, "--model", "m.safetensors", "--input", "x*.npy", "--output", "out",
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(read_output(tmp_path / "out", ".npy"), vecprop.load(model_path).predict(x))


def write_input(path, x):
    if path.suffix == ".npy":
        np.save(path, x)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        column = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
        pq.write_table(pa.table({"features": column}), path)


def read_output(folder, suffix):
    import json

    manifest = json.loads((folder / "manifest.json").read_text())
    names = [entry["name"] for entry in manifest["files"]]
    assert names == sorted(names) and all(name.endswith(suffix) for name in names)
    read = np.load if suffix == ".npy" else _parquet_output
    parts = [read(folder / name) for name in names]
    assert [len(part) for part in parts] == [entry["rows"] for entry in manifest["files"]]
    return np.concatenate(parts)


def _parquet_output(path):
    import pyarrow.parquet as pq

    column = pq.read_table(path).column("output").combine_chunks()
    return column.to_numpy_ndarray()


def test_infer_failure_leaves_no_output(local_ray, model_path, tmp_path):
    np.save(tmp_path / "x.npy", random_rows(1000, WIDTH + 3))  # the model takes WIDTH
    output = tmp_path / "predictions"
    failed = run_infer(local_ray, "--model", model_path, "--input", str(tmp_path / "x.npy"),
                       "--output", str(output))
    assert failed.returncode == 1
    assert last_line(failed.stderr) == (
        f"error: VecpropError: input has {WIDTH + 3} columns but the network expects {WIDTH} "
        "(one example per row)"
    ), failed.stderr
    assert not output.exists() and leftovers(tmp_path) == []


def test_infer_refuses_bad_arguments_before_starting(local_ray, model_path, tmp_path):
    (tmp_path / "taken").mkdir()
    np.save(tmp_path / "x.npy", random_rows(10, WIDTH))
    for args, message in [
        (["--input", str(tmp_path / "none*.npy"), "--output", str(tmp_path / "out")], "no input file"),
        (["--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "taken")], "already exists"),
        # 2 actors of 1 CPU on 2 CPUs would leave none for the reads, and wait forever.
        (["--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "out"), "--concurrency", "2"],
         "leave the read tasks no CPU"),
    ]:
        failed = run_infer(local_ray, "--model", model_path, *args, timeout=60)
        assert failed.returncode == 1, failed.stderr
        assert last_line(failed.stderr).startswith("error: ValueError: ") and message in last_line(failed.stderr)


def last_line(stderr):
    """The CLI's own report: the last line (Ray's C++ side may log one line before it)."""
    return stderr.strip().splitlines()[-1]
