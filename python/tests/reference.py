"""A float64 NumPy reference forward pass, to check vecprop against."""

import numpy as np


def activate(name, z):
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "linear":
        return z
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(name)


def forward64(layers, activations, x):
    """The network's output computed in float64: layers are (W, b), W shaped (inputs, units)."""
    a = np.asarray(x, np.float64)
    for (w, b), name in zip(layers, activations):
        a = activate(name, a @ np.asarray(w, np.float64) + np.asarray(b, np.float64))
    return a


def random_network(widths, activations, seed):
    """Layers with weights scaled so that activations stay in a useful range."""
    rng = np.random.default_rng(seed)
    layers = []
    for inputs, units in zip(widths[:-1], widths[1:]):
        w = rng.standard_normal((inputs, units)).astype(np.float32) / np.sqrt(inputs)
        b = rng.standard_normal(units).astype(np.float32) * 0.1
        layers.append((w, b))
    assert len(layers) == len(activations)
    return layers


def assert_close(got, want, rtol=1e-5):
    """|got - want| <= rtol * (|want| + 1): relative for large values, absolute near zero
    (where float32 sums of unit-sized terms carry absolute, not relative, error)."""
    got = np.asarray(got, np.float64)
    assert got.shape == np.shape(want), f"shape {got.shape} != {np.shape(want)}"
    worst = float(np.max(np.abs(got - want) / (np.abs(want) + 1.0)))
    assert worst <= rtol, f"max relative error {worst:.3e} > {rtol:.0e}"
