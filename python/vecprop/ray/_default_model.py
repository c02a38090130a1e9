"""The model used when none is named: 784-512-256-10 (sigmoid, relu, linear)."""

import os

import numpy as np

import vecprop

#: Layer widths of the default network, input first (as in ``vecprop demo``).
DEFAULT_WIDTHS = (784, 512, 256, 10)
#: Activation of each layer of the default network.
DEFAULT_ACTIVATIONS = ("sigmoid", "relu", "linear")
_SEED = 0


def default_layers():
    """The default network's (W, b) pairs: Glorot-uniform weights and zero biases from a
    fixed seed, so every actor and replica builds the same numbers."""
    rng = np.random.default_rng(_SEED)
    layers = []
    for inputs, units in zip(DEFAULT_WIDTHS[:-1], DEFAULT_WIDTHS[1:]):
        limit = np.sqrt(6.0 / (inputs + units))
        w = rng.uniform(-limit, limit, size=(inputs, units)).astype(np.float32)
        layers.append((w, np.zeros(units, np.float32)))
    return layers


def default_model(device="cpu", dtype=None):
    """The default 784-512-256-10 network, compiled for ``device``."""
    return vecprop.from_arrays(default_layers(), list(DEFAULT_ACTIVATIONS), device=device, dtype=dtype)


def callers_path(model):
    """``model`` as the caller meant it: a relative file path made absolute against the
    caller's working directory (Ray's actors and replicas run in directories of their
    own), None (the default model) as it is."""
    return None if model is None else os.path.abspath(os.fspath(model))


def load_model(model, device, **options):
    """``vecprop.load(model, device, **options)``, or the default network when ``model`` is
    None. ``options`` are ``vecprop.load``'s keywords (activations, batch_size, dtype)."""
    options = {key: value for key, value in options.items() if value is not None}
    if model is None:
        unknown = set(options) - {"dtype"}
        if unknown:
            raise ValueError(f"{', '.join(sorted(unknown))} needs a model file, not the default model")
        return default_model(device, options.get("dtype"))
    return vecprop.load(model, device=device, **options)
