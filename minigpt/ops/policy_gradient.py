"""The policy gradient's surrogate loss for reinforcement learning from verifiable rewards: completions sampled
from the model, each rewarded by a checker, each given an advantage against the other completions of its prompt's
group, and the surrogate whose gradient is the REINFORCE estimate of the expected reward's gradient:

    loss = -(1/N) sum_i A_i sum_t logp[i, t]         (N completions; logp 0 at the prompt and the padding)

so that -dloss/dtheta = (1/N) sum_i A_i grad log pi(o_i). The advantages are constants (computed from the rewards
before the forward). With each group's leave-one-out baseline, A_i = r_i - mean_{j != i} r_j (advantages below), the
estimate is unbiased: its expectation over the sampling is exactly the gradient of the expected reward (Kool et al.,
2019; Ahmadian et al., 2024), which tests/test_rl_estimator.py checks by enumerating a tiny model's completions.
GRPO's advantage, (r_i - mean r) / std r (Shao et al., 2024), is offered as well: lower variance, biased.
Math: docs/ops/policy_gradient.md; the runs: docs/preference.md. Test: tests/ops/test_policy_gradient.py.
"""

from typing import NamedTuple

import numpy as np

GRPO_EPS = 1e-4  # GRPO's std's floor: a group whose rewards are all equal gets advantages 0 (TRL's is 1e-4)


class PolicyGradientCache(NamedTuple):
    advantages: np.ndarray  # (N,) each completion's advantage
    valid: np.ndarray  # (N, T) bool, the completion's positions


def advantages(rewards, kind: str = "leave-one-out"):
    """rewards (P, G), a group of G completions for each of P prompts -> advantages (P, G).

    leave-one-out: r_i - the mean of the group's other rewards (G >= 2), the baseline that keeps the estimate
    unbiased, since it does not depend on o_i. grpo: (r_i - mean r) / (std r + GRPO_EPS), the group's mean and
    (population) standard deviation, as GRPO normalises."""
    rewards = np.asarray(rewards, dtype=np.float64)
    P, G = rewards.shape
    if G < 2:
        raise ValueError(f"a group needs at least 2 completions to be its own baseline, got {G}")
    if kind == "leave-one-out":
        others = (rewards.sum(axis=1, keepdims=True) - rewards) / (G - 1)  # (P, G)
        return rewards - others  # (P, G)
    if kind == "grpo":
        mean = rewards.mean(axis=1, keepdims=True)  # (P, 1)
        return (rewards - mean) / (rewards.std(axis=1, keepdims=True) + GRPO_EPS)  # (P, G)
    raise ValueError(f"advantage {kind!r}: expected leave-one-out or grpo")


# --8<-- [start:forward]
def forward(logp, advantages, valid):
    """logp (N, T) each token's log-probability (token_logprobs), advantages (N,), valid (N, T) bool the completion's
    positions -> loss (scalar)."""
    N, T = logp.shape
    if advantages.shape != (N,) or valid.shape != (N, T):
        raise ValueError(f"advantages {advantages.shape} and valid {valid.shape} must be (N,) and (N, T) for logp "
                         f"{logp.shape}")
    logp_o = np.where(valid, logp, 0.0).sum(axis=1)  # (N,) log pi(o_i), the completion's log-probability
    loss = -(advantages * logp_o).mean()  # scalar
    return loss, PolicyGradientCache(advantages, valid)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dloss, cache):
    """dloss (scalar) -> dlogp (N, T) = -dloss A_i / N at the completion's positions, 0 elsewhere
    (docs/ops/policy_gradient.md, eq. (PG-dlogp))."""
    advantages, valid = cache
    N = advantages.shape[0]
    return np.where(valid, (-dloss * advantages / N)[:, None], 0.0)  # (N, T)
# --8<-- [end:backward]
