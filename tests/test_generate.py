import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig
from minigpt.generate import filter_logits
from tolerances import FLOAT32_RTOL, FLOAT64_RTOL

CFG = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8)
SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 4}
# one of each family; the KV cache of Llama's and Qwen's holds keys already turned to their positions, of fewer heads
FAMILIES = {"gpt2": CFG,
            "llama": GPTConfig(arch="llama", vocab_size=13, block_size=8, n_layer=2, n_head=4, n_kv_head=2, n_embd=8,
                               rope_scaling=SCALING),
            "qwen3": GPTConfig(arch="qwen3", vocab_size=13, block_size=8, n_layer=2, n_head=3, n_kv_head=1, n_embd=8,
                               head_dim=4, tie_word_embeddings=True)}


def random_model(cfg=CFG, seed=0, dtype=np.float64, scale=0.5):
    """Weights far from the initialisation, so that the logits are far from uniform."""
    model = GPT(cfg, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p += rng.normal(0.0, scale, size=p.shape).astype(dtype)
    return model


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, FLOAT64_RTOL), (np.float32, FLOAT32_RTOL)])
@given(seed=st.integers(0, 2**16), data=st.data())
@settings(max_examples=20)
def test_kv_cache_gives_the_logits_of_the_full_forward(family, dtype, rtol, seed, data):
    cfg = FAMILIES[family]
    model = random_model(cfg, seed=seed, dtype=dtype).eval()
    B = data.draw(st.integers(1, 3))
    T = cfg.block_size
    idx = np.random.default_rng(seed).integers(0, cfg.vocab_size, size=(B, T))
    full, _ = model.forward(idx)  # (B, T, V)
    prefill = data.draw(st.integers(1, T))
    cache = model.new_kv_cache(B)
    pieces = [model.forward(idx[:, :prefill], kv_cache=cache)[0]]
    t = prefill
    while t < T:  # the rest in chunks of 1 to 3 tokens
        n = min(data.draw(st.integers(1, 3)), T - t)
        pieces.append(model.forward(idx[:, t:t + n], kv_cache=cache)[0])
        t += n
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=rtol, atol=rtol * np.abs(full).max())


def greedy_by_full_forward(model, idx, n):
    """nanoGPT's loop: crop the context to block_size, run the whole forward, take the argmax."""
    for _ in range(n):
        logits, _ = model.forward(idx[:, -model.config.block_size:])
        idx = np.concatenate([idx, logits[:, -1].argmax(-1)[:, None]], axis=1)
    return idx


@pytest.mark.parametrize("family", FAMILIES)
@given(st.integers(0, 2**16), st.integers(1, 8), st.integers(0, 20))
@settings(max_examples=20)
def test_greedy_generation_equals_the_full_forward_loop_including_past_block_size(family, seed, T, n):
    model = random_model(FAMILIES[family], seed=seed)
    idx = np.random.default_rng(seed).integers(0, CFG.vocab_size, size=(2, T))
    out = model.generate(idx, n, do_sample=False)
    assert out.shape == (2, T + n)
    np.testing.assert_array_equal(out, greedy_by_full_forward(model, idx, n))


def allowed_tokens(logits, top_k, top_p):
    """The tokens top-k then top-p may keep, computed independently of filter_logits: sort, cut."""
    order = np.argsort(-logits, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    if top_p is not None:
        p = np.exp(logits[order] - logits[order].max())
        p /= p.sum()
        needed = int(np.searchsorted(np.cumsum(p), top_p - 1e-12)) + 1  # smallest prefix with mass >= top_p
        order = order[:needed]
    return set(order.tolist())


@given(st.integers(0, 2**16), st.one_of(st.none(), st.integers(1, 13)), st.one_of(st.none(), st.floats(0.05, 1.0)),
       st.floats(0.5, 2.0))
@settings(max_examples=40)
def test_top_k_and_top_p_never_emit_a_token_outside_the_allowed_set(seed, top_k, top_p, temperature):
    model = random_model(seed=seed, scale=1.0)
    idx = np.random.default_rng(seed).integers(0, CFG.vocab_size, size=(3, 2))
    out = model.generate(idx, 10, top_k=top_k, top_p=top_p, temperature=temperature, seed=seed)
    for t in range(2, out.shape[1]):  # replay each step with the full forward to get its logits
        logits, _ = model.forward(out[:, max(0, t - CFG.block_size):t])
        for b in range(3):
            z = logits[b, -1] / temperature
            assert out[b, t] in allowed_tokens(z, top_k, top_p), (b, t)


@given(st.integers(0, 2**16), st.integers(1, 20), st.floats(0.01, 1.0))
def test_filtered_probabilities_are_a_distribution_over_the_allowed_set(seed, top_k, top_p):
    logits = np.random.default_rng(seed).normal(0, 3, size=(4, 20))
    probs = filter_logits(logits, 1.0, top_k, top_p)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=FLOAT64_RTOL)
    for b in range(4):
        assert set(np.flatnonzero(probs[b]).tolist()) == allowed_tokens(logits[b], top_k, top_p)


