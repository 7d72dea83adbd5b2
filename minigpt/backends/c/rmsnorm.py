"""RMSNorm through the C kernels (kernels/rmsnorm.c). Same contract as minigpt/ops/rmsnorm.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def forward_kernel(x, w, eps):
    B, T, C = x.shape
    check_contiguous("rmsnorm", x=x, w=w)
    out = np.empty_like(x)  # (B, T, C)
    rstd = np.empty((B, T), dtype=x.dtype)  # (B, T)
    kernel("rmsnorm_forward", x.dtype)(ptr(out), ptr(rstd), ptr(x), ptr(w), B * T, C, eps)
    return out, rstd


def backward_kernel(dout, x, rstd, w):
    B, T, C = x.shape
    check_contiguous("rmsnorm backward", dout=dout, x=x, w=w, rstd=rstd)
    dx = np.empty_like(x)  # (B, T, C)
    dw = np.empty(C, dtype=x.dtype)  # (C,)
    kernel("rmsnorm_backward", x.dtype)(ptr(dx), ptr(dw), ptr(dout), ptr(x), ptr(w), ptr(rstd), B * T, C)
    return dx, dw
