"""The gradient checker itself: it must pass correct backwards and catch wrong ones (negative controls)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_model, check_op, gradcheck
from minigpt.ops import attention, embedding, layernorm, softmax
from strategies import arrays, batch, seq
from tolerances import GRAD_RTOL, WRONG_GRAD_MIN_ERROR


# --- deliberately wrong backwards -------------------------------------------------------------------

def embedding_backward_overwriting(dout, cache):
    """The classic bug: assignment instead of scatter-add, so a repeated token keeps only its last row."""
    dwte = np.zeros(cache.wte_shape)
    dwte[cache.idx] = dout
    dwpe = np.zeros(cache.wpe_shape)
    dwpe[: dout.shape[1]] = dout.sum(axis=0)
    return dwte, dwpe


def layernorm_backward_without_variance_term(dout, cache):
    """Forgets that the variance depends on x: term 3 of dx is missing."""
    dx, dw, db = layernorm.backward(dout, cache)
    dnorm = dout * cache.w
    dx = cache.rstd[..., None] * (dnorm - dnorm.mean(axis=-1, keepdims=True))
    return dx, dw, db


def layernorm_backward_without_mean_term(dout, cache):
    """Forgets that the mean depends on x: term 2 of dx is missing."""
    dx, dw, db = layernorm.backward(dout, cache)
    dnorm = dout * cache.w
    norm = (cache.x - cache.mean[..., None]) * cache.rstd[..., None]
    dx = cache.rstd[..., None] * (dnorm - norm * (dnorm * norm).mean(axis=-1, keepdims=True))
    return dx, dw, db


def attention_backward_ignoring_mask(dy, cache):
    """Recomputes the attention probabilities from q and k for the backward pass but forgets the mask."""
    B, T, n_head, hs = cache.q.shape
    q, k, v = (attention.swap_heads(a) for a in (cache.q, cache.k, cache.v))  # (B, nh, T, hs) each
    scale = 1.0 / np.sqrt(hs)
    att, _ = softmax.forward((q @ k.swapaxes(-1, -2)) * scale)  # no causal mask: the bug
    dy = attention.swap_heads(dy.reshape(B, T, n_head, hs))  # (B, nh, T, hs)
    dv = att.swapaxes(-1, -2) @ dy
    dpreatt = softmax.backward(dy @ v.swapaxes(-1, -2), softmax.SoftmaxCache(att)) * scale
    dq, dk = dpreatt @ k, dpreatt.swapaxes(-1, -2) @ q
    return tuple(attention.swap_heads(d) for d in (dq, dk, dv))  # (B, T, nh, hs) each


# --- negative controls ------------------------------------------------------------------------------

@given(st.integers(0, 2**16), batch, st.integers(2, 6))
@settings(max_examples=20)
def test_catches_an_embedding_backward_that_drops_repeated_tokens(seed, B, T):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 3, size=(B, T))
    idx[0, :2] = 1  # at least one repeated token
    inputs = {"wte": rng.normal(size=(3, 4)), "wpe": rng.normal(size=(T, 4))}
    forward = lambda wte, wpe: embedding.forward(idx, wte, wpe)  # noqa: E731
    assert check_op(forward, embedding.backward, inputs).max_rel_error < GRAD_RTOL
    assert check_op(forward, embedding_backward_overwriting, inputs).max_rel_error > WRONG_GRAD_MIN_ERROR


@pytest.mark.parametrize("wrong_backward", [layernorm_backward_without_variance_term, layernorm_backward_without_mean_term])
@given(st.integers(0, 2**16), batch, st.integers(4, 6), st.integers(3, 9))
@settings(max_examples=20)
def test_catches_a_layernorm_backward_missing_a_term(wrong_backward, seed, B, T, C):
    # at least 4 rows: in a single row the missing term can vanish by chance (sum(dnorm * norm) ~ 0),
    # and then the wrong backward is right for that input
    rng = np.random.default_rng(seed)
    inputs = {"x": rng.normal(1.0, 2.0, size=(B, T, C)), "w": rng.normal(size=C), "b": rng.normal(size=C)}
    assert check_op(layernorm.forward, layernorm.backward, inputs).max_rel_error < GRAD_RTOL
    assert check_op(layernorm.forward, wrong_backward, inputs).max_rel_error > WRONG_GRAD_MIN_ERROR


@given(st.integers(0, 2**16), batch, st.integers(2, 6), st.integers(1, 3), st.integers(1, 4))
@settings(max_examples=20)
def test_catches_an_attention_backward_that_ignores_the_mask(seed, B, T, n_head, hs):
    rng = np.random.default_rng(seed)
    # small queries and keys keep the scores of the future comparable to those of the past, so that attending to the
    # future (the bug) changes the gradient by a lot rather than by exp(-large)
    inputs = {"q": 0.5 * rng.normal(size=(B, T, n_head, hs)), "k": 0.5 * rng.normal(size=(B, T, n_head, hs)),
              "v": rng.normal(size=(B, T, n_head, hs))}
    assert check_op(attention.forward, attention.backward, inputs).max_rel_error < GRAD_RTOL
    assert check_op(attention.forward, attention_backward_ignoring_mask, inputs).max_rel_error > WRONG_GRAD_MIN_ERROR


def test_catches_a_model_gradient_that_is_off_in_one_entry():
    from minigpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), dtype=np.float64)
    idx = np.array([[1, 2, 3]])
    right = check_model(model, idx, idx)
    assert right.max_rel_error < GRAD_RTOL
    grads = model.backward()
    grads["transformer.h.0.mlp.c_fc.bias"][3] += 1e-2 * np.abs(grads["transformer.h.0.mlp.c_fc.bias"]).max()
    wrong = gradcheck(lambda: model.forward(idx, idx)[1], model.params, grads)
    assert wrong.worst.name == "transformer.h.0.mlp.c_fc.bias"
    # errors are relative to G, the model's largest gradient entry, which this tensor's are far below:
    # the error is still reported well above the tolerance
    assert wrong.max_rel_error > 10 * GRAD_RTOL


# --- the checker's own behaviour --------------------------------------------------------------------

def test_random_directions_cover_entries_that_element_sampling_skips():
    x = np.random.default_rng(0).normal(size=1000)
    grad = 2 * x
    grad_wrong = grad * 1.01  # a systematic 1% error
    f = lambda: float(np.sum(x**2))  # noqa: E731
    subset = dict(max_elements=10, n_directions=3)
    assert gradcheck(f, {"x": x}, {"x": grad}, **subset).max_rel_error < GRAD_RTOL
    assert gradcheck(f, {"x": x}, {"x": grad_wrong}, **subset).max_rel_error > WRONG_GRAD_MIN_ERROR
    assert gradcheck(f, {"x": x}, {"x": grad_wrong}, max_elements=10, n_directions=0).worst.n_checked == 10


def test_arrays_are_restored_exactly():
    x = np.random.default_rng(0).normal(size=(3, 4))
    before = x.copy()
    gradcheck(lambda: float(np.sum(np.sin(x))), {"x": x}, {"x": np.cos(x)})
    np.testing.assert_array_equal(x, before)


def test_an_exactly_zero_gradient_is_not_flagged_for_rounding_noise():
    # layer norm over one channel outputs b whatever x is: dx = 0 exactly
    inputs = {"x": np.array([[[3.0], [-1.0]]]), "w": np.array([2.0]), "b": np.array([0.5])}
    assert check_op(layernorm.forward, layernorm.backward, inputs).max_rel_error < GRAD_RTOL


def test_float32_is_refused():
    with pytest.raises(ValueError, match="gradcheck needs float64 arrays but 'x' is float32"):
        gradcheck(lambda: 0.0, {"x": np.ones(3, np.float32)}, {"x": np.ones(3, np.float32)})


def test_gradients_in_the_wrong_order_or_number_are_refused():
    inputs = {"x": np.ones((1, 2, 3)), "w": np.ones(3)}
    with pytest.raises(ValueError, match="backward returned 1 gradients for inputs"):
        check_op(layernorm.forward, lambda dout, cache: layernorm.backward(dout, cache)[0], inputs)


def test_report_prints_a_table_of_every_tensor():
    report = check_op(layernorm.forward, layernorm.backward, {"x": np.random.default_rng(0).normal(size=(1, 2, 3)), "w": np.ones(3)})
    text = str(report)
    assert "max rel err" in text and "\nx " in text and "\nw " in text
    assert [t.name for t in report.tensors] == ["x", "w"]


@given(st.tuples(batch, seq, st.integers(1, 5)).flatmap(arrays))
@settings(max_examples=20)
def test_check_op_agrees_with_torch_style_elementwise_definition(x):
    # for an elementwise op the gradient is dout * f'(x): the checker must agree with a known derivative
    forward = lambda x: (np.sin(x), x)  # noqa: E731
    backward = lambda dout, x: dout * np.cos(x)  # noqa: E731
    assert check_op(forward, backward, {"x": x}).max_rel_error < GRAD_RTOL
    wrong = lambda dout, x: dout * np.cos(x) + 1e-2 * dout  # noqa: E731
    assert check_op(forward, wrong, {"x": x}).max_rel_error > WRONG_GRAD_MIN_ERROR * 1e-1
