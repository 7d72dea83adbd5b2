import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import dropout
from strategies import arrays, batch, channels, seq
from tolerances import GRAD_RTOL

probabilities = st.sampled_from([0.0, 0.1, 0.5, 0.9])


@given(st.tuples(batch, seq, channels).flatmap(arrays), probabilities, st.integers(0, 2**16))
@settings(max_examples=40)
def test_gradients_match_finite_differences(x, p, seed):
    # a fresh generator with the same seed per call: every perturbed forward draws the same mask
    forward = lambda x: dropout.forward(x, p, np.random.default_rng(seed))  # noqa: E731
    report = check_op(forward, dropout.backward, {"x": x})
    assert report.max_rel_error < GRAD_RTOL, report


def test_zero_probability_is_the_identity():
    x = np.arange(6.0).reshape(1, 2, 3)
    out, cache = dropout.forward(x, 0.0, rng=None)
    assert out is x and cache.mask is None
    assert dropout.backward(x, cache) is x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_mask_drops_a_fraction_p_and_rescales_survivors(p, dtype):
    n = 200_000
    x = np.ones(n, dtype=dtype)
    out, cache = dropout.forward(x, p, np.random.default_rng(0))
    assert out.dtype == dtype
    kept = out != 0
    np.testing.assert_array_equal(out[kept], dtype(1.0) / dtype(1.0 - p))  # exactly the mask's one value
    # the dropped fraction is Binomial(n, p) / n: allow 6 standard deviations
    assert abs((1 - kept.mean()) - p) < 6 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_array_equal(dropout.backward(np.full(n, 2.0, dtype), cache), 2.0 * out)


def test_same_seed_same_mask_and_different_seed_different_mask():
    x = np.ones((4, 8, 16))
    a, _ = dropout.forward(x, 0.5, np.random.default_rng(1))
    b, _ = dropout.forward(x, 0.5, np.random.default_rng(1))
    c, _ = dropout.forward(x, 0.5, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_probability_out_of_range_is_rejected(p):
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\)"):
        dropout.forward(np.ones(3), p, np.random.default_rng(0))
