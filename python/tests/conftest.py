"""Shared fixtures: the devices each test runs on.

Every test that takes the `device` fixture runs on the CPU and, when the environment
variable VECPROP_TEST_CUDA=1 is set (on a GPU machine with a `cuda` build), on "cuda" as
well. Without it the cuda parameter is deselected explicitly, and the report header says
so: nothing is skipped silently. With it, a missing GPU fails the cuda tests loudly.
"""

import os

import pytest

CUDA_ENABLED = os.environ.get("VECPROP_TEST_CUDA") == "1"
DEVICES = ["cpu", "cuda"] if CUDA_ENABLED else ["cpu"]


def pytest_report_header(config):
    if CUDA_ENABLED:
        return "vecprop devices under test: cpu, cuda (VECPROP_TEST_CUDA=1)"
    return "vecprop devices under test: cpu only (set VECPROP_TEST_CUDA=1 to add cuda)"


@pytest.fixture(params=DEVICES)
def device(request):
    """The device string passed to vecprop.load / vecprop.from_arrays."""
    return request.param

