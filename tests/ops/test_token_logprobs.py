import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import cross_entropy, token_logprobs
from test_cross_entropy import ce_inputs
from tolerances import FLOAT64_LOOP_RTOL, FLOAT64_RTOL, GRAD_RTOL

IGNORE = cross_entropy.IGNORE_INDEX


@given(ce_inputs())
@settings(max_examples=80)
def test_gradients_match_finite_differences(inputs):
    logits, targets = inputs
    forward = lambda logits: token_logprobs.forward(logits, targets)  # noqa: E731
    report = check_op(forward, token_logprobs.backward, {"logits": logits})
    assert report.max_rel_error < GRAD_RTOL, report


@given(ce_inputs())
def test_each_is_the_log_probability_of_its_target(inputs):
    logits, targets = inputs
    logp, _ = token_logprobs.forward(logits, targets)
    for (b, t), target in np.ndenumerate(targets):
        row = logits[b, t]
        expected = 0.0 if target == IGNORE else row[target] - math.log(sum(math.exp(v) for v in row))
        assert logp[b, t] == pytest.approx(expected, rel=FLOAT64_LOOP_RTOL, abs=1e-12)


@given(ce_inputs())
def test_their_mean_is_minus_the_cross_entropy(inputs):
    logits, targets = inputs
    logp, cache = token_logprobs.forward(logits, targets)
    loss, ce_cache = cross_entropy.forward(logits, targets)
    n = int((targets != IGNORE).sum())
    assert -logp.sum() / n == pytest.approx(loss, rel=FLOAT64_RTOL)
    # and the backward of a uniform -1/N upstream is cross-entropy's
    dlogits = token_logprobs.backward(np.full(targets.shape, -1.0 / n), cache)
    np.testing.assert_allclose(dlogits, cross_entropy.backward(1.0, ce_cache), rtol=FLOAT64_RTOL, atol=1e-15)


@given(ce_inputs(), st.integers(0, 2**16))
def test_ignored_positions_get_no_gradient(inputs, seed):
    logits, targets = inputs
    _, cache = token_logprobs.forward(logits, targets)
    dlogp = np.random.default_rng(seed).normal(size=targets.shape)
    dlogits = token_logprobs.backward(dlogp, cache)
    assert np.all(dlogits[targets == IGNORE] == 0.0)


def test_extreme_logits_stay_finite():
    logp, cache = token_logprobs.forward(np.array([[[1e4, -1e4, 0.0]]]), np.array([[1]]))
    assert logp[0, 0] == pytest.approx(-2e4)
    np.testing.assert_array_equal(token_logprobs.backward(np.ones((1, 1)), cache), [[[-1.0, 1.0, 0.0]]])
