"""Layer norm through the C kernels (kernels/layernorm.c). Same contract as minigpt/ops/layernorm.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def forward_kernel(x, w, b, eps):
    B, T, C = x.shape
    check_contiguous("layernorm", x=x, w=w, b=b)
    out = np.empty_like(x)  # (B, T, C)
    mean = np.empty((B, T), dtype=x.dtype)  # (B, T)
    rstd = np.empty((B, T), dtype=x.dtype)  # (B, T)
    kernel("layernorm_forward", x.dtype)(ptr(out), ptr(mean), ptr(rstd), ptr(x), ptr(w), ptr(b), B * T, C, eps)
    return out, mean, rstd


def backward_kernel(dout, x, mean, rstd, w, has_bias):
    B, T, C = x.shape
    check_contiguous("layernorm backward", dout=dout, x=x, w=w, mean=mean, rstd=rstd)
    dx = np.empty_like(x)  # (B, T, C)
    dw = np.empty(C, dtype=x.dtype)  # (C,)
    db = np.empty(C, dtype=x.dtype) if has_bias else None  # (C,)
    kernel("layernorm_backward", x.dtype)(ptr(dx), ptr(dw), ptr(db), ptr(dout), ptr(x), ptr(w), ptr(mean), ptr(rstd),
                                          B * T, C)
    return dx, dw, db
