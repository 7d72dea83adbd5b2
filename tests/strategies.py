"""Hypothesis strategies shared by the tests: shapes that include the awkward ones, and float64 values."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigpt import GPTConfig


@st.composite
def arrays(draw, shape, scale=1.0):
    """float64 arrays of `shape`: either normal values from a drawn seed (generic, all distinct) or
    hypothesis' own arrays (constant runs, zeros, repeated values, the edges of [-2 scale, 2 scale])."""
    if draw(st.booleans()):
        seed = draw(st.integers(0, 2**32 - 1))
        return np.random.default_rng(seed).normal(0.0, scale, size=shape)
    elements = st.floats(-2.0 * scale, 2.0 * scale, allow_nan=False, width=64)
    return draw(hnp.arrays(np.float64, shape, elements=elements))


@st.composite
def token_ids(draw, shape, vocab_size):
    """(B, T) int64 token ids in [0, vocab_size); a small vocabulary makes repeated tokens likely."""
    return draw(hnp.arrays(np.int64, shape, elements=st.integers(0, vocab_size - 1)))


# B, T and C drawn small so that element-by-element finite differences stay fast;
# B=1, T=1 and C not a multiple of 8 are all in range (and the shrinker heads for them).
batch = st.integers(1, 3)
seq = st.integers(1, 6)
channels = st.integers(1, 11)


@st.composite
def gpt_configs(draw, bias=None):
    """Small GPT configurations: n_head = 1 and head size 1 included, vocabularies of 2 to 11."""
    n_head = draw(st.integers(1, 3))
    head_dim = draw(st.integers(1, 4))
    return GPTConfig(
        vocab_size=draw(st.integers(2, 11)),
        block_size=draw(st.integers(1, 6)),
        n_layer=draw(st.integers(1, 2)),
        n_head=n_head,
        n_embd=n_head * head_dim,
        dropout=0.0,
        bias=draw(st.booleans()) if bias is None else bias,
    )


@st.composite
def llama_configs(draw, arch=None):
    """Small Llama and Qwen 3 configurations: multi-query to multi-head attention (groups of 1 to 3 query heads),
    head size 2 (one pair of rotated channels) to 6, qwen3's heads not adding up to n_embd, a head of its own or
    tied to the embedding, rotary bases and Llama 3's scaling, vocabularies of 2 to 11."""
    arch = draw(st.sampled_from(["llama", "qwen3"])) if arch is None else arch
    n_kv_head = draw(st.integers(1, 2))
    n_head = n_kv_head * draw(st.integers(1, 3))
    # n_embd >= 2: an RMSNorm over one channel is sign(x) w away from x = 0 and steeper than central differences
    # resolve near it (tests/ops/test_rmsnorm.py checks that width on its own)
    n_embd = n_head * draw(st.integers(-(-2 // n_head), 3)) if arch == "llama" else draw(st.integers(2, 8))
    scaling = draw(st.sampled_from([None, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 4}]))
    return GPTConfig(
        arch=arch,
        vocab_size=draw(st.integers(2, 11)),
        block_size=draw(st.integers(1, 6)),
        n_layer=draw(st.integers(1, 2)),
        n_head=n_head,
        n_kv_head=n_kv_head,
        n_embd=n_embd,
        head_dim=2 * draw(st.integers(1, 3)),
        intermediate_size=draw(st.integers(1, 8)),
        tie_word_embeddings=draw(st.booleans()),
        rope_theta=draw(st.sampled_from([10000.0, 10.0])),
        rope_scaling=scaling,
    )
