"""Softmax cross-entropy over the vocabulary, fused and numerically stable, averaged over the positions
whose target is not `ignore_index`:

    loss = -(1/N) sum_{b,t valid} log softmax(logits[b, t])[targets[b, t]]

Math and derivation: docs/ops/cross_entropy.md. Test: tests/ops/test_cross_entropy.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.ops.reference import NUMPY
from minigpt.ops.softmax import logsumexp
from minigpt.validate import check_same_dtype, check_token_ids

IGNORE_INDEX = -1  # a target equal to this is left out of the loss (nanoGPT's and minGPT's convention)


class CrossEntropyCache(NamedTuple):
    logits: np.ndarray  # (B, T, V) the input, from which the backward recomputes the probabilities
    lse: np.ndarray  # (B, T) log sum_v exp(logits[b, t, v]): softmax(logits) = exp(logits - lse)
    targets: np.ndarray  # (B, T) with ignored positions replaced by 0
    valid: np.ndarray  # (B, T) bool, False where the target was ignore_index
    n_valid: int  # N, the number of positions averaged over


def check_targets(logits, targets, ignore_index):
    """targets (B, T) -> (targets, valid (B, T) bool, n_valid), or a ValueError naming what is wrong."""
    B, T, V = logits.shape
    targets = check_token_ids(targets, V, what="target", ignore_index=ignore_index)
    if targets.shape != (B, T):
        raise ValueError(f"targets have shape {targets.shape} but logits have (B, T) = {(B, T)}")
    valid = targets != ignore_index  # (B, T)
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise ValueError(f"every target is ignore_index ({ignore_index}): there is no position to average the loss over")
    return targets, valid, n_valid


# --8<-- [start:forward]
def forward(logits, targets, ignore_index=IGNORE_INDEX, kernels=NUMPY):
    """logits (B, T, V), targets (B, T) int -> loss (scalar, the mean over valid positions). kernels: a backend's
    table (minigpt/backends); NUMPY: the NumPy kernel below."""
    check_same_dtype("cross_entropy", logits=logits)
    targets, valid, n_valid = check_targets(logits, targets, ignore_index)
    safe_targets = np.where(valid, targets, 0)  # (B, T) any in-range id; its term is masked out below
    nll, lse = kernels.cross_entropy.forward_kernel(logits, safe_targets)  # (B, T) each
    loss = (nll * valid).sum() / n_valid  # scalar
    return loss, CrossEntropyCache(logits, lse, safe_targets, valid, n_valid)


def forward_kernel(logits, targets):
    """logits (B, T, V), targets (B, T) -> nll (B, T) = -log softmax(logits)[target], lse (B, T)."""
    # log softmax = logits - lse, with the max subtracted inside logsumexp: exp() never overflows, and the
    # target's log-probability is computed directly instead of as log(p), which would underflow to log(0)
    lse = logsumexp(logits)[..., 0]  # (B, T)
    nll = lse - np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]  # (B, T)
    return nll, lse
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dloss, cache, kernels=NUMPY):
    """dloss (scalar, 1.0 when the loss is the final output) -> dlogits (B, T, V).

    Softmax and cross-entropy together have the simple gradient p - y (y the one-hot target):
    docs/ops/cross_entropy.md eq. (CE-dlogits).
    """
    weight = (cache.valid * (dloss / cache.n_valid)).astype(cache.logits.dtype)  # (B, T) ignored positions get 0
    return kernels.cross_entropy.backward_kernel(cache.logits, cache.lse, cache.targets, weight)


def backward_kernel(logits, lse, targets, weight):
    """-> dlogits (B, T, V) = weight[b, t] (softmax(logits[b, t]) - onehot(targets[b, t]))."""
    dlogits = np.exp(logits - lse[..., None])  # (B, T, V) p, recomputed from the forward's log-sum-exp
    b, t = np.indices(targets.shape)  # (B, T) each
    dlogits[b, t, targets] -= 1.0  # (B, T, V) p - y
    dlogits *= weight[..., None]  # (B, T, V)
    return dlogits
# --8<-- [end:backward]
