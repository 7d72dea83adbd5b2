"""GELU through the C kernels (kernels/gelu.c). Same contract as minigpt/ops/gelu.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def forward_kernel(x):
    check_contiguous("gelu", x=x)
    out = np.empty_like(x)  # (...)
    kernel("gelu_forward", x.dtype)(ptr(out), ptr(x), x.size)
    return out


def backward_kernel(dout, x):
    check_contiguous("gelu backward", dout=dout, x=x)
    dx = np.empty_like(x)  # (...)
    kernel("gelu_backward", x.dtype)(ptr(dx), ptr(dout), ptr(x), x.size)
    return dx
