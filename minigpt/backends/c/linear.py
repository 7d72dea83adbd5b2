"""Linear layer through the C matmul kernels (kernels/matmul.c). Same contract as minigpt/ops/linear.py.
A weight that is a transposed view (the tied LM head's wte^T) is not laid out as the kernel expects; it
goes to the reference (BLAS), which reads transposed matrices natively, instead of being copied."""

import numpy as np

from minigpt.backends.c import check_contiguous, kernel, ptr
from minigpt.ops import linear as reference


def forward_kernel(x, w, b):
    if not w.flags.c_contiguous:
        return reference.forward_kernel(x, w, b)
    N, C = x.shape
    OC = w.shape[1]
    check_contiguous("linear", x=x, b=b)
    out = np.empty((N, OC), dtype=x.dtype)  # (N, OC)
    kernel("matmul_forward", x.dtype)(ptr(out), ptr(x), ptr(w), ptr(b), N, C, OC)
    return out


def backward_kernel(dout, x, w, has_bias):
    if not w.flags.c_contiguous:
        return reference.backward_kernel(dout, x, w, has_bias)
    N, C = x.shape
    OC = w.shape[1]
    check_contiguous("linear backward", dout=dout, x=x)
    dx = np.empty_like(x)  # (N, C)
    dw = np.empty_like(w)  # (C, OC)
    db = np.empty(OC, dtype=x.dtype) if has_bias else None  # (OC,)
    kernel("matmul_backward", x.dtype)(ptr(dx), ptr(dw), ptr(db), ptr(dout), ptr(x), ptr(w), N, C, OC)
    return dx, dw, db
