"""Layer norm over channels: out = (x - mean) / sqrt(var + eps) * w + b, biased variance, eps 1e-5 (GPT-2).

Math and derivation: docs/ops/layernorm.md. Test: tests/ops/test_layernorm.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.validate import check_shape

EPS = 1e-5  # GPT-2's layer_norm_epsilon


class LayerNormCache(NamedTuple):
    norm: np.ndarray  # (B, T, C) the normalised input, before the affine
    rstd: np.ndarray  # (B, T, 1) reciprocal standard deviation 1 / sqrt(var + eps)
    w: np.ndarray  # (C,) the gain, for dnorm
    has_bias: bool


# --8<-- [start:forward]
def forward(x, w, b=None, eps=EPS):
    """x (B, T, C), w (C,), b (C,) or None -> out (B, T, C)."""
    B, T, C = x.shape
    check_shape("layer norm weight w", w, (C,))
    mean = x.mean(axis=-1, keepdims=True)  # (B, T, 1)
    xc = x - mean  # (B, T, C)
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (B, T, 1) biased: divide by C, not C - 1
    rstd = 1.0 / np.sqrt(var + eps)  # (B, T, 1) eps inside the root keeps a constant row finite
    norm = xc * rstd  # (B, T, C)
    out = norm * w  # (B, T, C)
    if b is not None:
        check_shape("layer norm bias b", b, (C,))
        out += b  # (B, T, C)
    return out, LayerNormCache(norm, rstd, w, b is not None)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache):
    """dout (B, T, C) -> dx (B, T, C), dw (C,), db (C,) or None."""
    norm, rstd, w = cache.norm, cache.rstd, cache.w
    dw = (dout * norm).sum(axis=(0, 1))  # (C,)
    db = dout.sum(axis=(0, 1)) if cache.has_bias else None  # (C,)
    dnorm = dout * w  # (B, T, C)
    # dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), docs/ops/layernorm.md eq. (LN-dx):
    # term 1 is the direct path, term 2 comes through the mean, term 3 through the variance.
    dnorm_mean = dnorm.mean(axis=-1, keepdims=True)  # (B, T, 1) term 2
    dnorm_norm_mean = (dnorm * norm).mean(axis=-1, keepdims=True)  # (B, T, 1) term 3
    dx = rstd * (dnorm - dnorm_mean - norm * dnorm_norm_mean)  # (B, T, C)
    return dx, dw, db
# --8<-- [end:backward]
