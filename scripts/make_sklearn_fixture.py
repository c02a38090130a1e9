#!/usr/bin/env python3
"""Writes the scikit-learn fixture that python/tests/test_sklearn.py checks vecprop against.

A small MLPClassifier (13 -> 32 tanh -> 17 tanh -> 4 softmax) trained from a fixed seed,
saved the way the README's "From scikit-learn" section says, with the safetensors package
(independent of vecprop's own writer), plus a float64 input batch and scikit-learn's own
predict_proba on it:

  python/tests/fixtures/sklearn_mlp.safetensors   float32 parameters, torch.nn.Linear layout
  python/tests/fixtures/sklearn_input.npy         float64, 37 x 13
  python/tests/fixtures/sklearn_proba.npy         float64, 37 x 4 (predict_proba)

Run from the repository root:  python3 scripts/make_sklearn_fixture.py
Needs: pip install numpy scikit-learn safetensors
"""

import os

import numpy as np
from safetensors.numpy import save_file
from sklearn.datasets import make_classification
from sklearn.neural_network import MLPClassifier

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "tests", "fixtures")

# scikit-learn's activation names, and its output layer's, in vecprop's terms.
SKLEARN_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu", "softmax": "softmax"}


def save_sklearn_mlp(model, path):
    """The README's recipe: coefs_[i] is (inputs, units), torch.nn.Linear wants (units, inputs)."""
    tensors = {}
    for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_)):
        tensors[f"{i}.weight"] = np.ascontiguousarray(w.T, dtype=np.float32)
        tensors[f"{i}.bias"] = np.asarray(b, dtype=np.float32)
    hidden = [SKLEARN_ACTIVATIONS[model.activation]] * (len(model.coefs_) - 1)
    activations = ",".join(hidden + [SKLEARN_ACTIVATIONS[model.out_activation_]])
    save_file(tensors, path, metadata={"activations": activations})


def main() -> None:
    x, y = make_classification(
        n_samples=600, n_features=13, n_informative=8, n_classes=4, random_state=20261123
    )
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    model = MLPClassifier(hidden_layer_sizes=(32, 17), activation="tanh", max_iter=400, random_state=0)
    model.fit(x, y)
    assert model.out_activation_ == "softmax"

    os.makedirs(OUT, exist_ok=True)
    save_sklearn_mlp(model, os.path.join(OUT, "sklearn_mlp.safetensors"))
    batch = np.random.default_rng(7).standard_normal((37, 13))
    np.save(os.path.join(OUT, "sklearn_input.npy"), batch)
    np.save(os.path.join(OUT, "sklearn_proba.npy"), model.predict_proba(batch))
    print(f"wrote {OUT} (training accuracy {model.score(x, y):.3f})")


if __name__ == "__main__":
    main()
