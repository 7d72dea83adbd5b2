import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import embedding
from strategies import arrays, batch, channels, seq, token_ids
from tolerances import GRAD_RTOL


@st.composite
def embedding_inputs(draw):
    B, T, C = draw(batch), draw(seq), draw(channels)
    V = draw(st.integers(1, 6))  # small: repeated tokens are the rule, not the exception
    block_size = T + draw(st.integers(0, 2))  # rows of wpe past T get no gradient
    idx = draw(token_ids((B, T), V))
    return idx, draw(arrays((V, C))), draw(arrays((block_size, C)))


@given(embedding_inputs())
@example((np.zeros((1, 1), dtype=np.int64), np.ones((1, 1)), np.ones((1, 1))))
@settings(max_examples=60)
def test_gradients_match_finite_differences(inputs):
    idx, wte, wpe = inputs
    report = check_op(lambda wte, wpe: embedding.forward(idx, wte, wpe), embedding.backward, {"wte": wte, "wpe": wpe})
    assert report.max_rel_error < GRAD_RTOL, report


@given(embedding_inputs())
@settings(max_examples=30)
def test_without_a_table_of_positions_it_is_the_token_rows_and_their_scatter_add(inputs):
    # Llama's and Qwen's embedding: no wpe (rotary embeddings turn q and k instead)
    idx, wte, _ = inputs
    out, cache = embedding.forward(idx, wte, None)
    np.testing.assert_array_equal(out, wte[idx])
    report = check_op(lambda wte: embedding.forward(idx, wte, None), lambda dout, c: embedding.backward(dout, c)[0],
                      {"wte": wte})
    assert report.max_rel_error < GRAD_RTOL, report
    assert embedding.backward(np.ones_like(out), cache)[1] is None


@given(embedding_inputs())
@settings(max_examples=30)
def test_forward_looks_up_token_and_position_rows(inputs):
    idx, wte, wpe = inputs
    out, _ = embedding.forward(idx, wte, wpe)
    B, T = idx.shape
    for b in range(B):
        for t in range(T):
            np.testing.assert_array_equal(out[b, t], wte[idx[b, t]] + wpe[t])


def test_backward_accumulates_repeated_tokens():
    rng = np.random.default_rng(0)
    idx = np.array([[2, 2, 0], [2, 1, 2]])
    wte, wpe = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    _, cache = embedding.forward(idx, wte, wpe)
    dout = rng.normal(size=(2, 3, 3))
    dwte, dwpe = embedding.backward(dout, cache)
    # token 2 appears four times: its gradient row is the sum of those four rows of dout
    np.testing.assert_allclose(dwte[2], dout[0, 0] + dout[0, 1] + dout[1, 0] + dout[1, 2])
    np.testing.assert_allclose(dwte[0], dout[0, 2])
    np.testing.assert_allclose(dwte[1], dout[1, 1])
    np.testing.assert_array_equal(dwte[3], 0.0)  # an unused token gets no gradient
    np.testing.assert_allclose(dwpe[:3], dout.sum(axis=0))
    np.testing.assert_array_equal(dwpe[3:], 0.0)  # positions past T get no gradient


@pytest.mark.parametrize(
    "idx, message",
    [
        (np.array([[0, 70]]), "token id 70 at batch 0, position 1 is outside the vocabulary (size 5)"),
        (np.array([[0, 1], [-1, 2]]), "token id -1 at batch 1, position 0 is outside the vocabulary (size 5)"),
        (np.array([[0.0, 1.0]]), "token ids must be integers, got dtype float64"),
        (np.array([0, 1]), "token ids must be a 2-D (B, T) array"),
        (np.zeros((1, 4), dtype=np.int64), "positions up to 4 exceed the 3 positions of wpe"),
    ],
)
def test_bad_token_ids_are_rejected_with_a_clear_message(idx, message):
    with pytest.raises(ValueError) as e:
        embedding.forward(idx, np.zeros((5, 2)), np.zeros((3, 2)))
    assert message in str(e.value)
