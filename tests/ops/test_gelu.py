import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import gelu
from strategies import arrays, batch, channels, seq
from tolerances import FLOAT64_RTOL, GRAD_RTOL

# Largest gap between the tanh approximation and the exact x * Phi(x) (about 4.7e-4 near |x| = 2.2).
TANH_APPROXIMATION_ERROR = 5e-4


@given(st.tuples(batch, seq, channels).flatmap(lambda shape: arrays(shape, scale=2.0)))
@settings(max_examples=60)
def test_gradients_match_finite_differences(x):
    report = check_op(gelu.forward, gelu.backward, {"x": x})
    assert report.max_rel_error < GRAD_RTOL, report


@given(arrays((5, 7), scale=3.0))
def test_odd_part_is_identity(x):
    # tanh is odd, so gelu(x) - gelu(-x) = 0.5 x (1 + tanh u) + 0.5 x (1 - tanh u) = x
    np.testing.assert_allclose(gelu.forward(x)[0] - gelu.forward(-x)[0], x, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL)


def test_approximates_the_exact_gelu():
    x = np.linspace(-6.0, 6.0, 2001)
    exact = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    gap = np.abs(gelu.forward(x)[0] - exact).max()
    assert 1e-5 < gap < TANH_APPROXIMATION_ERROR  # close to the exact GELU, and not the exact one itself


def test_limits():
    out = gelu.forward(np.array([-50.0, 0.0, 50.0]))[0]
    np.testing.assert_array_equal(out, [-0.0, 0.0, 50.0])  # tanh saturates: no overflow, no NaN
