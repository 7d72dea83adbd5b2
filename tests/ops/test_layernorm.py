import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import layernorm
from strategies import arrays, batch, channels, seq
from tolerances import FLOAT64_ROUNDED_RTOL, FLOAT64_RTOL, GRAD_RTOL


@st.composite
def layernorm_inputs(draw):
    B, T, C = draw(batch), draw(seq), draw(channels)
    inputs = {"x": draw(arrays((B, T, C))), "w": draw(arrays((C,)))}
    if draw(st.booleans()):
        inputs["b"] = draw(arrays((C,)))
    return inputs


@given(layernorm_inputs())
@example({"x": np.full((1, 1, 3), 0.7), "w": np.ones(3), "b": np.zeros(3)})  # a constant row: var = 0
@settings(max_examples=80)
def test_gradients_match_finite_differences(inputs):
    report = check_op(layernorm.forward, layernorm.backward, inputs)
    assert report.max_rel_error < GRAD_RTOL, report


@given(layernorm_inputs())
@settings(max_examples=50)
def test_normalised_rows_have_mean_zero_and_unit_variance(inputs):
    x = inputs["x"]
    _, cache = layernorm.forward(**inputs)
    norm = (x - cache.mean[..., None]) * cache.rstd[..., None]  # what the cache's two numbers per row give back
    var = x.var(axis=-1)  # biased, as GPT-2
    np.testing.assert_allclose(norm.mean(axis=-1), 0.0, atol=FLOAT64_RTOL * 10)
    # the variance of norm is exactly var / (var + eps): 1 up to the eps that keeps constant rows finite
    np.testing.assert_allclose(norm.var(axis=-1), var / (var + layernorm.EPS), rtol=FLOAT64_ROUNDED_RTOL, atol=FLOAT64_RTOL)


@given(layernorm_inputs(), st.integers(0, 2**16))
@settings(max_examples=30)
def test_input_gradient_rows_sum_to_zero(inputs, seed):
    # shifting a row of x leaves norm unchanged, so dx has no component along (1, ..., 1)
    out, cache = layernorm.forward(**inputs)
    dx, _, _ = layernorm.backward(np.random.default_rng(seed).normal(size=out.shape), cache)
    np.testing.assert_allclose(dx.sum(axis=-1), 0.0, atol=FLOAT64_ROUNDED_RTOL * max(1.0, np.abs(dx).max()))


def test_affine_applies_after_normalising():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 5.0, size=(2, 4, 7))
    w, b = rng.normal(size=7), rng.normal(size=7)
    out, _ = layernorm.forward(x, w, b)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-5) * w + b, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL)
