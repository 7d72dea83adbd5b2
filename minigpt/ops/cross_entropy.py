"""Softmax cross-entropy over the vocabulary, fused and numerically stable, averaged over the positions
whose target is not `ignore_index`:

    loss = -(1/N) sum_{b,t valid} log softmax(logits[b, t])[targets[b, t]]

Math and derivation: docs/ops/cross_entropy.md. Test: tests/ops/test_cross_entropy.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.validate import check_token_ids

IGNORE_INDEX = -1  # a target equal to this is left out of the loss (nanoGPT's and minGPT's convention)


class CrossEntropyCache(NamedTuple):
    probs: np.ndarray  # (B, T, V) softmax(logits)
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
def forward(logits, targets, ignore_index=IGNORE_INDEX):
    """logits (B, T, V), targets (B, T) int -> loss (scalar, the mean over valid positions)."""
    B, T, V = logits.shape
    targets, valid, n_valid = check_targets(logits, targets, ignore_index)
    safe_targets = np.where(valid, targets, 0)  # (B, T) any in-range id; its term is masked out below

    # log softmax via log-sum-exp with the max subtracted: exp() never overflows, and the target's
    # log-probability is computed directly instead of as log(p), which would underflow to log(0).
    z = logits - logits.max(axis=-1, keepdims=True)  # (B, T, V) the largest entry of each row is 0
    sumexp = np.exp(z).sum(axis=-1, keepdims=True)  # (B, T, 1) in [1, V]
    logprobs = z - np.log(sumexp)  # (B, T, V)
    nll = -np.take_along_axis(logprobs, safe_targets[..., None], axis=-1)[..., 0]  # (B, T)
    loss = (nll * valid).sum() / n_valid  # scalar
    probs = np.exp(logprobs)  # (B, T, V)
    return loss, CrossEntropyCache(probs, safe_targets, valid, n_valid)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dloss, cache):
    """dloss (scalar, 1.0 when the loss is the final output) -> dlogits (B, T, V).

    Softmax and cross-entropy together have the simple gradient p - y (y the one-hot target):
    docs/ops/cross_entropy.md eq. (CE-dlogits).
    """
    probs, targets, valid = cache.probs, cache.targets, cache.valid
    dlogits = probs.copy()  # (B, T, V) p
    b, t = np.indices(targets.shape)  # (B, T) each
    dlogits[b, t, targets] -= 1.0  # (B, T, V) p - y
    dlogits *= (dloss / cache.n_valid) * valid[..., None]  # (B, T, V) ignored positions get 0
    return dlogits
# --8<-- [end:backward]
