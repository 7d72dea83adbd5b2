"""GELU (tanh approximation) in one pass forward and one backward, with the vectorisable tanh of
minigpt/backends/numba: the backward recomputes tanh rather than reading a saved array, as the reference does.
Reference: minigpt/ops/gelu.py; math: docs/ops/gelu.md."""

import numba
import numpy as np

from minigpt.backends.numba import OPTIONS, compile_once, tanh
from minigpt.ops.gelu import GELU_CUBIC, GELU_SCALE
from minigpt.validate import check_contiguous

@numba.njit(**OPTIONS)
def forward_loops(out, x):
    """x (n,) -> out (n,) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))"""
    real = x.dtype.type
    for i in range(x.shape[0]):
        xi = x[i]
        u = real(GELU_SCALE) * (xi + real(GELU_CUBIC) * xi * xi * xi)
        out[i] = real(0.5) * xi * (real(1) + tanh(u))


@numba.njit(**OPTIONS)
def backward_loops(dx, dout, x):
    """dout (n,) -> dx (n,), eq. (GELU-dx)"""
    real = x.dtype.type
    for i in range(x.shape[0]):
        xi = x[i]
        u = real(GELU_SCALE) * (xi + real(GELU_CUBIC) * xi * xi * xi)
        th = tanh(u)
        du_dx = real(GELU_SCALE) * (real(1) + real(3 * GELU_CUBIC) * xi * xi)
        dx[i] = dout[i] * (real(0.5) * (real(1) + th) + real(0.5) * xi * (real(1) - th * th) * du_dx)


@compile_once
def forward_kernel(x):
    check_contiguous("gelu", x=x)
    out = np.empty_like(x)  # (...)
    forward_loops(out.reshape(-1), x.reshape(-1))
    return out


@compile_once
def backward_kernel(dout, x):
    check_contiguous("gelu backward", dout=dout, x=x)
    dx = np.empty_like(x)  # (...)
    backward_loops(dx.reshape(-1), dout.reshape(-1), x.reshape(-1))
    return dx
