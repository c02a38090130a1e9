"""Every kind of bad input raises vecprop.VecpropError (a ValueError) with the library's
message, and never crashes the interpreter."""

import numpy as np
import pytest

import vecprop

W = np.array([[1, -3, 5], [-2, 4, -6]], np.float32)
B = np.array([-1, 1, 2], np.float32)


@pytest.fixture
def model(device):
    return vecprop.from_arrays([(W, B)], ["sigmoid"], device=device)


def raises(match):
    return pytest.raises(vecprop.VecpropError, match=match)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.ones((2, 2), np.int32), r"unsupported dtype `int32` in the input batch"),
        (np.ones((2, 2), np.float16), r"unsupported dtype `float16`"),
        (np.ones((2, 2), ">f4"), r"unsupported dtype `>f4`"),
        (np.ones((2, 2), np.complex64), r"unsupported dtype"),
        (np.array([["a", "b"]]), r"unsupported dtype"),
        (np.ones(2, np.float32), r"2-D array .* 1 dimensions with shape \[2\]"),
        (np.ones((1, 2, 2), np.float32), r"3 dimensions with shape \[1, 2, 2\]"),
        (np.float32(3.0), r"numpy.ndarray .* not float32"),
        ([[200.0, 17.0]], r"must be a numpy.ndarray of float32 or float64, not list"),
        (None, r"not NoneType"),
        (np.ones((4, 3), np.float32), r"input has 3 columns but the network expects 2"),
        (np.ones((0, 3), np.float64), r"input has 3 columns but the network expects 2"),
    ],
)
def test_bad_batches(model, x, match):
    with raises(match):
        model(x)
    with raises(match):
        model.predict(x)


def test_an_empty_batch_gives_an_empty_output(model):
    """No rows in, no rows out, as in PyTorch (issue 15); never a crash."""
    for x in (np.ones((0, 2), np.float32), np.ones((0, 2), np.float64)):
        for y in (model(x), model.predict(x, batch_size=1)):
            assert y.shape == (0, 3)
            assert y.dtype == np.float32


def test_bad_batch_size(model):
    with raises("batch_size must be at least 1"):
        model.predict(np.ones((1, 2), np.float32), batch_size=0)
    with pytest.raises(OverflowError):  # Python's own check for a negative usize
        model.predict(np.ones((1, 2), np.float32), batch_size=-1)


def test_read_only_arrays_are_accepted(model):
    x = np.ones((3, 2), np.float32)
    x.setflags(write=False)
    assert model(x).shape == (3, 3)


def test_missing_and_malformed_files(device, tmp_path):
    with raises(r"cannot access .*nope.safetensors"):
        vecprop.load(tmp_path / "nope.safetensors", device=device)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with raises(r"not a valid safetensors model"):
        vecprop.load(garbage, device=device)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with raises(r"not a valid safetensors model"):
        vecprop.load(empty, device=device)
    with raises(r"cannot access"):
        vecprop.load(tmp_path, device=device)  # a folder


def write_safetensors(path, tensors):
    """A safetensors file with no metadata: the header is JSON after its 8-byte length."""
    import json
    import struct

    header, data, offset = {}, b"", 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array, np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        data, offset = data + raw, offset + len(raw)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def test_activations(device, tmp_path):
    bare = tmp_path / "bare.safetensors"
    write_safetensors(bare, {"0.weight": W.T, "0.bias": B})
    with raises(r"no `activations` metadata entry.*from Python: vecprop.load\(path, activations="):
        vecprop.load(bare, device=device)
    np.testing.assert_array_equal(
        vecprop.load(bare, device=device, activations="sigmoid")(np.array([[200, 17]], np.float32)).round(),
        [[1, 0, 1]],
    )

    path = tmp_path / "m.safetensors"
    vecprop.from_arrays([(W, B)], ["sigmoid"]).save(path)
    with raises(r"unknown activation `swish`"):
        vecprop.load(path, device=device, activations="swish")
    with raises(r"unknown activation `swish`"):
        vecprop.from_arrays([(W, B)], ["swish"], device=device)
    with raises(r"1 dense layers but 2 activations"):
        vecprop.load(path, device=device, activations=["relu", "relu"])
    with raises(r"1 dense layers but 2 activations"):
        vecprop.from_arrays([(W, B)], "relu,relu", device=device)
    with raises(r"comma-separated string or a list of strings"):
        vecprop.from_arrays([(W, B)], [1], device=device)


def test_devices_and_dtypes(tmp_path):
    path = tmp_path / "m.safetensors"
    vecprop.from_arrays([(W, B)], ["sigmoid"]).save(path)
    with raises(r"unknown device `tpu` \(expected cpu, cuda or cuda:N\)"):
        vecprop.load(path, device="tpu")
    with raises(r"bad GPU number in device `cuda:x`"):
        vecprop.from_arrays([(W, B)], ["sigmoid"], device="cuda:x")
    with raises(r"unsupported dtype `f8`"):
        vecprop.load(path, dtype="f8")
    with raises(r"batch_size must be at least 1"):
        vecprop.load(path, batch_size=0)
    if "cuda:0" not in vecprop.devices():
        # A build without the cuda feature, or a machine without a GPU.
        with raises(r"built without CUDA|no usable CUDA device"):
            vecprop.load(path, device="cuda")


def test_bad_layers():
    with raises(r"layers must hold at least one"):
        vecprop.from_arrays([], [])
    with raises(r"layers\[0\] must be a \(W, b\) pair"):
        vecprop.from_arrays([W], ["relu"])
    with raises(r"layers\[0\] b \(shaped units\) must be a 1-D array"):
        vecprop.from_arrays([(W, B[None, :])], ["relu"])
    with raises(r"layers\[0\] W .* must be a 2-D array"):
        vecprop.from_arrays([(B, B)], ["relu"])
    with raises(r"bias has 2 elements"):
        vecprop.from_arrays([(W, B[:2])], ["relu"])
    with raises(r"unsupported dtype `int64` in layers\[1\] W"):
        vecprop.from_arrays([(W, B), (np.ones((3, 1), np.int64), B[:1])], ["relu", "relu"])
    with raises(r"takes 2 inputs .* receives 3"):
        vecprop.from_arrays([(W, B), (W, B)], ["relu", "relu"])


def test_errors_are_value_errors_with_the_library_message(model):
    with pytest.raises(ValueError) as caught:
        model(np.ones((1, 5), np.float32))
    assert type(caught.value) is vecprop.VecpropError
    assert str(caught.value) == "input has 5 columns but the network expects 2 (one example per row)"
