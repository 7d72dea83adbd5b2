"""Softmax over the last axis: p_i = exp(x_i - max_j x_j) / sum_k exp(x_k - max_j x_j), and its normaliser
log-sum-exp, lse(x) = log sum_k exp(x_k), with which p_i = exp(x_i - lse(x)).

Entries equal to -inf (the causal mask) get probability exactly 0. Every row needs at least one
finite entry. Math and derivation: docs/ops/softmax.md. Test: tests/ops/test_softmax.py.
"""

from typing import NamedTuple

import numpy as np


class SoftmaxCache(NamedTuple):
    p: np.ndarray  # (..., N) the probabilities: the Jacobian needs nothing else


# --8<-- [start:forward]
def forward(x):
    """x (..., N) -> p (..., N), each row summing to 1."""
    # Subtracting the row max changes nothing mathematically (it cancels between numerator and
    # denominator) but keeps exp() from overflowing: the largest exponent becomes exp(0) = 1.
    z = x - x.max(axis=-1, keepdims=True)  # (..., N)
    e = np.exp(z)  # (..., N)
    p = e / e.sum(axis=-1, keepdims=True)  # (..., N)
    return p, SoftmaxCache(p)


def logsumexp(x):
    """x (..., N) -> log sum_i exp(x_i) (..., 1), computed with the max subtracted, as forward does."""
    m = x.max(axis=-1, keepdims=True)  # (..., 1)
    return m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True))  # (..., 1)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dp, cache):
    """dp (..., N) -> dx (..., N).

    The Jacobian is dp_i/dx_j = p_i (delta_ij - p_j), so the vector-Jacobian product is
    dx_j = p_j (dp_j - sum_i dp_i p_i)   (docs/ops/softmax.md eq. (SM-dx)).
    """
    p = cache.p
    dx = p * (dp - (dp * p).sum(axis=-1, keepdims=True))  # (..., N)
    return dx
# --8<-- [end:backward]
