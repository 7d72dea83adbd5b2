import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import swiglu
from strategies import arrays, batch, channels, seq
from tolerances import FLOAT64_RTOL, GRAD_RTOL, WRONG_GRAD_MIN_ERROR


@st.composite
def swiglu_inputs(draw, scale=3.0):
    shape = (draw(batch), draw(seq), draw(channels))
    return {"gate": draw(arrays(shape, scale=scale)), "up": draw(arrays(shape))}


@given(swiglu_inputs())
@settings(max_examples=60)
def test_gradients_match_finite_differences(inputs):
    report = check_op(swiglu.forward, swiglu.backward, inputs)
    assert report.max_rel_error < GRAD_RTOL, report


@given(swiglu_inputs(scale=8.0))
@settings(max_examples=40)
def test_it_is_silu_of_the_gate_times_the_other_projection(inputs):
    g, u = inputs["gate"], inputs["up"]
    out, _ = swiglu.forward(g, u)
    np.testing.assert_allclose(out, g / (1.0 + np.exp(-g)) * u, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL)


def test_no_exponential_overflows_and_the_limits_are_zero_and_the_identity():
    g = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # an overflow in exp would raise here
        out, cache = swiglu.forward(g, np.ones_like(g))
        dgate, _ = swiglu.backward(np.ones_like(g), cache)
    np.testing.assert_allclose(out, [0.0, -50.0 * np.exp(-50.0), 0.0, 50.0, 1000.0], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(dgate, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-18)  # silu'(0) = 1/2; -> 0 and 1 far out


def test_a_backward_without_the_product_rules_second_term_is_caught():
    # the negative control: d silu / dg taken as sigmoid(g) alone, the g sigmoid'(g) term forgotten
    def wrong_backward(dout, cache):
        _, dup = swiglu.backward(dout, cache)
        return dout * cache.up * swiglu.sigmoid(cache.gate), dup

    rng = np.random.default_rng(3)
    inputs = {"gate": rng.normal(size=(2, 3, 5)), "up": rng.normal(size=(2, 3, 5))}
    assert check_op(swiglu.forward, wrong_backward, inputs).max_rel_error > WRONG_GRAD_MIN_ERROR
