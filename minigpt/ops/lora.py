"""LoRA (Hu et al., 2021): a frozen linear map plus a trainable update of low rank r, as PEFT computes it:

    out = linear(x) + s dropout(x) A^T B^T          A (r, in), B (out, r), s = alpha / r

This op is the update's branch, from x to s dropout(x) A^T B^T; the frozen map beside it is the linear op, whose
weight is read-only and so gets no gradient (minigpt/ops/linear.py). The update is the matrix s B A (out, in), of rank
at most r, never formed: the branch costs r (in + out) multiplications a position instead of in x out. `merge` adds it into
the weight. A and B are laid out as PEFT's lora_A.weight and lora_B.weight, whichever layout the weight has.

Math and derivation: docs/ops/lora.md. Test: tests/ops/test_lora.py.
"""

from typing import NamedTuple

from minigpt.ops import dropout, linear
from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype, check_shape


class LoRACache(NamedTuple):
    down: tuple  # the linear op's cache of h = xd A^T (it holds xd, the input after the adapter's dropout)
    up: tuple  # and of h B^T (it holds h)
    scale: float  # s = alpha / r
    drop: tuple  # the dropout's cache


# --8<-- [start:forward]
def forward(x, A, B, scale, p_drop=0.0, rng=None, kernels=NUMPY):
    """x (B, T, in), A (r, in), B (out, r) -> out (B, T, out) = scale dropout(x) A^T B^T: two linear ops, down to r
    channels and up again (through the backend's matmul, as every other linear)."""
    C = x.shape[2]
    check_shape("lora A", A, (None, C))
    check_shape("lora B", B, (None, A.shape[0]))
    check_same_dtype("lora", x=x, A=A, B=B)
    xd, drop = dropout.forward(x, p_drop, rng, kernels)  # (B, T, in)
    h, down = linear.forward(xd, A.T, None, kernels)  # (B, T, r)
    out, up = linear.forward(h, B.T, None, kernels)  # (B, T, out)
    out *= scale
    return out, LoRACache(down, up, scale, drop)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, kernels=NUMPY):
    """dout (B, T, out) -> dx (B, T, in), dA (r, in), dB (out, r): the branch's part of dx (the frozen map adds its
    own)."""
    dh, dBt, _ = linear.backward(cache.scale * dout, cache.up, kernels)  # (B, T, r), (r, out) a view of (out, r)
    dxd, dAt, _ = linear.backward(dh, cache.down, kernels)  # (B, T, in), (in, r) a view of (r, in)
    dx = dropout.backward(dxd, cache.drop, kernels)  # (B, T, in)
    return dx, dAt.T, dBt.T
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
