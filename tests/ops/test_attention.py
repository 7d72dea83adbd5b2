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
def attention_inputs(draw, grouped=True):
    """q (B, T, nh, hs), k and v (B, T, nkv, hs), as the projections give them: nkv dividing nh, from one key/value
    head (multi-query) to nh of them (multi-head, GPT-2's; always, unless grouped); T = 1 and head size 1 and 2
    included."""
    n_kv_head = draw(st.integers(1, 3))
    n_head = n_kv_head * draw(st.integers(1, 3)) if grouped else n_kv_head
    hs = draw(st.integers(1, 4))
    B, T = draw(batch), draw(seq)
    return {"q": draw(arrays((B, T, n_head, hs))), "k": draw(arrays((B, T, n_kv_head, hs))),
            "v": draw(arrays((B, T, n_kv_head, hs)))}


def check_gradients(inputs, dropout_p, seed):
    def forward(q, k, v):
        return attention.forward(q, k, v, dropout_p, np.random.default_rng(seed))

    report = check_op(forward, attention.backward, inputs)
    assert report.max_rel_error < GRAD_RTOL, report


@given(attention_inputs(grouped=False), st.sampled_from([0.0, 0.3]), st.integers(0, 2**16))
@settings(max_examples=60)
def test_gradients_match_finite_differences(inputs, dropout_p, seed):
    check_gradients(inputs, dropout_p, seed)


def attention_by_loops(q, k, v):
    """The textbook definition, one query position and one head at a time, for comparison."""
    B, T, n_head, hs = q.shape
    group = n_head // k.shape[2]
    y = np.zeros((B, T, n_head * hs))
    for b in range(B):
        for h in range(n_head):
            j = h // group  # the key/value head query head h reads
            for t in range(T):
                scores = [q[b, t, h] @ k[b, s, j] / math.sqrt(hs) for s in range(t + 1)]  # only s <= t
                weights = np.exp(np.array(scores) - max(scores))
                weights /= weights.sum()
                y[b, t, h * hs:(h + 1) * hs] = sum(weights[s] * v[b, s, j] for s in range(t + 1))
    return y


@given(attention_inputs())
@settings(max_examples=40)
def test_forward_matches_the_loop_definition(inputs):
    y, _ = attention.forward(**inputs)
    expected = attention_by_loops(**inputs)
    np.testing.assert_allclose(y, expected, rtol=FLOAT64_LOOP_RTOL, atol=FLOAT64_LOOP_RTOL * np.abs(expected).max(initial=1.0))


@given(attention_inputs(), st.data())
@settings(max_examples=40)
def test_causal_a_change_at_position_t_leaves_earlier_outputs_bit_identical(inputs, data):
    T = inputs["q"].shape[1]
    t = data.draw(st.integers(0, T - 1))
    changed = {name: a.copy() for name, a in inputs.items()}
    for a in changed.values():
        a[:, t:] += 1.0 + np.abs(a[:, t:])  # every position from t on changes its query, key and value
    y, _ = attention.forward(**inputs)
    y_changed, _ = attention.forward(**changed)
    np.testing.assert_array_equal(y_changed[:, :t], y[:, :t])


@given(attention_inputs())
@settings(max_examples=30)
def test_attention_rows_sum_to_one_over_the_past_only(inputs):
    _, cache = attention.forward(**inputs)
    att = attention.probabilities(cache)  # (B, nh, T, T)
    T = att.shape[-1]
    np.testing.assert_allclose(att.sum(axis=-1), 1.0, rtol=FLOAT64_RTOL)
    assert np.all(att[..., ~attention.causal_mask(T)] == 0.0)


# --- grouped-query attention: fewer key/value heads than query heads ---------------------------------------------

@given(attention_inputs(), st.sampled_from([0.0, 0.3]), st.integers(0, 2**16))
@settings(max_examples=60)
def test_grouped_query_attention_gradients_match_finite_differences(inputs, dropout_p, seed):
    check_gradients(inputs, dropout_p, seed)


