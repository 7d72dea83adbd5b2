"""Linear (affine) map: out = x @ w + b, with w of shape (C, OC) as in GPT-2's Conv1D layout.

Math and derivation: docs/ops/linear.md. Test: tests/ops/test_linear.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.validate import check_shape


class LinearCache(NamedTuple):
    x: np.ndarray  # (B, T, C) the input, for dw
    w: np.ndarray  # (C, OC) the weight, for dx
    has_bias: bool


# --8<-- [start:forward]
def forward(x, w, b=None):
    """x (B, T, C), w (C, OC), b (OC,) or None -> out (B, T, OC)."""
    B, T, C = x.shape
    check_shape("linear weight w", w, (C, None))
    OC = w.shape[1]
    out = (x.reshape(B * T, C) @ w).reshape(B, T, OC)  # (B, T, OC): one matmul over all B*T rows
    if b is not None:
        check_shape("linear bias b", b, (OC,))
        out += b  # (B, T, OC)
    return out, LinearCache(x, w, b is not None)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache):
    """dout (B, T, OC) -> dx (B, T, C), dw (C, OC), db (OC,) or None."""
    x, w = cache.x, cache.w
    B, T, C = x.shape
    OC = w.shape[1]
    dx = (dout.reshape(B * T, OC) @ w.T).reshape(B, T, C)  # (B, T, C)
    if w.flags.c_contiguous:
        dw = x.reshape(B * T, C).T @ dout.reshape(B * T, OC)  # (C, OC): sum over every position of x^T dout
    else:  # w is a transposed view (the tied LM head's wte^T): give dw the same layout, so dw.T is contiguous
        dw = (dout.reshape(B * T, OC).T @ x.reshape(B * T, C)).T  # (C, OC), a view of an (OC, C) array
    db = dout.sum(axis=(0, 1)) if cache.has_bias else None  # (OC,)
    return dx, dw, db
# --8<-- [end:backward]
