import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import policy_gradient
from strategies import arrays
from tolerances import FLOAT64_LOOP_RTOL, FLOAT64_RTOL, GRAD_RTOL


@st.composite
def completions(draw):
    N, T = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    valid = draw(arrays((N, T))) < 0.8
    valid[:, 0] = True  # every completion has a token
    return -np.abs(draw(arrays((N, T), scale=3.0))), draw(arrays((N,))), valid


@given(completions())
@settings(max_examples=80)
def test_gradients_match_finite_differences(inputs):
    logp, advantages, valid = inputs
    forward = lambda logp: policy_gradient.forward(logp, advantages, valid)  # noqa: E731
    report = check_op(forward, policy_gradient.backward, {"logp": logp})
    assert report.max_rel_error < GRAD_RTOL, report


@given(completions())
def test_loss_is_minus_the_advantage_weighted_mean_of_the_completions_log_probabilities(inputs):
    logp, advantages, valid = inputs
    loss, _ = policy_gradient.forward(logp, advantages, valid)
    terms = [-a * sum(lp for lp, v in zip(row, ok) if v) for row, a, ok in zip(logp, advantages, valid)]
    assert loss == pytest.approx(sum(terms) / len(terms), rel=FLOAT64_LOOP_RTOL, abs=1e-300)


@given(st.integers(1, 4), st.integers(2, 8), st.integers(0, 2**16))
def test_leave_one_out_advantages(P, G, seed):
    rewards = np.random.default_rng(seed).integers(0, 2, size=(P, G)).astype(float)
    A = policy_gradient.advantages(rewards, "leave-one-out")
    for p in range(P):
        for i in range(G):
            others = [rewards[p, j] for j in range(G) if j != i]
            assert A[p, i] == pytest.approx(rewards[p, i] - sum(others) / len(others), rel=FLOAT64_RTOL, abs=1e-15)
    np.testing.assert_allclose(A.sum(axis=1), 0.0, atol=1e-12)  # a group's advantages add up to nothing


@given(st.integers(1, 4), st.integers(2, 8), st.integers(0, 2**16))
def test_grpo_advantages_are_the_group_normalised_rewards(P, G, seed):
    rewards = np.random.default_rng(seed).normal(size=(P, G))
    A = policy_gradient.advantages(rewards, "grpo")
    mean, std = rewards.mean(axis=1, keepdims=True), rewards.std(axis=1, keepdims=True)
    np.testing.assert_allclose(A, (rewards - mean) / (std + policy_gradient.GRPO_EPS), rtol=FLOAT64_RTOL)
    same = policy_gradient.advantages(np.ones((1, G)), "grpo")
    np.testing.assert_array_equal(same, 0.0)  # a group whose completions all score alike teaches nothing


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least 2 completions"):
        policy_gradient.advantages(np.ones((3, 1)))
    with pytest.raises(ValueError, match="expected leave-one-out or grpo"):
        policy_gradient.advantages(np.ones((3, 2)), "ppo")
    with pytest.raises(ValueError, match="must be"):
        policy_gradient.forward(np.zeros((2, 3)), np.zeros(3), np.ones((2, 3), bool))
