"""Linear (affine) map: out = x @ w + b, with w of shape (C, OC) as in GPT-2's Conv1D layout.

Math and derivation: docs/ops/linear.md. Test: tests/ops/test_linear.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype, check_shape


class LinearCache(NamedTuple):
    x: np.ndarray  # (B, T, C) the input, for dw
    w: np.ndarray  # (C, OC) the weight, for dx
    has_bias: bool


# --8<-- [start:forward]
def forward(x, w, b=None, kernels=NUMPY):
    """x (B, T, C), w (C, OC), b (OC,) or None -> out (B, T, OC). kernels: a backend's table (minigpt/backends);
    NUMPY: the NumPy kernel below."""
    B, T, C = x.shape
    check_shape("linear weight w", w, (C, None))
    OC = w.shape[1]
    if b is not None:
        check_shape("linear bias b", b, (OC,))
    check_same_dtype("linear", x=x, w=w, b=b)
    # the B*T positions are the rows of one (B*T, C) matrix: one matmul, not B of them
    out = kernels.linear.forward_kernel(x.reshape(B * T, C), w, b)  # (B*T, OC)
    return out.reshape(B, T, OC), LinearCache(x, w, b is not None)


def forward_kernel(x, w, b):
    """x (N, C), w (C, OC), b (OC,) or None -> out (N, OC)."""
    out = x @ w  # (N, OC)
    if b is not None:
        out += b  # (N, OC)
    return out
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, kernels=NUMPY, weight_grad=True):
    """dout (B, T, OC) -> dx (B, T, C), dw (C, OC), db (OC,) or None. weight_grad=False, for a frozen weight (LoRA's
    base, minigpt/lora.py), computes dx alone: dw and db are None."""
    x, w = cache.x, cache.w
    B, T, C = x.shape
    OC = w.shape[1]
    check_shape("linear dout", dout, (B, T, OC))
    check_same_dtype("linear backward", dout=dout, x=x)
    if not weight_grad:  # dx = dout w^T: the forward kernel's product, with w^T as the weight
        dx = kernels.linear.forward_kernel(dout.reshape(B * T, OC), w.T, None)  # (N, C)
        return dx.reshape(B, T, C), None, None
    dx, dw, db = kernels.linear.backward_kernel(dout.reshape(B * T, OC), x.reshape(B * T, C), w,
                                                cache.has_bias)  # (N, C), (C, OC), (OC,)
    return dx.reshape(B, T, C), dw, db


def backward_kernel(dout, x, w, has_bias):
    """dout (N, OC), x (N, C), w (C, OC) -> dx (N, C), dw (C, OC), db (OC,) or None."""
    dx = dout @ w.T  # (N, C)
    if w.flags.c_contiguous:
        dw = x.T @ dout  # (C, OC): sum over every position of x^T dout
    else:  # w is a transposed view (the tied LM head's wte^T): give dw the same layout, so dw.T is contiguous
        dw = (dout.T @ x).T  # (C, OC), a view of an (OC, C) array
    db = dout.sum(axis=0) if has_bias else None  # (OC,)
    return dx, dw, db
# --8<-- [end:backward]
