import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import rope
from strategies import arrays, batch, seq
from tolerances import FLOAT64_RTOL, GRAD_RTOL, WRONG_GRAD_MIN_ERROR

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}


@st.composite
def rope_inputs(draw):
    """x (B, T, nh, hs) with an even head size (2 included), angles from a drawn start, theta and scaling."""
    B, T, nh, hs = draw(batch), draw(seq), draw(st.integers(1, 3)), 2 * draw(st.integers(1, 4))
    theta = draw(st.sampled_from([10000.0, 500000.0, 3.0]))
    inv_freq = rope.inverse_frequencies(hs, theta, draw(st.sampled_from([None, LLAMA3])))
    return draw(arrays((B, T, nh, hs))), rope.angles(inv_freq, draw(st.integers(0, 100)), T, np.float64)


@given(rope_inputs())
@settings(max_examples=60)
def test_gradients_match_finite_differences(inputs):
    x, angles = inputs
    report = check_op(lambda x: rope.forward(x, angles), rope.backward, {"x": x})
    assert report.max_rel_error < GRAD_RTOL, report


@given(rope_inputs())
@settings(max_examples=40)
def test_it_turns_each_head_vector_without_changing_its_length(inputs):
    x, angles = inputs
    out, _ = rope.forward(x, angles)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), rtol=FLOAT64_RTOL,
                               atol=FLOAT64_RTOL)


@given(st.integers(1, 4).map(lambda n: 2 * n), st.integers(0, 50), st.integers(0, 50), st.integers(0, 1000),
       st.integers(0, 2**16))
@settings(max_examples=40)
def test_a_score_depends_on_the_positions_only_through_their_difference(hs, m, n, shift, seed):
    rng = np.random.default_rng(seed)
    q, k = rng.normal(size=(1, 1, 1, hs)), rng.normal(size=(1, 1, 1, hs))
    inv_freq = rope.inverse_frequencies(hs, 10000.0)

    def score(m, n):
        return float(np.sum(rope.forward(q, rope.angles(inv_freq, m, 1, np.float64))[0]
                            * rope.forward(k, rope.angles(inv_freq, n, 1, np.float64))[0]))

    assert score(m + shift, n + shift) == pytest.approx(score(m, n), rel=1e-9, abs=1e-9)
    assert abs(score(m, n + 1) - score(m, n)) > 1e-9  # and on the difference it does


def test_positions_after_a_kv_cache_are_the_same_rows_of_the_whole_sequence():
    inv_freq = rope.inverse_frequencies(8, 10000.0)
    whole, after = rope.angles(inv_freq, 0, 12, np.float64), rope.angles(inv_freq, 7, 5, np.float64)
    np.testing.assert_array_equal(after.cos, whole.cos[7:])
    np.testing.assert_array_equal(after.sin, whole.sin[7:])


def test_the_half_turn_and_its_transpose():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    np.testing.assert_array_equal(rope.rotate_half(rope.rotate_half(x)), -x)  # a quarter turn twice: a half turn
    # <R x, y> = <x, R^T y>: what the backward uses
    assert np.sum(rope.rotate_half(x) * y) == pytest.approx(np.sum(x * rope.rotate_half_transposed(y)), rel=1e-12)
    np.testing.assert_array_equal(rope.rotate_half_transposed(rope.rotate_half(x)), x)


def test_the_frequencies_and_llama3s_scaling():
    inv_freq = rope.inverse_frequencies(8, 10000.0)
    np.testing.assert_allclose(inv_freq, [1.0, 10000 ** -0.25, 10000 ** -0.5, 10000 ** -0.75], rtol=1e-15)
    scaled = rope.inverse_frequencies(128, 500000.0, LLAMA3)
    plain = rope.inverse_frequencies(128, 500000.0)
    wavelength = 2 * math.pi / plain
    short, long = wavelength < 64 / 4.0, wavelength > 64 / 1.0  # original context / high and low factors
    np.testing.assert_array_equal(scaled[short], plain[short])  # short wavelengths: as they were
    np.testing.assert_allclose(scaled[long], plain[long] / 8.0, rtol=1e-15)  # long ones: stretched by the factor
    middle = ~short & ~long
    assert middle.any() and np.all((scaled[middle] < plain[middle]) & (scaled[middle] > plain[middle] / 8.0))
    assert np.all(np.diff(scaled) < 0)  # still from the fastest turning pair to the slowest


def test_an_odd_head_dim_is_refused():
    with pytest.raises(ValueError, match="the head size must be even, got 5"):
        rope.inverse_frequencies(5, 10000.0)


def test_a_backward_that_turns_the_wrong_way_is_caught():
    # the negative control: dx = cos dout + R (sin dout), the rotation itself instead of its transpose
    def wrong_backward(dout, cache):
        return dout * cache.cos[:, None, :] + rope.rotate_half(dout * cache.sin[:, None, :])

    rng = np.random.default_rng(2)
    angles = rope.angles(rope.inverse_frequencies(4, 10000.0), 1, 3, np.float64)
    report = check_op(lambda x: rope.forward(x, angles), wrong_backward, {"x": rng.normal(size=(2, 3, 2, 4))})
    assert report.max_rel_error > WRONG_GRAD_MIN_ERROR
