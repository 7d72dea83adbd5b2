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
    att = attention.probabilities(cache.attend)  # (B, nh, T, T)
    T = att.shape[-1]
    np.testing.assert_allclose(att.sum(axis=-1), 1.0, rtol=FLOAT64_RTOL)
    assert np.all(att[..., ~attention.causal_mask(T)] == 0.0)


def test_head_count_must_divide_channels():
    with pytest.raises(ValueError, match="channels C=6 must be divisible by n_head=4"):
        attention.forward(np.ones((1, 2, 6)), np.ones((6, 18)), None, np.ones((6, 6)), None, n_head=4)


# --- grouped-query attention: fewer key/value heads than query heads ---------------------------------------------

@st.composite
def grouped_inputs(draw):
    """qkv (B, T, (nh + 2 nkv) hs) with nkv dividing nh: one kv head (multi-query), as many as nh (GPT-2's), or
    between; T = 1 and head size 1 and 2 included."""
    n_kv_head = draw(st.integers(1, 3))
    n_head = n_kv_head * draw(st.integers(1, 3))
    hs = draw(st.integers(1, 3))
    B, T = draw(batch), draw(seq)
    return draw(arrays((B, T, (n_head + 2 * n_kv_head) * hs))), n_head, n_kv_head


@given(grouped_inputs(), st.sampled_from([0.0, 0.3]), st.integers(0, 2**16))
@settings(max_examples=60)
def test_grouped_query_attention_gradients_match_finite_differences(case, dropout_p, seed):
    qkv, n_head, n_kv_head = case

    def forward(qkv):
        return attention.attend(qkv, n_head, n_kv_head, dropout_p, np.random.default_rng(seed))

    report = check_op(forward, attention.attend_backward, {"qkv": qkv})
    assert report.max_rel_error < GRAD_RTOL, report


def repeat_kv_heads(qkv, n_head, n_kv_head):
    """The same attention with every key/value head copied for each query head of its group: ordinary multi-head
    attention's qkv, (B, T, 3 nh hs)."""
    q, k, v = attention.split_qkv(qkv, n_head, n_kv_head)  # (B, nh, T, hs), (B, nkv, T, hs) x2
    group = n_head // n_kv_head
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)  # (B, nh, T, hs)
    return np.concatenate([attention.merge_heads(a) for a in (q, k, v)], axis=2)


@given(grouped_inputs(), st.integers(0, 2**16))
@settings(max_examples=40)
def test_a_group_is_multi_head_attention_with_its_key_value_head_copied(case, seed):
    # the forward equals multi-head attention on copied key/value heads, and the backward sums the copies' gradients
    qkv, n_head, n_kv_head = case
    y, cache = attention.attend(qkv, n_head, n_kv_head)
    copied = repeat_kv_heads(qkv, n_head, n_kv_head)
    y_copied, cache_copied = attention.attend(copied, n_head, n_head)
    np.testing.assert_allclose(y, y_copied, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL)
    dy = np.random.default_rng(seed).normal(size=y.shape)
    dqkv, dcopied = attention.attend_backward(dy, cache), attention.attend_backward(dy, cache_copied)
    B, T, _ = qkv.shape
    hs = qkv.shape[2] // (n_head + 2 * n_kv_head)
    dq, dk, dv = np.split(dcopied, 3, axis=2)  # (B, T, nh hs) each
    group_sum = lambda d: d.reshape(B, T, n_kv_head, n_head // n_kv_head, hs).sum(axis=3).reshape(B, T, -1)  # noqa: E731
    np.testing.assert_allclose(dqkv, np.concatenate([dq, group_sum(dk), group_sum(dv)], axis=2),
                               rtol=FLOAT64_LOOP_RTOL, atol=FLOAT64_LOOP_RTOL)


def test_the_kv_cache_keeps_only_the_key_value_heads_and_gives_the_whole_sequences_outputs():
    rng = np.random.default_rng(0)
    n_head, n_kv_head, hs, P, T = 6, 2, 4, 5, 3
    qkv = rng.normal(size=(2, P + T, (n_head + 2 * n_kv_head) * hs))
    whole, _ = attention.attend(qkv, n_head, n_kv_head)
    cache = attention.KVCache(2, P + T, n_head, n_kv_head, hs, np.float64)
    attention.attend(qkv[:, :P], n_head, n_kv_head, kv_cache=cache)
    after, _ = attention.attend(qkv[:, P:], n_head, n_kv_head, kv_cache=cache)
    np.testing.assert_allclose(after, whole[:, P:], rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL)
    # 2 nkv hs numbers a position: a third of multi-head attention's 2 nh hs, and no queries
    assert cache.nbytes == 2 * (P + T) * 2 * n_kv_head * hs * 8


def test_key_value_heads_must_divide_the_query_heads():
    with pytest.raises(ValueError, match="n_kv_head=2 must divide n_head=3"):
        attention.attend(np.ones((1, 2, 7)), 3, 2)
    with pytest.raises(ValueError, match="qkv has 7 channels, not a multiple of n_head \\+ 2 n_kv_head = 6"):
        attention.attend(np.ones((1, 2, 7)), 2, 2)
