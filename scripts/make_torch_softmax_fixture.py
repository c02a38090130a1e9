#!/usr/bin/env python3
"""Writes the PyTorch softmax fixtures that tests/all/activations.rs holds every kernel to.

Rows holding NaN, +inf and -inf at different columns, at widths that take each kernel's
scalar path (3), its 16-byte vector path (8), several warp lanes (40) and several column
slots per lane (130), and torch.softmax(dim=1) of each in float32, on the CPU:

  tests/fixtures/torch_softmax_rows_w{3,8,40,130}.npy   float32 inputs, one row per case
  tests/fixtures/torch_softmax_w{3,8,40,130}.npy        torch.softmax(rows, dim=1)

Run from the repository root:  python3 scripts/make_torch_softmax_fixture.py
(pinned: torch==2.6.0, numpy==2.1.3, as scripts/requirements-models.txt)
"""

import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
NAN, INF = float("nan"), float("inf")


def rows(width: int) -> np.ndarray:
    """The cases at one width: each special value first, last and in the middle column."""
    rng = np.random.default_rng(width)
    base = rng.uniform(-4, 4, size=width).astype(np.float32)
    cases = [base.copy()]
    for value in (NAN, INF):
        for col in sorted({0, width // 2, width - 1}):
            row = base.copy()
            row[col] = value
            cases.append(row)
    minus = base.copy()
    minus[width // 2] = -INF
    cases.append(minus)  # -inf among finite values: 0 there
    cases.append(np.full(width, -INF, np.float32))  # nothing but -inf: NaN
    both = base.copy()
    both[0], both[width - 1] = -INF, NAN
    cases.append(both)
    return np.stack(cases).astype(np.float32)


def main() -> None:
    for width in (3, 8, 40, 130):
        x = rows(width)
        y = torch.softmax(torch.from_numpy(x), dim=1).numpy()
        np.save(os.path.join(OUT, f"torch_softmax_rows_w{width}.npy"), x)
        np.save(os.path.join(OUT, f"torch_softmax_w{width}.npy"), y.astype(np.float32))
        print(f"width {width}: {len(x)} rows, {int(np.isnan(y).any(axis=1).sum())} NaN rows")


if __name__ == "__main__":
    main()
