"""A scikit-learn model saved as the README says gives scikit-learn's own predictions.

The committed fixture (scripts/make_sklearn_fixture.py) was saved with the safetensors
package; the live test trains a fresh model and saves it through vecprop.from_arrays.
"""

import os

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.neural_network import MLPClassifier, MLPRegressor

import vecprop
from reference import assert_close

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
SKLEARN_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu", "softmax": "softmax"}


def test_committed_sklearn_classifier_matches_predict_proba(device):
    model = vecprop.load(os.path.join(FIXTURES, "sklearn_mlp.safetensors"), device=device)
    x = np.load(os.path.join(FIXTURES, "sklearn_input.npy"))
    want = np.load(os.path.join(FIXTURES, "sklearn_proba.npy"))
    assert (model.input_width, model.output_width) == (13, 4)
    np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model(x).argmax(axis=1), want.argmax(axis=1))


def vecprop_from_sklearn(model, device):
    """The README's recipe with vecprop itself: coefs_ are already (inputs, units)."""
    hidden = [SKLEARN_ACTIVATIONS[model.activation]] * (len(model.coefs_) - 1)
    activations = hidden + [SKLEARN_ACTIVATIONS[model.out_activation_]]
    return vecprop.from_arrays(list(zip(model.coefs_, model.intercepts_)), activations, device=device)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_freshly_trained_models_match_scikit_learn(device, tmp_path):
    x, y = make_regression(n_samples=300, n_features=11, n_targets=3, random_state=1)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = (y - y.mean(axis=0)) / y.std(axis=0)
    regressor = MLPRegressor(hidden_layer_sizes=(24,), activation="relu", max_iter=300, random_state=0)
    regressor.fit(x, y)
    classifier = MLPClassifier(hidden_layer_sizes=(16, 8), activation="logistic", max_iter=300, random_state=0)
    classifier.fit(x, y[:, 0] > 0)  # binary: a logistic output unit
    batch = np.random.default_rng(3).standard_normal((1000, 11))

    for model, want in [
        (regressor, regressor.predict(batch)),
        (classifier, classifier.predict_proba(batch)[:, 1:]),
    ]:
        ours = vecprop_from_sklearn(model, device)
        assert_close(ours(batch), want)
        ours.save(tmp_path / "model.safetensors")
        assert_close(vecprop.load(tmp_path / "model.safetensors", device=device)(batch), want)
