"""Linear layer through the C matmul kernels (kernels/matmul.c). Same contract as minigpt/ops/linear.py.
A weight that is a transposed view (the tied LM head's wte^T) is not laid out as the kernel expects; it
goes to the reference (BLAS), which reads transposed matrices natively, instead of being copied."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.backends.common import check_arrays
from minigpt.ops import linear as reference
from minigpt.ops.linear import LinearCache
from minigpt.validate import check_shape


def forward(x, w, b=None):
    """x (B, T, C), w (C, OC), b (OC,) or None -> out (B, T, OC)."""
    if not w.flags.c_contiguous:
        return reference.forward(x, w, b)
    B, T, C = x.shape
    check_shape("linear weight w", w, (C, None))
    OC = w.shape[1]
    if b is not None:
        check_shape("linear bias b", b, (OC,))
    check_arrays("linear", x.dtype, x=x, w=w, b=b)
    out = np.empty((B, T, OC), dtype=x.dtype)  # (B, T, OC)
    kernel("matmul_forward", x.dtype)(ptr(out), ptr(x), ptr(w), ptr(b), B * T, C, OC)
    return out, LinearCache(x, w, b is not None)


def backward(dout, cache):
    """dout (B, T, OC) -> dx (B, T, C), dw (C, OC), db (OC,) or None."""
    x, w = cache.x, cache.w
    if not w.flags.c_contiguous:
        return reference.backward(dout, cache)
    B, T, C = x.shape
    OC = w.shape[1]
    check_arrays("linear backward", x.dtype, dout=dout)
    dx = np.empty_like(x)  # (B, T, C)
    dw = np.empty_like(w)  # (C, OC)
    db = np.empty(OC, dtype=x.dtype) if cache.has_bias else None  # (OC,)
    kernel("matmul_backward", x.dtype)(ptr(dx), ptr(dw), ptr(db), ptr(dout), ptr(x), ptr(w), B * T, C, OC)
    return dx, dw, db
