#!/usr/bin/env python3
"""Writes the skl2onnx fixtures that tests/all/sklearn_onnx.rs checks vecprop against (issue 20,
item 3): scikit-learn MLPs converted the usual way (skl2onnx.to_onnx), and ONNX Runtime's
outputs on one input batch.

  tests/fixtures/skl_regressor.onnx         MLPRegressor 7 -> 9 tanh -> 6 tanh -> 1 (Cast, MatMul,
                                            Add, Relu/Tanh, ..., Reshape to (N, 1)); output `variable`
  tests/fixtures/skl_classifier.onnx        MLPClassifier, 4 classes labelled 3, 5, 8, 13, zipmap off:
                                            outputs `label` (int64) and `probabilities`
  tests/fixtures/skl_classifier_zipmap.onnx the same with the default ZipMap: `output_label`,
                                            `output_probability`
  tests/fixtures/skl_binary.onnx            MLPClassifier of 2 classes (labels 0, 1): its probabilities are
                                            Concat(1 - sigmoid(z), sigmoid(z)); `output_label`,
                                            `output_probability` (ZipMap)
  tests/fixtures/skl_input.npy              float32, 41 x 7
  tests/fixtures/skl_<name>_<output>.npy    ONNX Runtime's output of each file on that input

Pinned: skl2onnx==1.20.0, scikit-learn==1.9.1, onnx==1.17.0, onnxruntime==1.20.1,
numpy==2.1.3 (what /work/venv-peers holds). Run from the repository root:
    python3 scripts/make_skl2onnx_fixtures.py
"""

import os

import numpy as np
import onnxruntime as ort
import skl2onnx
import sklearn
from sklearn.neural_network import MLPClassifier, MLPRegressor
from skl2onnx import to_onnx

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
PINNED = {"skl2onnx": "1.20.0", "sklearn": "1.9.1"}


def save(name, array):
    np.save(os.path.join(OUT, name), array)


def convert(model, x, name, options=None):
    onnx_model = to_onnx(model, x[:1], options=options)
    path = os.path.join(OUT, f"skl_{name}.onnx")
    with open(path, "wb") as f:
        f.write(onnx_model.SerializeToString())
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    for output, value in zip(outputs, session.run(None, {"X": x})):
        if isinstance(value, list):  # ZipMap: one {label: probability} per row
            value = np.array([[row[k] for k in sorted(row)] for row in value], np.float32)
        save(f"skl_{name}_{output}.npy", value)
        print(f"skl_{name}.onnx {output}: {value.dtype} {value.shape}")


def main():
    assert skl2onnx.__version__ == PINNED["skl2onnx"], skl2onnx.__version__
    assert sklearn.__version__ == PINNED["sklearn"], sklearn.__version__
    rng = np.random.default_rng(20261207)
    x = rng.standard_normal((300, 7)).astype(np.float32)
    y = np.tanh(x[:, 0] * 1.5) + x[:, 1] * x[:, 2] - 0.5 * x[:, 3]
    regressor = MLPRegressor(hidden_layer_sizes=(9, 6), activation="tanh", max_iter=300,
                             random_state=0).fit(x, y)
    labels = np.array([3, 5, 8, 13])[(x[:, 0] > 0).astype(int) + 2 * (x[:, 1] + x[:, 4] > 0)]
    classifier = MLPClassifier(hidden_layer_sizes=(11,), activation="relu", max_iter=300,
                               random_state=0).fit(x, labels)

    os.makedirs(OUT, exist_ok=True)
    batch = rng.standard_normal((41, 7)).astype(np.float32)
    save("skl_input.npy", batch)
    convert(regressor, batch, "regressor")
    convert(classifier, batch, "classifier", options={id(classifier): {"zipmap": False}})
    convert(classifier, batch, "classifier_zipmap")
    binary = MLPClassifier(hidden_layer_sizes=(8,), activation="logistic", max_iter=300,
                           random_state=0).fit(x, (x[:, 0] + x[:, 5] > 0).astype(int))
    convert(binary, batch, "binary")


if __name__ == "__main__":
    main()
