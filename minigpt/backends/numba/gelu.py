"""GELU (tanh approximation). The forward saves tanh(u) for the backward, which is then one pass of
plain arithmetic (the reference recomputes tanh and makes about ten passes). The tanh itself is NumPy's:
numba, without a vector math library, calls the scalar tanh of libm, which measured some 20 times slower
than NumPy's SIMD tanh on this machine (docs/kernels.md). Reference: minigpt/ops/gelu.py; math:
docs/ops/gelu.md."""

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from minigpt.backends.common import check_arrays
from minigpt.backends.numba import threads_for
from minigpt.ops.gelu import GELU_CUBIC, GELU_SCALE


class GeluCache(NamedTuple):
    x: np.ndarray  # (...)
    th: np.ndarray  # (...) tanh(u)


@njit(cache=True, parallel=True)
def gelu_inner_kernel(u, x):
    """x (n,) -> u (n,) = sqrt(2/pi) (x + 0.044715 x^3)"""
    for i in prange(x.shape[0]):
        u[i] = GELU_SCALE * (x[i] + GELU_CUBIC * x[i] * x[i] * x[i])


@njit(cache=True, parallel=True)
def gelu_outer_kernel(out, x, th):
    """x, th = tanh(u) (n,) -> out (n,) = 0.5 x (1 + tanh(u))"""
    for i in prange(x.shape[0]):
        out[i] = 0.5 * x[i] * (1.0 + th[i])


@njit(cache=True, parallel=True)
def gelu_backward_kernel(dx, dout, x, th):
    """dout (n,) -> dx (n,), eq. (GELU-dx), with th = tanh(u) from the forward"""
    for i in prange(x.shape[0]):
        du_dx = GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * x[i] * x[i])
        dx[i] = dout[i] * (0.5 * (1.0 + th[i]) + 0.5 * x[i] * (1.0 - th[i] * th[i]) * du_dx)


def forward(x):
    """x (...) -> out (...)."""
    check_arrays("gelu", x.dtype, x=x)
    th = np.empty_like(x)  # (...)
    out = np.empty_like(x)  # (...)
    with threads_for(x.size):
        gelu_inner_kernel(th.reshape(-1), x.reshape(-1))  # u
        np.tanh(th, out=th)  # tanh(u), in place
        gelu_outer_kernel(out.reshape(-1), x.reshape(-1), th.reshape(-1))
    return out, GeluCache(x, th)


def backward(dout, cache):
    """dout (...) -> dx (...)."""
    check_arrays("gelu backward", cache.x.dtype, dout=dout)
    dx = np.empty_like(dout)  # (...)
    with threads_for(dx.size):
        gelu_backward_kernel(dx.reshape(-1), dout.reshape(-1), cache.x.reshape(-1), cache.th.reshape(-1))
    return dx
