"""Layer norm, fused: per row, one pass for the mean, one for the variance, one that writes the output
(the reference makes about eight). Rows run in parallel. Like llm.c, the cache keeps x, mean and rstd,
and the backward recomputes norm from them instead of storing a second (B, T, C) array.
Reference: minigpt/ops/layernorm.py; math: docs/ops/layernorm.md."""

import numpy as np
from numba import njit, prange

from minigpt.backends.common import CHUNKS, LayerNormCache, check_arrays, layernorm_outputs
from minigpt.backends.numba import threads_for
from minigpt.ops.layernorm import EPS


# --8<-- [start:kernels]
@njit(cache=True, parallel=True)
def layernorm_forward_kernel(out, mean, rstd, x, w, b, eps):
    """x (N, C) -> out (N, C), mean (N,), rstd (N,). Statistics accumulate in float64."""
    N, C = x.shape
    for n in prange(N):
        m = 0.0
        for i in range(C):
            m += x[n, i]
        m /= C
        var = 0.0
        for i in range(C):
            xc = x[n, i] - m
            var += xc * xc
        var /= C  # biased, as GPT-2
        s = 1.0 / np.sqrt(var + eps)
        for i in range(C):
            norm = (x[n, i] - m) * s
            if b is not None:  # numba compiles this branch away when there is no bias
                out[n, i] = norm * w[i] + b[i]
            else:
                out[n, i] = norm * w[i]
        mean[n] = m
        rstd[n] = s


@njit(cache=True, parallel=True)
def layernorm_backward_kernel(dx, dw_parts, db_parts, dout, x, mean, rstd, w):
    """dout (N, C) -> dx (N, C); per chunk of rows, partial sums of dw and db (CHUNKS, C), in float64."""
    N, C = x.shape
    K = dw_parts.shape[0]
    for k in prange(K):
        for n in range(k * N // K, (k + 1) * N // K):
            # the two reductions of eq. (LN-dx): term 2 mean(dnorm), term 3 mean(dnorm * norm)
            dnorm_mean = 0.0
            dnorm_norm_mean = 0.0
            for i in range(C):
                norm = (x[n, i] - mean[n]) * rstd[n]
                dnorm = dout[n, i] * w[i]
                dnorm_mean += dnorm
                dnorm_norm_mean += dnorm * norm
            dnorm_mean /= C
            dnorm_norm_mean /= C
            for i in range(C):
                norm = (x[n, i] - mean[n]) * rstd[n]
                dnorm = dout[n, i] * w[i]
                dx[n, i] = rstd[n] * (dnorm - dnorm_mean - norm * dnorm_norm_mean)
                dw_parts[k, i] += dout[n, i] * norm
                if db_parts is not None:
                    db_parts[k, i] += dout[n, i]
# --8<-- [end:kernels]


def forward(x, w, b=None, eps=EPS):
    """x (B, T, C), w (C,), b (C,) or None -> out (B, T, C)."""
    B, T, C = x.shape
    out, mean, rstd = layernorm_outputs(x, w, b)  # (B, T, C), (B, T), (B, T)
    with threads_for(x.size):
        layernorm_forward_kernel(out.reshape(B * T, C), mean.reshape(-1), rstd.reshape(-1), x.reshape(B * T, C), w, b, eps)
    return out, LayerNormCache(x, mean, rstd, w, b is not None)


def backward(dout, cache):
    """dout (B, T, C) -> dx (B, T, C), dw (C,), db (C,) or None."""
    x = cache.x
    B, T, C = x.shape
    check_arrays("layernorm backward", x.dtype, dout=dout)
    dx = np.empty_like(x)  # (B, T, C)
    K = min(CHUNKS, B * T)
    dw_parts = np.zeros((K, C))  # (K, C) float64: sums over many rows keep their digits
    db_parts = np.zeros((K, C)) if cache.has_bias else None  # (K, C)
    with threads_for(x.size):
        layernorm_backward_kernel(dx.reshape(B * T, C), dw_parts, db_parts, dout.reshape(B * T, C),
                                  x.reshape(B * T, C), cache.mean.reshape(-1), cache.rstd.reshape(-1), cache.w)
    dw = dw_parts.sum(axis=0).astype(x.dtype)  # (C,)
    db = None if db_parts is None else db_parts.sum(axis=0).astype(x.dtype)  # (C,)
    return dx, dw, db
