"""Layer norm over channels: out = (x - mean) / sqrt(var + eps) * w + b, biased variance, eps 1e-5 (GPT-2).

Math and derivation: docs/ops/layernorm.md. Test: tests/ops/test_layernorm.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype, check_shape

EPS = 1e-5  # GPT-2's layer_norm_epsilon


class LayerNormCache(NamedTuple):
    x: np.ndarray  # (B, T, C) the input
    mean: np.ndarray  # (B, T) its mean over channels
    rstd: np.ndarray  # (B, T) reciprocal standard deviation 1 / sqrt(var + eps); norm = (x - mean) * rstd
    w: np.ndarray  # (C,) the gain, for dnorm
    has_bias: bool


# --8<-- [start:forward]
def forward(x, w, b=None, eps=EPS, kernels=NUMPY):
    """x (B, T, C), w (C,), b (C,) or None -> out (B, T, C). kernels: a backend's table (minigpt/backends); NUMPY:
    the NumPy kernel below."""
    B, T, C = x.shape
    check_shape("layer norm weight w", w, (C,))
    if b is not None:
        check_shape("layer norm bias b", b, (C,))
    check_same_dtype("layernorm", x=x, w=w, b=b)
    out, mean, rstd = kernels.layernorm.forward_kernel(x, w, b, eps)  # (B, T, C), (B, T), (B, T)
    return out, LayerNormCache(x, mean, rstd, w, b is not None)


def forward_kernel(x, w, b, eps):
    mean = x.mean(axis=-1)  # (B, T)
    xc = x - mean[..., None]  # (B, T, C)
    var = (xc * xc).mean(axis=-1)  # (B, T) biased: divide by C, not C - 1
    rstd = 1.0 / np.sqrt(var + eps)  # (B, T) eps inside the root keeps a constant row finite
    norm = xc * rstd[..., None]  # (B, T, C)
    out = norm * w  # (B, T, C)
    if b is not None:
        out += b  # (B, T, C)
    return out, mean, rstd
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, kernels=NUMPY):
    """dout (B, T, C) -> dx (B, T, C), dw (C,), db (C,) or None."""
    check_shape("layer norm dout", dout, cache.x.shape)
    check_same_dtype("layernorm backward", dout=dout, x=cache.x)
    return kernels.layernorm.backward_kernel(dout, cache.x, cache.mean, cache.rstd, cache.w, cache.has_bias)


def backward_kernel(dout, x, mean, rstd, w, has_bias):
    # the forward kept two numbers per row, mean and rstd, rather than a third (B, T, C) array: norm is recomputed
    norm = (x - mean[..., None]) * rstd[..., None]  # (B, T, C)
    dw = (dout * norm).sum(axis=(0, 1))  # (C,)
    db = dout.sum(axis=(0, 1)) if has_bias else None  # (C,)
    dnorm = dout * w  # (B, T, C)
    # dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), docs/ops/layernorm.md eq. (LN-dx):
    # term 1 is the direct path, term 2 comes through the mean, term 3 through the variance.
    dnorm_mean = dnorm.mean(axis=-1, keepdims=True)  # (B, T, 1) term 2
    dnorm_norm_mean = (dnorm * norm).mean(axis=-1, keepdims=True)  # (B, T, 1) term 3
    dx = rstd[..., None] * (dnorm - dnorm_mean - norm * dnorm_norm_mean)  # (B, T, C)
    return dx, dw, db
# --8<-- [end:backward]
