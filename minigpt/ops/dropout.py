"""Inverted dropout: zero each activation with probability p and scale the survivors by 1 / (1 - p),
so the expected output equals the input and nothing needs rescaling at evaluation time.

Math and derivation: docs/ops/dropout.md. Test: tests/ops/test_dropout.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.ops.reference import NUMPY


class DropoutCache(NamedTuple):
    mask: np.ndarray | None  # (...) 0 or 1 / (1 - p) per element; None when nothing was dropped


# --8<-- [start:forward]
def make_mask(shape, p, rng, dtype):
    """(...) 0 with probability p, else 1 / (1 - p); None for p == 0 (no random draw)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if p == 0.0:
        return None
    keep = rng.random(shape, dtype=dtype) >= p  # (...) True with probability 1 - p
    return keep.astype(dtype) / dtype.type(1.0 - p)  # (...)


def forward(x, p, rng, kernels=NUMPY):
    """x (...), p in [0, 1), rng a numpy Generator -> out (...). p == 0 is the identity. kernels: a backend's table
    (minigpt/backends); NUMPY: the NumPy kernel below."""
    mask = make_mask(x.shape, p, rng, x.dtype)  # (...)
    if mask is None:
        return x, DropoutCache(None)
    return kernels.dropout.apply_kernel(x, mask), DropoutCache(mask)  # (...)


def apply_kernel(x, mask):
    """The kernel, forward and backward: x (...) * mask (...)."""
    return x * mask  # (...)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, kernels=NUMPY):
    """dout (...) -> dx (...): the same mask, since out = x * mask is linear in x."""
    if cache.mask is None:
        return dout
    return kernels.dropout.apply_kernel(dout, cache.mask)  # (...)
# --8<-- [end:backward]
