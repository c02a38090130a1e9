"""vecprop against the real ONNX Runtime, on the ONNX files people export.

Each committed ONNX fixture (PyTorch's two exporters, external data, skl2onnx models) runs
through onnxruntime.InferenceSession and through vecprop.load on the same random batches of
awkward sizes; the outputs agree to 1e-5 (relative, absolute near zero). The graphs vecprop
refuses still run in ONNX Runtime, so the refusal is vecprop's, not a broken file.
"""

import os

import numpy as np
import onnxruntime
import pytest

import vecprop
from reference import assert_close

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures")
SUPPORTED = [
    "models_onnx_legacy.onnx",
    "models_onnx_dynamo.onnx",
    "models_onnx_external.onnx",
    "models_act_legacy.onnx",
    "models_act_dynamo.onnx",
    "skl_classifier.onnx",
    "skl_classifier_zipmap.onnx",
    "skl_binary.onnx",
    "skl_regressor.onnx",
]
REFUSED = {"models_logsoftmax.onnx": "LogSoftmax", "models_residual.onnx": "Add"}
ROWS = (1, 3, 17, 1000)


def session(name):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(
        os.path.join(FIXTURES, name), options, providers=["CPUExecutionProvider"]
    )


def float_output(sess):
    """The output vecprop writes by default: the graph's last output of float values (a
    ZipMap's per-row maps of class to probability count: vecprop writes them as a matrix)."""
    floats = [o for o in sess.get_outputs() if o.type in ("tensor(float)", "seq(map(int64,tensor(float)))")]
    return floats[-1].name


def as_matrix(value):
    """ORT's output as a float64 matrix: a ZipMap's list of {class: probability} by class."""
    if isinstance(value, list):
        return np.array([[row[key] for key in sorted(row)] for row in value], np.float64)
    return np.asarray(value, np.float64)


def row_counts(sess):
    """ROWS, or the one batch size a graph exported with a fixed batch accepts."""
    fixed = sess.get_inputs()[0].shape[0]
    return (fixed,) if isinstance(fixed, int) else ROWS


def batch(sess, rows, seed):
    width = sess.get_inputs()[0].shape[1]
    return np.random.default_rng(seed).uniform(-2, 2, (rows, width)).astype(np.float32)


@pytest.mark.parametrize("name", SUPPORTED)
def test_vecprop_matches_onnx_runtime(name, device):
    sess = session(name)
    model = vecprop.load(os.path.join(FIXTURES, name), device=device)
    output = float_output(sess)
    for rows in row_counts(sess):
        x = batch(sess, rows, seed=rows)
        (want,) = sess.run([output], {sess.get_inputs()[0].name: x})
        want = as_matrix(want)
        got = model(x)
        assert got.shape == want.shape, (rows, got.shape, want.shape)
        assert_close(got, want)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_graphs_vecprop_refuses_still_run_in_onnx_runtime(name):
    sess = session(name)
    x = batch(sess, 3, seed=0)
    (out,) = sess.run([float_output(sess)], {sess.get_inputs()[0].name: x})
    assert np.isfinite(as_matrix(out)).all()
    with pytest.raises(vecprop.VecpropError, match=REFUSED[name]):
        vecprop.load(os.path.join(FIXTURES, name))
