"""Direct preference optimisation's loss (Rafailov et al., 2023) on the summed log-probabilities of each pair's
chosen and rejected completions, under the model being trained (pi) and the frozen reference (ref):

    z[b]   = beta ((logp_chosen[b] - ref_chosen[b]) - (logp_rejected[b] - ref_rejected[b]))    the reward margin
    loss   = (1/B) sum_b -log sigmoid(z[b]) = (1/B) sum_b softplus(-z[b])

and its gradient, which weights each pair by how wrong the model is about it, sigmoid(-z[b]): a pair already ranked
right by a wide margin gives almost nothing, one ranked wrong gives up to beta/B. Only the model's log-probabilities
get gradients; the reference's are constants. Math: docs/ops/dpo.md. Test: tests/ops/test_dpo.py (finite
differences in float64, and PyTorch computing the loss as TRL's DPOTrainer does).
"""

from typing import NamedTuple

import numpy as np


class DPOCache(NamedTuple):
    z: np.ndarray  # (B,) the reward margins, beta times the difference of the log-ratios
    beta: float


def check_pairs(**arrays):
    """The four (B,) arrays of log-probabilities: one shape, B >= 1, float; else a ValueError naming the first wrong."""
    shape = None
    for name, a in arrays.items():
        if a.ndim != 1 or a.shape[0] == 0:
            raise ValueError(f"{name} must hold one log-probability a pair, shape (B,) with B >= 1; got {a.shape}")
        if shape is not None and a.shape != shape:
            raise ValueError(f"{name} has shape {a.shape}, the others {shape}: one log-probability a pair for each")
        shape = a.shape


# --8<-- [start:forward]
def forward(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta):
    """The log-probabilities (B,) of each pair's completions, under the model and the reference -> loss (scalar, the
    mean over the pairs)."""
    check_pairs(logp_chosen=logp_chosen, logp_rejected=logp_rejected, ref_chosen=ref_chosen, ref_rejected=ref_rejected)
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (how far the model may move from the reference), got {beta}")
    z = beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))  # (B,)
    loss = np.logaddexp(0.0, -z).mean()  # softplus(-z) = -log sigmoid(z), without overflow for large |z|
    return loss, DPOCache(z, beta)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dloss, cache):
    """dloss (scalar) -> (dlogp_chosen (B,), dlogp_rejected (B,)); the reference's log-probabilities are constants.

    d softplus(-z)/dz = -sigmoid(-z) (docs/ops/dpo.md, eq. (DPO-dz)); dz/dlogp_chosen = beta,
    dz/dlogp_rejected = -beta."""
    z, beta = cache
    B = z.shape[0]
    # sigmoid(-z) = exp(-softplus(z)): how wrong each pair is; accurate to the last digits for any z, where
    # 1 - sigmoid(z) or (1 - tanh(z/2))/2 cancel to a few correct digits once the pair is ranked right by a margin
    sigmoid_minus_z = np.exp(-np.logaddexp(0.0, z))  # (B,)
    dz = -dloss * sigmoid_minus_z / B  # (B,)
    return beta * dz, -beta * dz
# --8<-- [end:backward]


def rewards(logp, ref, beta):
    """DPO's implicit rewards, beta (log pi - log ref) (B,): the chosen's above the rejected's is a pair the model
    prefers as the data does (TRL's rewards/accuracies)."""
    return beta * (logp - ref)
