"""LoRA (Hu et al., 2021): a frozen linear map plus a trainable update of low rank r, as PEFT computes it:

    out = linear(x) + s dropout(x) A^T B^T          A (r, in), B (out, r), s = alpha / r

This op is the update's branch, from x to s dropout(x) A^T B^T; the frozen map beside it is the linear op, whose
weight is read-only and so gets no gradient (minigpt/ops/linear.py). The update is the matrix s B A (out, in), of rank
at most r, never formed: the branch costs 2 r (in + out) numbers a position instead of in x out. `merge` adds it into
the weight. A and B are laid out as PEFT's lora_A.weight and lora_B.weight, whichever layout the weight has.

Math and derivation: docs/ops/lora.md. Test: tests/ops/test_lora.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.ops import dropout
from minigpt.validate import check_same_dtype, check_shape


class LoRACache(NamedTuple):
    xd: np.ndarray  # (N, in) the input after the adapter's dropout
    h: np.ndarray  # (N, r) xd A^T, the input in the update's r dimensions
    A: np.ndarray  # (r, in)
    B: np.ndarray  # (out, r)
    scale: float  # s = alpha / r
    drop: tuple  # the dropout's cache
    shape: tuple  # (B, T, in) of x


# --8<-- [start:forward]
def forward(x, A, B, scale, p_drop=0.0, rng=None, kernels=None):
    """x (B, T, in), A (r, in), B (out, r) -> out (B, T, out) = scale dropout(x) A^T B^T."""
    Bt, T, C = x.shape
    check_shape("lora A", A, (None, C))
    r = A.shape[0]
    check_shape("lora B", B, (None, r))
    check_same_dtype("lora", x=x, A=A, B=B)
    xd, drop = dropout.forward(x, p_drop, rng, kernels)  # (B, T, in)
    xd = xd.reshape(Bt * T, C)  # (N, in)
    h = xd @ A.T  # (N, r)
    out = scale * (h @ B.T)  # (N, out)
    return out.reshape(Bt, T, -1), LoRACache(xd, h, A, B, scale, drop, x.shape)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, kernels=None):
    """dout (B, T, out) -> dx (B, T, in), dA (r, in), dB (out, r): the branch's part of dx (the frozen map adds its
    own)."""
    Bt, T, C = cache.shape
    dout = dout.reshape(Bt * T, -1)  # (N, out)
    check_shape("lora dout", dout, (Bt * T, cache.B.shape[0]))
    dB = cache.scale * (dout.T @ cache.h)  # (out, r)
    dh = cache.scale * (dout @ cache.B)  # (N, r)
    dA = dh.T @ cache.xd  # (r, in)
    dxd = dh @ cache.A  # (N, in)
    dx = dropout.backward(dxd.reshape(Bt, T, C), cache.drop, kernels)  # (B, T, in)
    return dx, dA, dB
# --8<-- [end:backward]


def delta(A, B, scale, transposed: bool):
    """The update s B A (out, in) as a weight: (out, in) as Llama's are stored, or (in, out) (transposed) as GPT-2's."""
    d = scale * (B @ A)  # (out, in)
    return d.T if transposed else d


def merge(w, A, B, scale, transposed: bool):
    """w + s B A, in w's layout: the adapted weight, for a model without the branch."""
    return w + delta(A, B, scale, transposed).astype(w.dtype)


def unmerge(w, A, B, scale, transposed: bool):
    """The inverse of merge, up to rounding: w - s B A."""
    return w - delta(A, B, scale, transposed).astype(w.dtype)
