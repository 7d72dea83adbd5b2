import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import attention
from strategies import arrays, batch, seq
from tolerances import FLOAT64_LOOP_RTOL, FLOAT64_RTOL, GRAD_RTOL


@st.composite
def attention_inputs(draw, bias=None):
    B, T = draw(batch), draw(seq)
    n_head, hs = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    C = n_head * hs
    has_bias = draw(st.booleans()) if bias is None else bias
    inputs = {
        "x": draw(arrays((B, T, C))),
        "w_attn": draw(arrays((C, 3 * C), scale=0.7)),
        "b_attn": draw(arrays((3 * C,), scale=0.3)) if has_bias else None,
        "w_proj": draw(arrays((C, C), scale=0.7)),
        "b_proj": draw(arrays((C,), scale=0.3)) if has_bias else None,
    }
    return inputs, n_head


def differentiable(inputs):
    return {name: a for name, a in inputs.items() if a is not None}


@given(attention_inputs(), st.sampled_from([0.0, 0.3]), st.integers(0, 2**16))
@settings(max_examples=60)
def test_gradients_match_finite_differences(case, dropout_p, seed):
    inputs, n_head = case
    def forward(**a):
        return attention.forward(**{"b_attn": None, "b_proj": None, **a}, n_head=n_head,
                                 dropout_p=dropout_p, rng=np.random.default_rng(seed))
    def backward(dout, cache):
        dx, dw_attn, db_attn, dw_proj, db_proj = attention.backward(dout, cache)
        grads = {"x": dx, "w_attn": dw_attn, "b_attn": db_attn, "w_proj": dw_proj, "b_proj": db_proj}
        return tuple(grads[name] for name in differentiable(inputs))
    report = check_op(forward, backward, differentiable(inputs))
    assert report.max_rel_error < GRAD_RTOL, report


def attention_by_loops(x, w_attn, b_attn, w_proj, b_proj, n_head):
    """The textbook definition, one query position and one head at a time, for comparison."""
    B, T, C = x.shape
    hs = C // n_head
    qkv = x @ w_attn + (0.0 if b_attn is None else b_attn)
    y = np.zeros((B, T, C))
    for b in range(B):
        for h in range(n_head):
            q = qkv[b, :, h * hs:(h + 1) * hs]
            k = qkv[b, :, C + h * hs:C + (h + 1) * hs]
            v = qkv[b, :, 2 * C + h * hs:2 * C + (h + 1) * hs]
            for t in range(T):
                scores = [q[t] @ k[s] / math.sqrt(hs) for s in range(t + 1)]  # only s <= t
                weights = np.exp(np.array(scores) - max(scores))
                weights /= weights.sum()
                y[b, t, h * hs:(h + 1) * hs] = sum(weights[s] * v[s] for s in range(t + 1))
    return y @ w_proj + (0.0 if b_proj is None else b_proj)


@given(attention_inputs())
@settings(max_examples=40)
def test_forward_matches_the_loop_definition(case):
    inputs, n_head = case
    out, _ = attention.forward(**inputs, n_head=n_head)
    expected = attention_by_loops(**inputs, n_head=n_head)
    np.testing.assert_allclose(out, expected, rtol=FLOAT64_LOOP_RTOL, atol=FLOAT64_LOOP_RTOL * np.abs(expected).max(initial=1.0))


@given(attention_inputs(), st.data())
@settings(max_examples=40)
def test_causal_a_change_at_position_t_leaves_earlier_outputs_bit_identical(case, data):
    inputs, n_head = case
    x = inputs["x"]
    T = x.shape[1]
    t = data.draw(st.integers(0, T - 1))
    changed = x.copy()
    changed[:, t:] += 1.0 + np.abs(changed[:, t:])  # every position from t on changes
    out, _ = attention.forward(**inputs, n_head=n_head)
    out_changed, _ = attention.forward(**{**inputs, "x": changed}, n_head=n_head)
    np.testing.assert_array_equal(out_changed[:, :t], out[:, :t])


@given(attention_inputs())
@settings(max_examples=30)
def test_attention_rows_sum_to_one_over_the_past_only(case):
    inputs, n_head = case
    _, cache = attention.forward(**inputs, n_head=n_head)
    att = attention.probabilities(cache)  # (B, nh, T, T)
    T = att.shape[-1]
    np.testing.assert_allclose(att.sum(axis=-1), 1.0, rtol=FLOAT64_RTOL)
    assert np.all(att[..., ~attention.causal_mask(T)] == 0.0)


def test_head_count_must_divide_channels():
    with pytest.raises(ValueError, match="channels C=6 must be divisible by n_head=4"):
        attention.forward(np.ones((1, 2, 6)), np.ones((6, 18)), None, np.ones((6, 6)), None, n_head=4)