@given(attention_inputs(), st.integers(0, 2**16))
@settings(max_examples=40)
def test_a_group_is_multi_head_attention_with_its_key_value_head_copied(inputs, seed):
    # the forward equals multi-head attention on copied key/value heads, and the backward sums the copies' gradients
    q, k, v = inputs["q"], inputs["k"], inputs["v"]
    B, T, n_head, hs = q.shape
    n_kv_head = k.shape[2]
    group = n_head // n_kv_head
    y, cache = attention.forward(q, k, v)
    y_copied, cache_copied = attention.forward(q, np.repeat(k, group, axis=2), np.repeat(v, group, axis=2))
    np.testing.assert_allclose(y, y_copied, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL)
    dy = np.random.default_rng(seed).normal(size=y.shape)
    group_sum = lambda d: d.reshape(B, T, n_kv_head, group, hs).sum(axis=3)  # noqa: E731
    for d, d_copied, sum_copies in zip(attention.backward(dy, cache), attention.backward(dy, cache_copied),
                                       (lambda d: d, group_sum, group_sum)):
        np.testing.assert_allclose(d, sum_copies(d_copied), rtol=FLOAT64_LOOP_RTOL, atol=FLOAT64_LOOP_RTOL)


def test_the_kv_cache_keeps_only_the_key_value_heads_and_gives_the_whole_sequences_outputs():
    rng = np.random.default_rng(0)
    n_head, n_kv_head, hs, P, T = 6, 2, 4, 5, 3
    q, k, v = rng.normal(size=(2, P + T, n_head, hs)), rng.normal(size=(2, P + T, n_kv_head, hs)), rng.normal(
        size=(2, P + T, n_kv_head, hs))
    whole, _ = attention.forward(q, k, v)
    cache = attention.KVCache(2, P + T, n_kv_head, hs, np.float64)
    attention.forward(q[:, :P], k[:, :P], v[:, :P], kv_cache=cache)
    after, _ = attention.forward(q[:, P:], k[:, P:], v[:, P:], kv_cache=cache)
    np.testing.assert_allclose(after, whole[:, P:], rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL)
    # 2 nkv hs numbers a position: a third of multi-head attention's 2 nh hs, and no queries
    assert cache.nbytes == 2 * (P + T) * 2 * n_kv_head * hs * 8


def test_the_kv_cache_refuses_positions_beyond_its_length():
    cache = attention.KVCache(1, 3, 1, 2, np.float64)
    attention.forward(np.ones((1, 2, 1, 2)), np.ones((1, 2, 1, 2)), np.ones((1, 2, 1, 2)), kv_cache=cache)
    with pytest.raises(ValueError, match="the KV cache holds 3 positions; 2 \\+ 2 do not fit"):
        attention.forward(np.ones((1, 2, 1, 2)), np.ones((1, 2, 1, 2)), np.ones((1, 2, 1, 2)), kv_cache=cache)


def test_key_value_heads_must_divide_the_query_heads():
    with pytest.raises(ValueError, match="n_kv_head=2 must divide n_head=3"):
        attention.forward(np.ones((1, 2, 3, 4)), np.ones((1, 2, 2, 4)), np.ones((1, 2, 2, 4)))


def test_queries_keys_and_values_must_agree_in_shape():
    q = np.ones((1, 2, 2, 4))
    with pytest.raises(ValueError, match="attention q has shape \\(1, 2, 8\\), expected \\(\\*, \\*, \\*, \\*\\)"):
        attention.forward(np.ones((1, 2, 8)), q, q)
    with pytest.raises(ValueError, match="attention k has shape \\(1, 2, 2, 3\\), expected \\(1, 2, \\*, 4\\)"):
        attention.forward(q, np.ones((1, 2, 2, 3)), np.ones((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="attention v has shape \\(1, 3, 2, 4\\), expected \\(1, 2, 2, 4\\)"):
        attention.forward(q, q, np.ones((1, 3, 2, 4)))
