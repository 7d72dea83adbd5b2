import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import rmsnorm
from strategies import arrays, batch, channels, seq
from tolerances import FLOAT64_ROUNDED_RTOL, FLOAT64_RTOL, GRAD_RTOL, WRONG_GRAD_MIN_ERROR


@st.composite
def rmsnorm_inputs(draw):
    B, T, C = draw(batch), draw(seq), draw(channels)
    return {"x": draw(arrays((B, T, C))), "w": draw(arrays((C,)))}


@given(rmsnorm_inputs())
@example({"x": np.zeros((1, 1, 3)), "w": np.ones(3)})  # a row of zeros: its mean square is 0, eps keeps it finite
@example({"x": np.full((2, 1, 1), 0.3), "w": np.full(1, 2.0)})  # one channel: out = x / |x| nearly, w's sign
@settings(max_examples=80)
def test_gradients_match_finite_differences(inputs):
    report = check_op(rmsnorm.forward, rmsnorm.backward, inputs)
    assert report.max_rel_error < GRAD_RTOL, report


@given(rmsnorm_inputs())
@settings(max_examples=50)
def test_normalised_rows_have_unit_mean_square(inputs):
    x = inputs["x"]
    _, cache = rmsnorm.forward(x, np.ones_like(inputs["w"]))
    norm = x * cache.rstd[..., None]  # (B, T, C) what the one number per row gives back
    ms = (x * x).mean(axis=-1)
    # mean(norm^2) = ms / (ms + eps): 1 up to the eps that keeps a row of zeros finite
    np.testing.assert_allclose((norm * norm).mean(axis=-1), ms / (ms + rmsnorm.EPS), rtol=FLOAT64_ROUNDED_RTOL,
                               atol=FLOAT64_RTOL)


def test_is_llamas_formula_without_a_mean_or_a_bias():
    rng = np.random.default_rng(0)
    x, w = rng.normal(3.0, 5.0, size=(2, 4, 7)), rng.normal(size=7)
    out, _ = rmsnorm.forward(x, w, eps=1e-5)
    expected = w * (x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-5))  # LlamaRMSNorm: x * rsqrt(mean(x^2) + eps)
    np.testing.assert_allclose(out, expected, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL)
    shifted, _ = rmsnorm.forward(x + 1.0, w, eps=1e-5)  # unlike layer norm, a shift of the row is not taken out
    assert np.abs(shifted - out).max() > 1e-2


@given(rmsnorm_inputs(), st.integers(0, 2**16))
@settings(max_examples=30)
def test_input_gradient_is_orthogonal_to_the_input_without_eps(inputs, seed):
    # with eps = 0, out(c x) = out(x) for every c > 0: along x itself the function does not change, so dx . x = 0
    x = inputs["x"] + np.sign(inputs["x"] + 0.5) * 0.1  # no row of zeros, where eps = 0 would divide by 0
    out, cache = rmsnorm.forward(x, inputs["w"], eps=0.0)
    dx, _ = rmsnorm.backward(np.random.default_rng(seed).normal(size=out.shape), cache)
    scale = max(1.0, float(np.abs(dx).max()) * float(np.abs(x).max()))
    np.testing.assert_allclose((dx * x).sum(axis=-1), 0.0, atol=FLOAT64_ROUNDED_RTOL * scale)


def test_a_backward_without_the_term_through_the_rms_is_caught():
    # the negative control: dx = rstd * dnorm, the path through mean(x^2) forgotten
    def wrong_backward(dout, cache):
        dx, dw = rmsnorm.backward(dout, cache)
        return cache.rstd[..., None] * dout * cache.w, dw

    rng = np.random.default_rng(1)
    inputs = {"x": rng.normal(size=(2, 3, 5)), "w": rng.normal(size=5)}
    assert check_op(rmsnorm.forward, wrong_backward, inputs).max_rel_error > WRONG_GRAD_MIN_ERROR
