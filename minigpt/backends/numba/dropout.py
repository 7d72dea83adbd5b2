"""Dropout: out = x * mask in one loop. Reference: minigpt/ops/dropout.py; math: docs/ops/dropout.md."""

import numba
import numpy as np

from minigpt.backends.numba import OPTIONS, compile_once
from minigpt.validate import check_contiguous


@numba.njit(**OPTIONS)
def apply_loops(out, x, mask):
    """x (n,), mask (n,) -> out (n,) = x * mask"""
    for i in range(x.shape[0]):
        out[i] = x[i] * mask[i]


@compile_once
def apply_kernel(x, mask):
    check_contiguous("dropout", x=x, mask=mask)
    out = np.empty_like(x)  # (...)
    apply_loops(out.reshape(-1), x.reshape(-1), mask.reshape(-1))
    return out
