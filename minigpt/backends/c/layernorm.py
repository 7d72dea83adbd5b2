"""Layer norm through the C kernels (kernels/layernorm.c). Same contract as minigpt/ops/layernorm.py;
the cache holds x, mean and rstd, as the numba backend's does."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.backends.common import LayerNormCache, check_arrays, layernorm_outputs
from minigpt.ops.layernorm import EPS


def forward(x, w, b=None, eps=EPS):
    """x (B, T, C), w (C,), b (C,) or None -> out (B, T, C)."""
    B, T, C = x.shape
    out, mean, rstd = layernorm_outputs(x, w, b)  # (B, T, C), (B, T), (B, T)
    kernel("layernorm_forward", x.dtype)(ptr(out), ptr(mean), ptr(rstd), ptr(x), ptr(w), ptr(b), B * T, C, eps)
    return out, LayerNormCache(x, mean, rstd, w, b is not None)


def backward(dout, cache):
    """dout (B, T, C) -> dx (B, T, C), dw (C,), db (C,) or None."""
    x = cache.x
    B, T, C = x.shape
    check_arrays("layernorm backward", x.dtype, dout=dout)
    dx = np.empty_like(x)  # (B, T, C)
    dw = np.empty(C, dtype=x.dtype)  # (C,)
    db = np.empty(C, dtype=x.dtype) if cache.has_bias else None  # (C,)
    kernel("layernorm_backward", x.dtype)(ptr(dx), ptr(dw), ptr(db), ptr(dout), ptr(x), ptr(cache.w),
                                          ptr(cache.mean), ptr(cache.rstd), B * T, C)
    return dx, dw, db
