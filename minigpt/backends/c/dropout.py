"""Dropout through the C kernels (kernels/dropout.c). Same contract as minigpt/ops/dropout.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def apply_kernel(x, mask):
    check_contiguous("dropout", x=x, mask=mask)
    out = np.empty_like(x)  # (...)
    kernel("dropout", x.dtype)(ptr(out), ptr(x), ptr(mask), x.size)
    return out