def test_sampling_is_reproducible_with_a_seed_and_varies_without():
    model = random_model()
    idx = np.array([[1, 2]])
    a = model.generate(idx, 20, seed=5)
    assert np.array_equal(a, model.generate(idx, 20, seed=5))
    assert not np.array_equal(a, model.generate(idx, 20, seed=6))


def test_temperature_near_zero_is_greedy():
    model = random_model()
    idx = np.array([[3, 1, 4]])
    np.testing.assert_array_equal(model.generate(idx, 12, temperature=1e-6, seed=0), model.generate(idx, 12, do_sample=False))


def test_generation_leaves_the_training_mode_as_it_was():
    model = random_model()
    model.generate(np.array([[1]]), 2)
    assert model.training
    model.eval().generate(np.array([[1]]), 2)
    assert not model.training


def test_zero_new_tokens_returns_the_prompt():
    idx = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(random_model().generate(idx, 0), idx)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(idx=np.zeros((1, 9), dtype=np.int64)), "the prompt has 9 tokens but the model's context (block_size) is 8"),
        (dict(idx=np.array([[13]])), "token id 13 at batch 0, position 0 is outside the vocabulary (size 13)"),
        (dict(idx=np.zeros((1, 0), dtype=np.int64)), "the prompt is empty"),
        (dict(temperature=0.0), "temperature must be a positive number, got 0.0; for greedy decoding use do_sample=False"),
        (dict(top_k=0), "top_k must be a positive integer, got 0"),
        (dict(top_p=1.5), "top_p must be in (0, 1], got 1.5"),
        (dict(max_new_tokens=-1), "max_new_tokens must be a non-negative integer, got -1"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    args = dict(idx=np.array([[1, 2]]), max_new_tokens=3, **{"temperature": 1.0}) | kwargs
    with pytest.raises(ValueError) as e:
        random_model().generate(**args)
    assert message in str(e.value)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_a_llama_s_fused_weights_stay_its_parameters_through_training(optimizer):
    """q, k and v (gate and up) are rows of one array (GPT.fused), which decoding multiplies by at once
    (block.linears): after optimizer steps and load_state_dict, every parameter still lies in its array, and decoding
    gives the logits of the whole-sequence forward, which multiplies by each weight on its own."""
    from minigpt.muon import MuonAdamW
    from minigpt.optim import AdamW

    model = GPT(GPTConfig(arch="llama", vocab_size=20, block_size=12, n_layer=2, n_head=4, n_kv_head=2, n_embd=16),
                seed=0, dtype=np.float64)
    opt = (AdamW(model.trainable()) if optimizer == "adamw" else
           MuonAdamW(model.trainable(), model.matrices(), learning_rate=1e-2, muon_lr=2e-2))
    idx = np.random.default_rng(0).integers(0, 20, (2, 12))
    for _ in range(3):
        model.forward(idx[:, :-1], idx[:, 1:])
        opt.step(model.backward(), lr=1e-2)
    state = model.state_dict()
    model.load_state_dict({name: p * 1.5 for name, p in state.items()})
    assert len(model.fused) == 2 * 2
    for names, rows in model.fused.items():
        assert all(model.params[name].base is rows for name in names)
        assert np.array_equal(np.concatenate([model.params[name] for name in names]), rows)
    model.eval()
    full, _ = model.forward(idx)
    cache = model.new_kv_cache(2)
    steps = [model.forward(idx[:, :4], kv_cache=cache)[0]] + [model.forward(idx[:, t:t + 1], kv_cache=cache)[0]
                                                               for t in range(4, 12)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-10, atol=1e-12)
