"""One Model called from several Python threads at once: correct results, and the GIL
released while the forward pass runs."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import vecprop
from reference import random_network

ACTIVATIONS = ["relu", "tanh", "sigmoid"]
WIDTHS = [32, 96, 48, 9]


def test_concurrent_calls_give_each_caller_its_own_result(device):
    layers = random_network(WIDTHS, ACTIVATIONS, seed=11)
    model = vecprop.from_arrays(layers, ACTIVATIONS, device=device)
    rng = np.random.default_rng(12)
    # Different row counts per caller, so that mixing up buffers would show.
    inputs = [rng.standard_normal((rows, WIDTHS[0])).astype(np.float32) for rows in range(1, 400, 13)]
    expected = [model(x) for x in inputs]
    start = threading.Barrier(8)

    def call(i):
        if i < 8:
            start.wait()
        x = inputs[i % len(inputs)]
        return i, [model.predict(x, batch_size=64) if i % 2 else model(x) for _ in range(5)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(4 * len(inputs))))
    for i, outputs in results:
        for out in outputs:
            np.testing.assert_allclose(out, expected[i % len(inputs)], rtol=1e-6, atol=1e-7)


def test_the_gil_is_released_during_the_forward_pass(device):
    """While one thread runs a long forward pass, this thread keeps running Python.

    If the pass held the GIL, this thread would stall for the whole pass: its longest gap
    between two loop iterations would be about the pass's duration.
    """
    layers = random_network([256, 256, 256], ["relu", "relu"], seed=13)
    model = vecprop.from_arrays(layers, ["relu", "relu"], device=device)
    x = np.random.default_rng(14).standard_normal((4096, 256)).astype(np.float32)
    # Grow the batch until one pass takes at least 0.3 s on this machine.
    while True:
        began = time.perf_counter()
        model(x)
        if time.perf_counter() - began >= 0.3:
            break
        x = np.concatenate([x, x])

    durations = []

    def run():
        began = time.perf_counter()
        model(x)
        durations.append(time.perf_counter() - began)

    worker = threading.Thread(target=run)
    last = time.perf_counter()
    longest_gap = 0.0
    worker.start()
    while worker.is_alive():
        now = time.perf_counter()
        longest_gap = max(longest_gap, now - last)
        last = now
    worker.join()
    assert durations, "the forward pass in the worker thread failed"
    assert longest_gap < durations[0] / 2, (
        f"this thread stalled for {longest_gap:.3f} s of a {durations[0]:.3f} s pass: "
        "the GIL was held"
    )
