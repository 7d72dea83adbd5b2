import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import dpo
from strategies import arrays
from tolerances import FLOAT64_LOOP_RTOL, GRAD_RTOL, TORCH_RTOL_FLOAT64

betas = st.sampled_from([0.01, 0.1, 0.5, 2.0])


@st.composite
def pairs(draw):
    """The four (B,) log-probabilities of B pairs: negative, as log-probabilities of completions are."""
    B = draw(st.integers(1, 5))
    return tuple(-np.abs(draw(arrays((B,), scale=20.0))) for _ in range(4))


@given(pairs(), betas)
@settings(max_examples=80)
def test_gradients_match_finite_differences(logps, beta):
    chosen, rejected, ref_chosen, ref_rejected = logps
    forward = lambda chosen, rejected: dpo.forward(chosen, rejected, ref_chosen, ref_rejected, beta)  # noqa: E731
    report = check_op(forward, dpo.backward, {"chosen": chosen, "rejected": rejected})
    assert report.max_rel_error < GRAD_RTOL, report


@given(pairs(), betas)
def test_loss_is_the_mean_negative_log_sigmoid_of_the_margin(logps, beta):
    chosen, rejected, ref_chosen, ref_rejected = logps
    loss, _ = dpo.forward(chosen, rejected, ref_chosen, ref_rejected, beta)
    terms = []
    for c, r, rc, rr in zip(chosen, rejected, ref_chosen, ref_rejected):
        z = beta * ((c - rc) - (r - rr))
        terms.append(math.log1p(math.exp(-z)) if z > -700 else -z)  # -log sigmoid(z), textbook
    assert loss == pytest.approx(sum(terms) / len(terms), rel=FLOAT64_LOOP_RTOL)


@given(pairs(), betas)
def test_equals_trl_dpo_loss_in_torch(logps, beta):
    """The sigmoid loss as TRL's DPOTrainer.dpo_loss computes it (label_smoothing 0), and its gradient by autograd."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    chosen, rejected, ref_chosen, ref_rejected = logps
    loss, cache = dpo.forward(chosen, rejected, ref_chosen, ref_rejected, beta)
    dchosen, drejected = dpo.backward(1.0, cache)
    tc, tr = (torch.tensor(a, requires_grad=True) for a in (chosen, rejected))
    logits = (tc - tr) - (torch.tensor(ref_chosen) - torch.tensor(ref_rejected))  # TRL: logratios - ref_logratios
    losses = -F.logsigmoid(beta * logits)
    losses.mean().backward()
    assert loss == pytest.approx(losses.mean().item(), rel=TORCH_RTOL_FLOAT64)
    for ours, theirs in ((dchosen, tc.grad), (drejected, tr.grad)):
        theirs = theirs.numpy()
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=TORCH_RTOL_FLOAT64 * np.abs(theirs).max())


@given(pairs(), betas)
def test_each_pair_is_weighted_by_how_wrong_the_model_is(logps, beta):
    """dloss/dlogp_chosen = -beta sigmoid(-z) / B: largest for a pair ranked wrong, and never of the wrong sign."""
    chosen, rejected, ref_chosen, ref_rejected = logps
    _, cache = dpo.forward(chosen, rejected, ref_chosen, ref_rejected, beta)
    dchosen, drejected = dpo.backward(1.0, cache)
    assert np.all(dchosen <= 0) and np.all(drejected >= 0)  # raise the chosen, lower the rejected
    np.testing.assert_allclose(dchosen, -drejected, rtol=0, atol=0)
    weight = -dchosen * len(chosen) / beta  # sigmoid(-z)
    order = np.argsort(cache.z)
    assert np.all(np.diff(weight[order]) <= 1e-15)  # the wider the margin, the smaller the weight


def test_at_the_reference_the_loss_is_log_2_and_the_weight_one_half():
    logp = np.array([-3.0, -7.0])
    loss, cache = dpo.forward(logp, logp[::-1], logp, logp[::-1], 0.1)
    assert loss == pytest.approx(math.log(2.0))
    np.testing.assert_allclose(dpo.backward(1.0, cache)[0], [-0.1 * 0.5 / 2] * 2)


def test_extreme_margins_stay_finite():
    big = np.array([1e6, -1e6])
    loss, cache = dpo.forward(big, -big, np.zeros(2), np.zeros(2), 1.0)
    assert loss == pytest.approx(2e6 / 2)  # softplus(2e6) for the second pair, 0 for the first
    dchosen, _ = dpo.backward(1.0, cache)
    np.testing.assert_array_equal(dchosen, [-0.0, -0.5])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="beta must be > 0"):
        dpo.forward(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="ref_rejected has shape"):
        dpo.forward(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(3), 0.1)
