"""Forward passes against a float64 reference: the worked example, awkward shapes,
float64 and Fortran-order inputs, chunking, and the save/load round trip."""

import numpy as np
import pytest

import vecprop
from reference import assert_close, forward64, random_network

WORKED_W = np.array([[1, -3, 5], [-2, 4, -6]], np.float32)
WORKED_B = np.array([-1, 1, 2], np.float32)
WORKED_X = np.array([[200, 17]], np.float32)


def test_worked_example(device):
    model = vecprop.from_arrays([(WORKED_W, WORKED_B)], ["sigmoid"], device=device)
    out = model(WORKED_X)
    assert out.dtype == np.float32 and out.shape == (1, 3)
    np.testing.assert_array_equal(out.round(), [[1, 0, 1]])
    assert_close(out, forward64([(WORKED_W, WORKED_B)], ["sigmoid"], WORKED_X))


def test_worked_example_from_a_saved_file(device, tmp_path):
    path = tmp_path / "worked.safetensors"
    vecprop.from_arrays([(WORKED_W, WORKED_B)], "sigmoid").save(path)
    model = vecprop.load(path, device=device)
    np.testing.assert_array_equal(model(WORKED_X).round(), [[1, 0, 1]])
    assert (model.input_width, model.output_width) == (2, 3)
    # The same file with its activations overridden, as a string and as a list.
    linear = vecprop.load(str(path), device=device, activations="linear")
    assert_close(linear(WORKED_X), WORKED_X.astype(np.float64) @ WORKED_W + WORKED_B)
    relu = vecprop.load(path, device=device, activations=["relu"])
    np.testing.assert_array_equal(relu(WORKED_X), [[165, 0, 900]])


ACTIVATIONS = ["relu", "tanh", "sigmoid", "softmax"]
WIDTHS = [13, 37, 5, 64, 7]


@pytest.mark.parametrize("rows", [1, 3, 17, 1000])
def test_awkward_shapes_match_float64(device, rows):
    layers = random_network(WIDTHS, ACTIVATIONS, seed=rows)
    model = vecprop.from_arrays(layers, ACTIVATIONS, device=device)
    x = np.random.default_rng(rows).uniform(-1, 1, (rows, WIDTHS[0])).astype(np.float32)
    assert_close(model(x), forward64(layers, ACTIVATIONS, x))


def test_float64_input_matches_its_float32_rounding(device):
    layers = random_network(WIDTHS, ACTIVATIONS, seed=1)
    model = vecprop.from_arrays(layers, ACTIVATIONS, device=device)
    x64 = np.random.default_rng(2).standard_normal((33, WIDTHS[0]))
    out = model(x64)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, model(x64.astype(np.float32)))
    assert_close(out, forward64(layers, ACTIVATIONS, x64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fortran_order_and_strided_inputs(device, dtype):
    layers = random_network(WIDTHS, ACTIVATIONS, seed=3)
    model = vecprop.from_arrays(layers, ACTIVATIONS, device=device)
    x = np.random.default_rng(4).standard_normal((41, WIDTHS[0])).astype(dtype)
    want = model(np.ascontiguousarray(x))
    fortran = np.asfortranarray(x)
    assert not fortran.flags.c_contiguous
    np.testing.assert_array_equal(model(fortran), want)
    # Every other row of a larger array, and a reversed view: neither is contiguous.
    padded = np.repeat(x, 2, axis=0)
    np.testing.assert_array_equal(model(padded[::2]), want)
    np.testing.assert_array_equal(model(x[::-1])[::-1], want)


def test_any_number_of_rows_is_chunked(device, tmp_path):
    layers = random_network(WIDTHS, ACTIVATIONS, seed=5)
    model = vecprop.from_arrays(layers, ACTIVATIONS, device=device)
    x = np.random.default_rng(6).standard_normal((10_000, WIDTHS[0])).astype(np.float32)
    want = forward64(layers, ACTIVATIONS, x)
    assert_close(model(x), want)
    for batch_size in [1, 7, 4096, 20_000]:
        assert_close(model.predict(x[:300], batch_size=batch_size), want[:300])
    model.save(tmp_path / "model.safetensors")
    small = vecprop.load(tmp_path / "model.safetensors", device=device, batch_size=3)
    assert_close(small(x[:1000]), want[:1000])


def test_the_result_is_a_new_array(device):
    model = vecprop.from_arrays([(WORKED_W, WORKED_B)], ["linear"], device=device)
    first = model(WORKED_X)
    second = model(WORKED_X)
    assert first.flags.writeable and first.flags.c_contiguous
    assert not np.shares_memory(first, second)
    assert not np.shares_memory(first, WORKED_X)
    first[:] = 0
    np.testing.assert_array_equal(second, model(WORKED_X))


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_dtypes(device, dtype):
    layers = random_network([16, 24, 8], ["relu", "linear"], seed=7)
    model = vecprop.from_arrays(layers, "relu,linear", device=device, dtype=dtype)
    x = np.random.default_rng(8).uniform(-1, 1, (19, 16)).astype(np.float32)
    assert_close(model(x), forward64(layers, ["relu", "linear"], x), rtol=1e-5 if dtype == "f32" else 1e-2)
    assert f"dtype='{dtype}'" in repr(model)


def test_model_properties_and_summary(device):
    layers = random_network([4, 6, 2], ["relu", "softmax"], seed=9)
    model = vecprop.from_arrays(layers, ["relu", "softmax"], device=device)
    assert (model.input_width, model.output_width) == (4, 2)
    assert model.device == ("cpu" if device == "cpu" else "cuda:0")
    table = model.summary()
    # Keras-style: one row per layer with its parameter count, and the total.
    assert "30" in table and "14" in table and "44" in table, table
    assert "Model(layers=2, input_width=4, output_width=2" in repr(model)


def test_module_metadata():
    assert vecprop.__version__.count(".") == 2
    devices = vecprop.devices()
    assert devices[0] == "cpu"
    assert all(d.startswith("cuda:") for d in devices[1:])
    # One driver query describes every GPU; devices() offers exactly the usable ones.
    gpus = vecprop.gpus()
    assert [g["device"] for g in gpus if g["usable"]] == devices[1:]
    for gpu in gpus:
        assert set(gpu) == {"device", "name", "compute_capability", "memory_bytes", "multiprocessors", "usable"}
        assert gpu["memory_bytes"] > 0 and gpu["multiprocessors"] > 0
        assert gpu["usable"] == (tuple(gpu["compute_capability"]) >= (8, 0))
    assert issubclass(vecprop.VecpropError, ValueError)
    assert vecprop.load.__doc__ and vecprop.Model.predict.__doc__
