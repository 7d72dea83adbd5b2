"""GELU through the C kernels (kernels/gelu.c). Same contract as minigpt/ops/gelu.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.backends.common import check_arrays
from minigpt.ops.gelu import GeluCache


def forward(x):
    """x (...) -> out (...)."""
    check_arrays("gelu", x.dtype, x=x)
    out = np.empty_like(x)  # (...)
    kernel("gelu_forward", x.dtype)(ptr(out), ptr(x), x.size)
    return out, GeluCache(x)


def backward(dout, cache):
    """dout (...) -> dx (...)."""
    check_arrays("gelu backward", cache.x.dtype, dout=dout)
    dx = np.empty_like(dout)  # (...)
    kernel("gelu_backward", dout.dtype)(ptr(dx), ptr(cache.x), ptr(dout), dout.size)
    return dx
