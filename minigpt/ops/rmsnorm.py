"""RMSNorm over channels, as Llama and Qwen normalise: out = x / sqrt(mean(x^2) + eps) * w, no mean subtracted and no
bias (Hugging Face's LlamaRMSNorm; Qwen 3 uses the same over each head's queries and keys, QK-norm).

LlamaRMSNorm computes in float32 whatever its input's precision, then casts back before the gain: for the float32
and float64 that minigpt computes in, that upcast changes nothing, and the kernel below computes in the input's
precision. Math and derivation: docs/ops/rmsnorm.md. Test: tests/ops/test_rmsnorm.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype, check_shape

EPS = 1e-6  # Llama 3's and Qwen 3's rms_norm_eps (SmolLM 2 uses 1e-5: every model's config says its own)


class RMSNormCache(NamedTuple):
    x: np.ndarray  # (B, T, C) the input
    rstd: np.ndarray  # (B, T) 1 / sqrt(mean(x^2) + eps); norm = x * rstd
    w: np.ndarray  # (C,) the gain, for dnorm


# --8<-- [start:forward]
def forward(x, w, eps=EPS, kernels=NUMPY):
    """x (B, T, C), w (C,) -> out (B, T, C). kernels: a backend's table (minigpt/backends); NUMPY: the NumPy
    kernel below."""
    B, T, C = x.shape
    check_shape("rmsnorm weight w", w, (C,))
    check_same_dtype("rmsnorm", x=x, w=w)
    out, rstd = kernels.rmsnorm.forward_kernel(x, w, eps)  # (B, T, C), (B, T)
    return out, RMSNormCache(x, rstd, w)


def forward_kernel(x, w, eps):
    ms = (x * x).mean(axis=-1)  # (B, T) the mean square: what layer norm's variance is without the mean
    rstd = 1.0 / np.sqrt(ms + eps)  # (B, T) eps inside the root keeps a row of zeros finite
    out = x * rstd[..., None] * w  # (B, T, C) norm * w
    return out, rstd
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, kernels=NUMPY):
    """dout (B, T, C) -> dx (B, T, C), dw (C,)."""
    check_shape("rmsnorm dout", dout, cache.x.shape)
    check_same_dtype("rmsnorm backward", dout=dout, x=cache.x)
    return kernels.rmsnorm.backward_kernel(dout, cache.x, cache.rstd, cache.w)


def backward_kernel(dout, x, rstd, w):
    norm = x * rstd[..., None]  # (B, T, C) recomputed from the one number per row the forward kept
    dw = (dout * norm).sum(axis=(0, 1))  # (C,)
    dnorm = dout * w  # (B, T, C)
    # dx = rstd * (dnorm - norm * mean(dnorm * norm)), docs/ops/rmsnorm.md eq. (RMS-dx): layer norm's (LN-dx) without
    # the term through the mean, which RMSNorm does not subtract
    dnorm_norm_mean = (dnorm * norm).mean(axis=-1, keepdims=True)  # (B, T, 1)
    dx = rstd[..., None] * (dnorm - norm * dnorm_norm_mean)  # (B, T, C)
    return dx, dw
# --8<-- [end:backward]
