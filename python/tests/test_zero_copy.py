"""A C-contiguous float32 batch is read in place: the extension's heap never holds a copy
of it. A Fortran-order batch, which must be converted, shows that the measurement sees a
copy when there is one. (`_heap_peak` counts every byte the Rust side allocates.)"""

import numpy as np

import vecprop
from vecprop import _vecprop

ROWS, WIDTH = 1 << 16, 64  # 16 MiB of float32


def heap_growth(model, x):
    """The most heap the extension held during one call, beyond what it held before, as a
    fraction of the input's size."""
    before = _vecprop._heap_peak(reset=True)
    out = model(x)
    grown = _vecprop._heap_peak() - before
    np.testing.assert_allclose(out, 2.0, rtol=1e-6)
    return grown / x.nbytes


def test_c_contiguous_float32_is_not_copied(device):
    w = np.full((WIDTH, 1), 1.0 / WIDTH, np.float32)
    model = vecprop.from_arrays([(w, np.zeros(1, np.float32))], ["linear"], device=device)
    model(np.ones((4096, WIDTH), np.float32))  # warm up: scratch buffers, pools
    in_place = heap_growth(model, np.full((ROWS, WIDTH), 2.0, np.float32))
    fortran = heap_growth(model, np.full((ROWS, WIDTH), 2.0, np.float32, order="F"))
    as_f64 = heap_growth(model, np.full((ROWS, WIDTH), 2.0, np.float64))
    assert fortran >= 1.0, f"converting a Fortran-order batch held only {fortran:.2f}x its size"
    assert as_f64 >= 0.5, f"converting a float64 batch held only {as_f64:.2f}x its size"
    # The output (1 float per row, 1/64 of the input) is all a call may allocate.
    assert in_place < 0.05, f"a C-contiguous float32 batch held {in_place:.2f}x its size"
