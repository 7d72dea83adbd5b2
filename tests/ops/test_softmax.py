import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import softmax
from strategies import arrays, batch, channels, seq
from tolerances import FLOAT64_ROUNDED_RTOL, FLOAT64_RTOL, GRAD_RTOL

shapes = st.tuples(batch, seq, channels)


@given(shapes.flatmap(lambda s: arrays(s, scale=2.0)))
@settings(max_examples=60)
def test_gradients_match_finite_differences(x):
    report = check_op(softmax.forward, softmax.backward, {"x": x})
    assert report.max_rel_error < GRAD_RTOL, report


@given(shapes.flatmap(lambda s: arrays(s, scale=50.0)))
def test_rows_are_probability_distributions(x):
    p, _ = softmax.forward(x)
    assert np.all(p >= 0.0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=FLOAT64_RTOL)


@given(shapes.flatmap(arrays), st.floats(-1e3, 1e3))
def test_shifting_a_row_changes_nothing(x, shift):
    np.testing.assert_allclose(softmax.forward(x + shift)[0], softmax.forward(x)[0], rtol=FLOAT64_ROUNDED_RTOL, atol=FLOAT64_RTOL * 1e-3)


@given(shapes.flatmap(arrays), st.integers(0, 2**16))
def test_gradient_rows_sum_to_zero(x, seed):
    # adding a constant to a row leaves p unchanged, so the gradient has no component along (1, ..., 1)
    p, cache = softmax.forward(x)
    dx = softmax.backward(np.random.default_rng(seed).normal(size=x.shape), cache)
    np.testing.assert_allclose(dx.sum(axis=-1), 0.0, atol=FLOAT64_RTOL)


def test_large_logits_do_not_overflow():
    p, _ = softmax.forward(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])


def test_masked_entries_get_exactly_zero_probability_and_gradient():
    x = np.array([[0.3, -np.inf, 1.2, -np.inf]])
    p, cache = softmax.forward(x)
    assert p[0, 1] == 0.0 and p[0, 3] == 0.0
    dx = softmax.backward(np.array([[1.0, 2.0, 3.0, 4.0]]), cache)
    assert dx[0, 1] == 0.0 and dx[0, 3] == 0.0
