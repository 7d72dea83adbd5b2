"""The last token's gather (minigpt/ops/last_token.py): its gradient against finite differences, and a mutant."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import last_token
from tolerances import GRAD_RTOL, WRONG_GRAD_MIN_ERROR


@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**16))
@settings(max_examples=40)
def test_gradients_match_finite_differences(B, T, C, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, C))
    last = rng.integers(0, T, size=B)
    report = check_op(lambda x: last_token.forward(x, last), last_token.backward, {"x": x})
    assert report.max_rel_error < GRAD_RTOL, report


def test_a_backward_that_broadcasts_instead_of_scattering_is_caught():
    def wrong_backward(dh, cache):  # the negative control: every position gets the gradient
        return np.repeat(dh[:, None, :], cache.shape[1], axis=1)

    x = np.random.default_rng(0).normal(size=(3, 5, 4))
    last = np.array([4, 0, 2])
    assert check_op(lambda x: last_token.forward(x, last), wrong_backward, {"x": x}).max_rel_error > WRONG_GRAD_MIN_ERROR


@pytest.mark.parametrize("last", [[3], [-1], [0.5]])
def test_a_position_outside_the_sequence_is_refused(last):
    with pytest.raises(ValueError, match="last must hold integer positions in"):
        last_token.forward(np.zeros((1, 3, 2)), np.array(last))
