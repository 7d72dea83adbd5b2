"""What the numba and C wrappers share: the checks before a kernel reads raw memory (it must get exactly
the dtype and layout it was written for, and a wrapper raises rather than silently copying), and the
layer-norm cache of both (x, mean, rstd, from which the backward recomputes norm, as llm.c does)."""

from typing import NamedTuple

import numpy as np

from minigpt.validate import check_shape

CHUNKS = 32  # row chunks of a parallel reduction: fixed, so results do not depend on the thread count


def check_arrays(op: str, dtype, **arrays) -> None:
    for name, a in arrays.items():
        if a is None:
            continue
        if a.dtype != dtype:
            raise ValueError(f"{op}: {name} is {a.dtype} but the other inputs are {np.dtype(dtype)}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{op}: {name} must be C-contiguous (use np.ascontiguousarray)")


class LayerNormCache(NamedTuple):
    x: np.ndarray  # (B, T, C)
    mean: np.ndarray  # (B, T)
    rstd: np.ndarray  # (B, T)
    w: np.ndarray  # (C,)
    has_bias: bool


def layernorm_outputs(x, w, b):
    """Check a layer norm's inputs and allocate what its forward kernel writes: out, mean, rstd."""
    B, T, C = x.shape
    check_shape("layer norm weight w", w, (C,))
    if b is not None:
        check_shape("layer norm bias b", b, (C,))
    check_arrays("layernorm", x.dtype, x=x, w=w, b=b)
    out = np.empty_like(x)  # (B, T, C)
    mean = np.empty((B, T), dtype=x.dtype)  # (B, T)
    rstd = np.empty((B, T), dtype=x.dtype)  # (B, T)
    return out, mean, rstd
