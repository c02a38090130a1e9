"""Shared by the test_ray*.py modules: the ray import rule, a watchdog, a small model.

The Ray tests run in their own CI step (scripts/ray-ci.sh), which installs ray and sets
VECPROP_TEST_RAY=1: there a missing ray fails loudly. Elsewhere (scripts/python-ci.sh,
which does not install ray) the modules are skipped with a reason that says where they run.
"""

import faulthandler
import os
import socket

import numpy as np
import pytest

import vecprop

# On Linux Ray replaces 127.0.0.1 with the machine's outward address; this (misnamed) switch
# keeps every Ray process of the tests on the loopback interface. Read when ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

RAY_REQUIRED = os.environ.get("VECPROP_TEST_RAY") == "1"
#: Longest one Ray test may run before the watchdog dumps every thread and exits.
TEST_DEADLINE_S = float(os.environ.get("VECPROP_RAY_TEST_DEADLINE_S", "240"))
LOOPBACK = "127.0.0.1"


def import_ray():
    """ray, or a module-level skip when the Ray tests are not this run's job."""
    if RAY_REQUIRED:
        import ray  # noqa: F401  (an ImportError here fails the run)
    return pytest.importorskip(
        "ray", reason="the Ray tests run in scripts/ray-ci.sh (VECPROP_TEST_RAY=1 requires them)"
    )


@pytest.fixture(autouse=True)
def deadline():
    """Bounds each test: past TEST_DEADLINE_S, dump the stacks and end the process."""
    faulthandler.dump_traceback_later(TEST_DEADLINE_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def save_model(path, widths, activations, seed=0):
    """A random dense network saved at ``path``; returns the path."""
    rng = np.random.default_rng(seed)
    layers = [
        (rng.standard_normal((i, o)).astype(np.float32) / np.sqrt(i), rng.standard_normal(o).astype(np.float32))
        for i, o in zip(widths[:-1], widths[1:])
    ]
    vecprop.from_arrays(layers, activations).save(path)
    return str(path)


def random_rows(rows, width, seed=1):
    return np.random.default_rng(seed).standard_normal((rows, width), dtype=np.float32)


def free_port():
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]
