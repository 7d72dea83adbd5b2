"""The Q8_0 linear layer (minigpt/ops/q8_0.py): its bytes are GGUF's, as the gguf package (from llama.cpp's authors)
writes and reads them; its rounding is bounded; the layer is the float layer on the dequantized weight."""

import gguf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.ops import q8_0
from strategies import arrays, batch, seq

Q8_0 = gguf.GGMLQuantizationType.Q8_0


@st.composite
def weights(draw):
    """(OC, C) float32 weights, C a multiple of 32: normal ones, hypothesis' own (zeros, repeats, extremes), and
    blocks whose scaled weights fall exactly halfway between two integers (round half away from zero is tested)."""
    OC, nb = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    scale = draw(st.sampled_from([1e-3, 1.0, 300.0]))
    w = draw(arrays((OC, nb * q8_0.BLOCK), scale))
    if draw(st.booleans()):  # largest |w| 127 s: d = s, and w = (k + 1/2) s lands on the halfway points
        s = draw(st.sampled_from([1.0, 0.25, 2.0**-10]))
        k = draw(arrays((OC, nb * q8_0.BLOCK), 60.0)).round()
        w = (k + 0.5) * s
        w[:, ::q8_0.BLOCK] = 127 * s
    return w.astype(np.float32)


@given(weights())
@settings(max_examples=60, deadline=None)
def test_quantize_writes_ggufs_bytes_and_dequantize_reads_them(w):
    blocks = q8_0.quantize(w)
    assert blocks.dtype == np.uint8 and blocks.shape == q8_0.blocks_shape(*w.shape)
    theirs = gguf.quants.quantize(w, Q8_0)
    # a block whose 1/d overflows (d < 3e-39: its float16 scale is 0) has undefined int8s in ggml's; 0 in ours
    amax = np.abs(w.reshape(w.shape[0], -1, q8_0.BLOCK)).max(axis=2)  # (OC, nb)
    with np.errstate(divide="ignore"):
        defined = np.isfinite(np.float32(1) / (amax / np.float32(127)))
    mine, theirs = blocks.reshape(*amax.shape, -1), theirs.reshape(*amax.shape, -1)  # (OC, nb, 34)
    np.testing.assert_array_equal(mine[defined], theirs[defined])
    np.testing.assert_array_equal(mine[~defined], np.zeros_like(mine[~defined]))
    np.testing.assert_array_equal(q8_0.dequantize(blocks), gguf.quants.dequantize(blocks, Q8_0))


@given(weights())
@settings(max_examples=60, deadline=None)
def test_rounding_is_bounded_and_a_second_quantization_changes_nothing(w):
    """|w - d q| <= d/2 with the float32 scale d = max|w| / 127; the float16 scale moves each weight by at most
    127 |d - d16| more. Dequantized weights are exactly representable, and quantize to the same bytes again (where
    the float16 scale is not 0: a block under 3e-8 dequantizes to zeros)."""
    blocks = q8_0.quantize(w)
    deq = q8_0.dequantize(blocks)  # (OC, C)
    amax = np.abs(w.reshape(w.shape[0], -1, q8_0.BLOCK)).max(axis=2, keepdims=True).astype(np.float64)  # (OC, nb, 1)
    d = amax / 127
    d16 = d.astype(np.float16).astype(np.float64)
    bound = np.repeat(d / 2 * (1 + 1e-6) + 127 * np.abs(d - d16), q8_0.BLOCK, axis=2).reshape(w.shape)
    assert np.all(np.abs(w.astype(np.float64) - deq) <= bound)
    np.testing.assert_array_equal(q8_0.dequantize(blocks, np.float64), deq)  # exact in float32: the same in float64
    again, blocks = q8_0.quantize(deq).reshape(*amax.shape[:2], -1), blocks.reshape(*amax.shape[:2], -1)  # (OC, nb, 34)
    kept = d16[:, :, 0] != 0  # (OC, nb)
    np.testing.assert_array_equal(again[kept], blocks[kept])
    assert not deq.reshape(again.shape[0], -1, q8_0.BLOCK)[~kept].any()


@given(st.integers(0, 2**32 - 1), batch, seq, st.integers(1, 3), st.integers(1, 5), st.booleans())
@settings(max_examples=30, deadline=None)
def test_forward_is_the_float_layer_on_the_dequantized_weight(seed, B, T, nb, OC, bias):
    """Summed block by block, d_b sum_i q_i x_i, in float64 from gguf's own dequantization."""
    rng = np.random.default_rng(seed)
    C = nb * q8_0.BLOCK
    x, w = rng.normal(size=(B, T, C)), rng.normal(size=(OC, C)).astype(np.float32)
    b = rng.normal(size=OC) if bias else None
    blocks = q8_0.quantize(w)
    out, cache = q8_0.forward(x, blocks, b)
    assert cache is None and out.shape == (B, T, OC) and out.dtype == np.float64
    W = gguf.quants.dequantize(blocks, Q8_0).astype(np.float64).reshape(OC, nb, q8_0.BLOCK)  # (OC, nb, 32)
    xb = x.reshape(B, T, 1, nb, q8_0.BLOCK)
    expected = (W * xb).sum(axis=(3, 4)) + (0 if b is None else b)  # (B, T, OC)
    scale = np.abs(x).max() * np.abs(W).sum(axis=(1, 2)).max()  # the largest possible |sum|
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12 * scale)


def test_refusals_name_what_is_wrong():
    with pytest.raises(ValueError, match="blocks of 32 weights, but these rows are 33 long"):
        q8_0.quantize(np.ones((2, 33)))
    with pytest.raises(ValueError, match="up to 8.319e\\+06 in magnitude.*has 1e\\+07"):
        q8_0.quantize(np.full((1, 32), 1e7))
    with pytest.raises(ValueError, match="has nan"):
        q8_0.quantize(np.full((1, 32), np.nan))
    blocks = q8_0.quantize(np.ones((3, 64)))
    with pytest.raises(ValueError, match="q8_0 weight blocks"):
        q8_0.forward(np.ones((1, 1, 32)), blocks)
    with pytest.raises(ValueError, match="blocks uint8"):
        q8_0.forward(np.ones((1, 1, 64)), blocks.view(np.int8))
    with pytest.raises(ValueError, match="q8_0 bias b"):
        q8_0.forward(np.ones((1, 1, 64)), blocks, np.ones(4))
