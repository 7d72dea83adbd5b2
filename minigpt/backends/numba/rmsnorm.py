"""RMSNorm: per row, one pass for the mean square (summed in float64, in four partial sums) and one to write the
output; the backward recomputes norm from the one number per row the forward kept, makes one pass for norm, dnorm and
the gain's gradient, one for its row sum and one to write dx. The gain's gradient, a sum over all rows, is summed in
float64. A row's norm and dnorm go in buffers of one row each, which the wrapper allocates once a call.
Reference: minigpt/ops/rmsnorm.py; math: docs/ops/rmsnorm.md."""

import numba
import numpy as np

from minigpt.backends.numba import OPTIONS, compile_once
from minigpt.backends.numba.layernorm import mean_of
from minigpt.validate import check_contiguous


# --8<-- [start:kernels]
@numba.njit(**OPTIONS)
def forward_loops(out, rstd, x, w, eps):
    """x (N, C) -> out (N, C), rstd (N,)"""
    N, C = x.shape
    real = x.dtype.type
    for n in range(N):
        x_n, out_n = x[n], out[n]  # (C,) each
        ms = mean_of(x_n, x_n, C, 0.0)  # the mean square, float64
        rstd[n] = real(1.0 / np.sqrt(ms + eps))
        s_n = rstd[n]
        for i in range(C):
            out_n[i] = x_n[i] * s_n * w[i]


@numba.njit(**OPTIONS)
def backward_loops(dx, dw, norm, dnorm, dout, x, rstd, w):
    """dout (N, C) -> dx (N, C); dw (C,): the sum over rows of dout * norm, in float64; norm, dnorm (C,): one row's
    at a time"""
    N, C = x.shape
    real = x.dtype.type
    for n in range(N):
        x_n, dout_n, dx_n = x[n], dout[n], dx[n]  # (C,) each
        s_n = rstd[n]
        for i in range(C):
            norm[i] = x_n[i] * s_n
            dw[i] += dout_n[i] * norm[i]
            dnorm[i] = dout_n[i] * w[i]
        term = real(mean_of(dnorm, norm, C, 0.0))  # mean(dnorm * norm), eq. (RMS-dx)
        for i in range(C):
            dx_n[i] = s_n * (dnorm[i] - norm[i] * term)
# --8<-- [end:kernels]


@compile_once
def forward_kernel(x, w, eps):
    B, T, C = x.shape
    check_contiguous("rmsnorm", x=x, w=w)
    out = np.empty_like(x)  # (B, T, C)
    rstd = np.empty((B, T), dtype=x.dtype)  # (B, T)
    forward_loops(out.reshape(B * T, C), rstd.reshape(-1), x.reshape(B * T, C), w, eps)
    return out, rstd


@compile_once
def backward_kernel(dout, x, rstd, w):
    B, T, C = x.shape
    check_contiguous("rmsnorm backward", dout=dout, x=x)
    dx = np.empty_like(x)  # (B, T, C)
    dw = np.zeros(C)  # (C,) float64
    norm = np.empty(C, dtype=x.dtype)  # (C,) one row's norm
    dnorm = np.empty(C, dtype=x.dtype)  # (C,) one row's dnorm
    backward_loops(dx.reshape(B * T, C), dw, norm, dnorm, dout.reshape(B * T, C), x.reshape(B * T, C),
                   rstd.reshape(-1), w)
    return dx, dw.astype(x.dtype)
