"""Layer norm: per row, one pass for the mean, one for the variance (both summed in float64, in four partial
sums so that one addition need not wait for the previous one) and one to write the output; the backward
recomputes norm from the two numbers per row the forward kept, makes one pass for norm, dnorm and the parameter
gradients, one for each of its two row sums and one to write dx. The parameter gradients, sums over all rows, are
summed in float64. A row's xc, norm and dnorm go in buffers of one row each, which the wrappers allocate once a call
(a kernel does not allocate): each array holds one quantity.
Reference: minigpt/ops/layernorm.py; math: docs/ops/layernorm.md."""

import numba
import numpy as np

from minigpt.backends.numba import OPTIONS, compile_once
from minigpt.validate import check_contiguous

@numba.njit(inline="always")
def mean_of(a, b, n, shift):
    """mean over i < n of a[i] * b[i] (b None: of a[i] - shift), in float64, in four partial sums."""
    s0 = s1 = s2 = s3 = 0.0
    n4 = n - n % 4
    for i in range(0, n4, 4):
        if b is None:
            s0, s1 = s0 + (a[i] - shift), s1 + (a[i + 1] - shift)
            s2, s3 = s2 + (a[i + 2] - shift), s3 + (a[i + 3] - shift)
        else:
            s0, s1 = s0 + a[i] * b[i], s1 + a[i + 1] * b[i + 1]
            s2, s3 = s2 + a[i + 2] * b[i + 2], s3 + a[i + 3] * b[i + 3]
    for i in range(n4, n):
        s0 += a[i] - shift if b is None else a[i] * b[i]
    return ((s0 + s1) + (s2 + s3)) / n


# --8<-- [start:kernels]
@numba.njit(**OPTIONS)
def forward_loops(out, mean, rstd, xc, x, w, b, eps):
    """x (N, C) -> out (N, C), mean (N,), rstd (N,); xc (C,): one row's x - mean at a time"""
    N, C = x.shape
    real = x.dtype.type
    for n in range(N):
        x_n, out_n = x[n], out[n]  # (C,) each
        m = mean_of(x_n, None, C, 0.0)  # float64: a sum of C terms keeps its digits
        for i in range(C):
            xc[i] = x_n[i] - m
        v = mean_of(xc, xc, C, 0.0)  # biased: divide by C, not C - 1
        mean[n], rstd[n] = real(m), real(1.0 / np.sqrt(v + eps))
        m_n, s_n = mean[n], rstd[n]
        for i in range(C):
            out_n[i] = (x_n[i] - m_n) * s_n * w[i]
        if b is not None:
            for i in range(C):
                out_n[i] += b[i]


@numba.njit(**OPTIONS)
def backward_loops(dx, dw, db, norm, dnorm, dout, x, mean, rstd, w):
    """dout (N, C) -> dx (N, C); dw, db (C,): the sums over rows of dout * norm and of dout, in float64; norm, dnorm
    (C,): one row's at a time"""
    N, C = x.shape
    real = x.dtype.type
    for n in range(N):
        x_n, dout_n, dx_n = x[n], dout[n], dx[n]  # (C,) each
        m_n, s_n = mean[n], rstd[n]
        for i in range(C):
            norm[i] = (x_n[i] - m_n) * s_n
            dw[i] += dout_n[i] * norm[i]
            db[i] += dout_n[i]
            dnorm[i] = dout_n[i] * w[i]
        term2 = real(mean_of(dnorm, None, C, 0.0))  # mean(dnorm), term 2 of eq. (LN-dx)
        term3 = real(mean_of(dnorm, norm, C, 0.0))  # mean(dnorm * norm), term 3
        for i in range(C):
            dx_n[i] = s_n * (dnorm[i] - term2 - norm[i] * term3)
# --8<-- [end:kernels]


@compile_once
def forward_kernel(x, w, b, eps):
    B, T, C = x.shape
    check_contiguous("layernorm", x=x, w=w, b=b)
    out = np.empty_like(x)  # (B, T, C)
    mean = np.empty((B, T), dtype=x.dtype)  # (B, T)
    rstd = np.empty((B, T), dtype=x.dtype)  # (B, T)
    xc = np.empty(C, dtype=x.dtype)  # (C,) one row's x - mean
    forward_loops(out.reshape(B * T, C), mean.reshape(-1), rstd.reshape(-1), xc, x.reshape(B * T, C), w, b, eps)
    return out, mean, rstd


@compile_once
def backward_kernel(dout, x, mean, rstd, w, has_bias):
    B, T, C = x.shape
    check_contiguous("layernorm backward", dout=dout, x=x)
    dx = np.empty_like(x)  # (B, T, C)
    dw = np.zeros(C)  # (C,) float64
    db = np.zeros(C)  # (C,) float64
    norm = np.empty(C, dtype=x.dtype)  # (C,) one row's norm
    dnorm = np.empty(C, dtype=x.dtype)  # (C,) one row's dnorm
    backward_loops(dx.reshape(B * T, C), dw, db, norm, dnorm, dout.reshape(B * T, C), x.reshape(B * T, C),
                   mean.reshape(-1), rstd.reshape(-1), w)
    dw = dw.astype(x.dtype)  # (C,)
    db = db.astype(x.dtype) if has_bias else None  # (C,)
    return dx, dw, db
