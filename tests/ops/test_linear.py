import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import linear
from strategies import arrays, batch, channels, seq
from tolerances import FLOAT64_RTOL, GRAD_RTOL


@st.composite
def linear_inputs(draw):
    B, T, C, OC = draw(batch), draw(seq), draw(channels), draw(channels)
    inputs = {"x": draw(arrays((B, T, C))), "w": draw(arrays((C, OC)))}
    if draw(st.booleans()):
        inputs["b"] = draw(arrays((OC,)))
    return inputs


@given(linear_inputs())
@settings(max_examples=60)
def test_gradients_match_finite_differences(inputs):
    report = check_op(linear.forward, linear.backward, inputs)
    assert report.max_rel_error < GRAD_RTOL, report


@given(linear_inputs())
@settings(max_examples=30)
def test_forward_is_x_times_w_plus_b(inputs):
    x, w, b = inputs["x"], inputs["w"], inputs.get("b")
    out, _ = linear.forward(x, w, b)
    B, T, C = x.shape
    OC = w.shape[1]
    expected = np.zeros((B, T, OC))
    for o in range(OC):
        expected[:, :, o] = sum(x[:, :, c] * w[c, o] for c in range(C)) + (0.0 if b is None else b[o])
    np.testing.assert_allclose(out, expected, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL * np.abs(expected).max(initial=1.0))


def test_without_bias_db_is_none():
    _, cache = linear.forward(np.ones((1, 2, 3)), np.ones((3, 4)))
    assert linear.backward(np.ones((1, 2, 4)), cache)[2] is None


@given(linear_inputs(), st.booleans())
@settings(max_examples=20)
def test_a_frozen_weight_is_said_by_the_caller_not_by_the_array(inputs, read_only):
    # weight_grad=False (a frozen weight) gives the same dx and no dw, db; the array's write flag changes nothing
    x, w, b = inputs["x"], inputs["w"], inputs.get("b")
    w.setflags(write=not read_only)
    out, cache = linear.forward(x, w, b)
    dout = np.random.default_rng(0).normal(size=out.shape)
    dx, dw, db = linear.backward(dout, cache)
    dx_frozen, dw_frozen, db_frozen = linear.backward(dout, cache, weight_grad=False)
    np.testing.assert_allclose(dx_frozen, dx, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL * np.abs(dx).max(initial=1.0))
    assert dw_frozen is None and db_frozen is None
    np.testing.assert_allclose(dw, x.reshape(-1, x.shape[2]).T @ dout.reshape(-1, w.shape[1]), rtol=FLOAT64_RTOL,
                               atol=FLOAT64_RTOL * np.abs(dw).max(initial=1.0))


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"linear weight w has shape \(4, 5\), expected \(3, \*\)"):
        linear.forward(np.ones((1, 2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"linear bias b has shape \(4,\), expected \(5,\)"):
        linear.forward(np.ones((1, 2, 3)), np.ones((3, 5)), np.ones(4))
