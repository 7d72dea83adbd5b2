import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import cross_entropy
from strategies import arrays, batch, seq, token_ids
from tolerances import FLOAT64_RTOL, GRAD_RTOL

IGNORE = cross_entropy.IGNORE_INDEX


@st.composite
def ce_inputs(draw):
    B, T, V = draw(batch), draw(seq), draw(st.integers(1, 9))
    targets = draw(token_ids((B, T), V))
    ignored = draw(arrays((B, T))) > 1.0  # some positions masked, at random
    ignored.flat[draw(st.integers(0, B * T - 1))] = False  # but never all of them
    targets = np.where(ignored, IGNORE, targets)
    return draw(arrays((B, T, V), scale=3.0)), targets


@given(ce_inputs())
@settings(max_examples=80)
def test_gradients_match_finite_differences(inputs):
    logits, targets = inputs
    forward = lambda logits: cross_entropy.forward(logits, targets)  # noqa: E731
    report = check_op(forward, cross_entropy.backward, {"logits": logits})
    assert report.max_rel_error < GRAD_RTOL, report


@given(ce_inputs())
def test_loss_is_mean_negative_log_probability_of_the_targets(inputs):
    logits, targets = inputs
    loss, _ = cross_entropy.forward(logits, targets)
    terms = []
    for b, t in zip(*np.nonzero(targets != IGNORE)):
        row = logits[b, t]
        terms.append(-math.log(math.exp(row[targets[b, t]]) / sum(math.exp(v) for v in row)))
    assert loss == pytest.approx(sum(terms) / len(terms), rel=FLOAT64_RTOL)


@given(ce_inputs(), st.integers(0, 2**16))
def test_ignored_positions_do_not_matter(inputs, seed):
    logits, targets = inputs
    loss, cache = cross_entropy.forward(logits, targets)
    ignored = targets == IGNORE
    changed = logits + np.random.default_rng(seed).normal(size=logits.shape) * ignored[..., None]
    assert cross_entropy.forward(changed, targets)[0] == loss
    dlogits = cross_entropy.backward(1.0, cache)
    assert np.all(dlogits[ignored] == 0.0)


def test_uniform_logits_give_log_vocab_size():
    loss, _ = cross_entropy.forward(np.zeros((2, 3, 65)), np.zeros((2, 3), dtype=np.int64))
    assert loss == pytest.approx(math.log(65), rel=FLOAT64_RTOL)


def test_extreme_logits_stay_finite():
    logits = np.array([[[1e4, -1e4, 0.0]]])
    loss_right, _ = cross_entropy.forward(logits, np.array([[0]]))
    loss_wrong, cache = cross_entropy.forward(logits, np.array([[1]]))
    assert loss_right == 0.0
    assert loss_wrong == pytest.approx(2e4)  # log(p) computed as z - logsumexp, not log(0) = -inf
    np.testing.assert_array_equal(cross_entropy.backward(1.0, cache), [[[1.0, -1.0, 0.0]]])  # exactly: exp(-2e4) is 0


def test_gradient_is_probabilities_minus_one_hot():
    logits = np.array([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
    targets = np.array([[2, 0]])
    _, cache = cross_entropy.forward(logits, targets)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = (p - np.eye(3)[targets]) / 2  # mean over the two positions
    np.testing.assert_allclose(cross_entropy.backward(1.0, cache), expected, rtol=FLOAT64_RTOL)


@pytest.mark.parametrize(
    "targets, message",
    [
        (np.array([[0, 5]]), "target 5 at batch 0, position 1 is outside the vocabulary (size 3)"),
        (np.array([[-2, 0]]), "target -2 at batch 0, position 0 is outside the vocabulary (size 3)"),
        (np.array([[IGNORE, IGNORE]]), "every target is ignore_index"),
        (np.array([[0, 1, 2]]), "targets have shape (1, 3) but logits have (B, T) = (1, 2)"),
    ],
)
def test_bad_targets_are_rejected(targets, message):
    with pytest.raises(ValueError) as e:
        cross_entropy.forward(np.zeros((1, 2, 3)), targets)
    assert message in str(e.value)
