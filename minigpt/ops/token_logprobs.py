"""Each target token's log-probability under the logits, zero where the target is ignored: what preference training
(DPO) and the policy gradient read a completion's probability from.

    logp[b, t] = log softmax(logits[b, t])[targets[b, t]]      (0 where targets[b, t] is ignore_index)
    log pi(completion of row b) = sum_t logp[b, t]               (the prompt's and the padding's targets ignored)

It is cross-entropy without the mean (docs/ops/cross_entropy.md): the same kernels, and the same gradient
p - onehot, each position's weighted by its own upstream gradient, with the sign turned (a log-probability, not a
loss). Math: docs/ops/token_logprobs.md. Test: tests/ops/test_token_logprobs.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.ops.cross_entropy import IGNORE_INDEX, check_targets
from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype


class TokenLogprobsCache(NamedTuple):
    logits: np.ndarray  # (B, T, V) the input, from which the backward recomputes the probabilities
    lse: np.ndarray  # (B, T) log sum_v exp(logits[b, t, v])
    targets: np.ndarray  # (B, T) with ignored positions replaced by 0
    valid: np.ndarray  # (B, T) bool, False where the target was ignore_index


# --8<-- [start:forward]
def forward(logits, targets, ignore_index=IGNORE_INDEX, kernels=NUMPY):
    """logits (B, T, V), targets (B, T) int -> logp (B, T), each valid target's log-probability, 0 where ignored."""
    check_same_dtype("token_logprobs", logits=logits)
    targets, valid, _ = check_targets(logits, targets, ignore_index)
    safe_targets = np.where(valid, targets, 0)  # (B, T) any in-range id; its term is masked out below
    nll, lse = kernels.cross_entropy.forward_kernel(logits, safe_targets)  # (B, T) each
    logp = np.where(valid, -nll, 0.0).astype(logits.dtype)  # (B, T)
    return logp, TokenLogprobsCache(logits, lse, safe_targets, valid)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dlogp, cache, kernels=NUMPY):
    """dlogp (B, T) -> dlogits (B, T, V) = -dlogp[b, t] (softmax(logits[b, t]) - onehot(targets[b, t])), 0 at the
    ignored positions: d log p_y / d logits = onehot(y) - p (docs/ops/token_logprobs.md, eq. (LP-dlogits))."""
    weight = np.where(cache.valid, -np.asarray(dlogp), 0.0).astype(cache.logits.dtype)  # (B, T)
    return kernels.cross_entropy.backward_kernel(cache.logits, cache.lse, cache.targets, weight)
# --8<-- [end:backward]
