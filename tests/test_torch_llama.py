"""PyTorch autograd as an independent referee for the Llama and Qwen 3 families: the same weights in Hugging Face's
LlamaForCausalLM and Qwen3ForCausalLM must give the same logits, loss, every gradient, and the same greedy tokens.

Three parts of Hugging Face's models compute in float32 whatever the model's dtype: RMSNorm (it casts its input to
float32), the rotary embeddings (angles from float32 frequencies and positions) and the "eager" attention's softmax.
The referee's attention is "sdpa" (torch's scaled_dot_product_attention, in the input's precision), and in float64
it runs with the other two casts taken out (float64_exact below: the same formulas in the input's precision, the frequencies
minigpt's float64 ones); that the frequencies themselves are transformers' is its own test, at float32 precision.
In float32 the models run unchanged."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig
from minigpt.ops import cross_entropy, rope
from test_torch_reference import rel_err
from tolerances import FLOAT32_RTOL, TORCH_RTOL_FLOAT32, TORCH_RTOL_FLOAT64, ZERO_GRADIENT_ATOL

TOLERANCE = {np.float64: TORCH_RTOL_FLOAT64, np.float32: TORCH_RTOL_FLOAT32}
HF_CLASSES = {"llama": ("LlamaConfig", "LlamaForCausalLM"), "qwen3": ("Qwen3Config", "Qwen3ForCausalLM")}


def llama3_scaling(context):
    return {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": context}


@st.composite
def configs(draw):
    n_kv_head = draw(st.integers(1, 3))
    n_head = n_kv_head * draw(st.integers(1, 3))  # groups of 1 (multi-head) to 3 query heads
    block_size = draw(st.integers(1, 12))
    scaling = draw(st.sampled_from([None, llama3_scaling(draw(st.integers(2, 16)))]))
    arch = draw(st.sampled_from(["llama", "qwen3"]))
    # qwen3's heads need not add up to n_embd; LlamaConfig wants n_embd a multiple of n_head (head_dim still free).
    # n_embd >= 3: an RMSNorm over one channel outputs +-w whatever its input, so its true gradient is 0 and both
    # libraries return rounding noise there (tests/test_model.py checks that width against finite differences)
    n_embd = (draw(st.integers(3, 16)) if arch == "qwen3" else
              n_head * draw(st.integers(-(-3 // n_head), 16 // n_head)))
    return GPTConfig(arch=arch, vocab_size=draw(st.integers(2, 40)),
                     block_size=block_size, n_layer=draw(st.integers(1, 3)), n_head=n_head, n_kv_head=n_kv_head,
                     head_dim=2 * draw(st.integers(1, 4)), n_embd=n_embd,
                     intermediate_size=draw(st.integers(1, 20)), tie_word_embeddings=draw(st.booleans()),
                     rope_theta=draw(st.sampled_from([10000.0, 500000.0, 100.0])), rope_scaling=scaling,
                     norm_eps=draw(st.sampled_from([1e-6, 1e-5])))


def hf_config(transformers, cfg):
    rope_parameters = {"rope_type": "default", "rope_theta": cfg.rope_theta}
    if cfg.rope_scaling is not None:
        rope_parameters = {**cfg.rope_scaling, "rope_theta": cfg.rope_theta}
    config = getattr(transformers, HF_CLASSES[cfg.arch][0])(
        vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_kv_head,
        head_dim=cfg.head_dim, max_position_embeddings=cfg.block_size, rms_norm_eps=cfg.norm_eps,
        tie_word_embeddings=cfg.tie_word_embeddings, rope_parameters=rope_parameters, attention_dropout=0.0,
        bos_token_id=0, eos_token_id=None, pad_token_id=None)
    # torch's scaled_dot_product_attention, in the input's precision (the "eager" attention's softmax is float32)
    config._attn_implementation = "sdpa"
    return config


def hf_model(transformers, torch, cfg, dtype):
    model = getattr(transformers, HF_CLASSES[cfg.arch][1])(hf_config(transformers, cfg))
    return model.to(torch.float64 if dtype == np.float64 else torch.float32).eval()


@contextlib.contextmanager
def float64_exact(torch, hf, ours, dtype):
    """Hugging Face's RMSNorm and rotary embeddings in the input's precision, with minigpt's float64 frequencies (in
    float32, nothing changes)."""
    if dtype != np.float64:
        yield
        return
    from transformers.models.llama import modeling_llama
    from transformers.models.qwen3 import modeling_qwen3

    def rmsnorm_forward(self, hidden_states):  # LlamaRMSNorm.forward without its cast to float32
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))

    def rotary_forward(self, x, position_ids):  # LlamaRotaryEmbedding.forward in float64
        freqs = position_ids[..., None].double() * self.inv_freq.double()
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * self.attention_scaling).to(x.dtype), (emb.sin() * self.attention_scaling).to(x.dtype)

    hf.model.rotary_emb.inv_freq = torch.from_numpy(ours.inv_freq)
    with pytest.MonkeyPatch.context() as mp:
        for module, prefix in ((modeling_llama, "Llama"), (modeling_qwen3, "Qwen3")):
            mp.setattr(getattr(module, f"{prefix}RMSNorm"), "forward", rmsnorm_forward)
            mp.setattr(getattr(module, f"{prefix}RotaryEmbedding"), "forward", rotary_forward)
        yield


def paired(torch, transformers, cfg, dtype, seed, scale):
    """minigpt's model at a random point of parameter space, and Hugging Face's with the same weights."""
    rng = np.random.default_rng(seed)
    ours = GPT(cfg, seed=seed, dtype=dtype)
    for name, p in ours.params.items():  # a random point of parameter space, not only the initialisation
        p += rng.normal(0.0, scale, size=p.shape).astype(dtype)
    hf = hf_model(transformers, torch, cfg, dtype)
    missing, unexpected = hf.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.params.items()},
                                             strict=False)
    assert not unexpected
    assert set(missing) <= ({"lm_head.weight"} if cfg.tie_word_embeddings else set())
    if cfg.tie_word_embeddings:
        assert hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()  # still tied
    return ours, hf


def compare_with_hf(torch, transformers, cfg, dtype, seed, B, T, scale=0.2):
    ours, hf = paired(torch, transformers, cfg, dtype, seed, scale)
    rng = np.random.default_rng([seed, 1])
    idx = rng.integers(0, cfg.vocab_size, size=(B, T))
    targets = rng.integers(0, cfg.vocab_size, size=(B, T))
    targets[rng.random((B, T)) < 0.2] = cross_entropy.IGNORE_INDEX
    targets[0, 0] = 0

    logits, loss = ours.forward(idx, targets)
    grads = ours.backward()
    with float64_exact(torch, hf, ours, dtype):
        hf.zero_grad()
        hf_logits = hf(torch.from_numpy(idx)).logits
        hf_loss = torch.nn.functional.cross_entropy(hf_logits.flatten(0, 1), torch.from_numpy(targets).flatten(),
                                                    ignore_index=cross_entropy.IGNORE_INDEX)
        hf_loss.backward()
    hf_grads = {name: p.grad.numpy() for name, p in hf.named_parameters()}

    tol = TOLERANCE[dtype]
    assert rel_err(logits, hf_logits.detach().numpy()) < tol
    assert abs(loss - hf_loss.item()) / abs(hf_loss.item()) < tol
    assert set(grads) == set(hf_grads)
    # Without a table of positions, a token repeated in a sequence has the same value vector at both places, and
    # then the queries' true gradient can be exactly 0 (the attention's mix of equal values does not depend on it):
    # each side returns its own rounding noise there. So a tensor passes within tol of its own largest entry, or
    # within ZERO_GRADIENT_ATOL of the model's largest gradient.
    largest = max(np.abs(g).max() for g in hf_grads.values())
    for name, g in grads.items():
        theirs, error = hf_grads[name], np.abs(g - hf_grads[name]).max()
        assert error < tol * np.abs(theirs).max() or error < ZERO_GRADIENT_ATOL[np.dtype(dtype).name] * largest, name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(data=st.data(), seed=st.integers(0, 2**16))
@settings(max_examples=15)
def test_logits_loss_and_every_gradient_match_hugging_face(torch, transformers, dtype, data, seed):
    cfg = data.draw(configs())
    B, T = data.draw(st.integers(1, 3)), data.draw(st.integers(1, cfg.block_size))
    compare_with_hf(torch, transformers, cfg, dtype, seed, B, T)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_a_recipe_sized_model_matches_hugging_face(torch, transformers, arch):
    # the size minigpt trains by default, with grouped-query attention and Llama 3's rope_scaling, at the
    # initialisation (scale 0) where the residual stream is small
    cfg = GPTConfig(arch=arch, vocab_size=65, block_size=64, n_layer=4, n_head=4, n_kv_head=2, n_embd=128,
                    rope_scaling=llama3_scaling(16) if arch == "llama" else None)
    compare_with_hf(torch, transformers, cfg, np.float64, seed=0, B=2, T=64, scale=0.0)


@given(head_dim=st.sampled_from([2, 4, 6, 16, 64, 128]), theta=st.sampled_from([100.0, 10000.0, 500000.0, 1e6]),
       context=st.sampled_from([None, 16, 8192]))
@settings(max_examples=30)
def test_inverse_frequencies_are_transformers_own(torch, transformers, head_dim, theta, context):
    # transformers computes them in float32: equal to float32 precision (a few ulp of the powers and divisions)
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    cfg = GPTConfig(arch="llama", vocab_size=5, block_size=32, n_layer=1, n_head=1, n_embd=8, head_dim=head_dim,
                    rope_theta=theta, rope_scaling=None if context is None else llama3_scaling(context))
    config = hf_config(transformers, cfg)
    inv_freq = rope.inverse_frequencies(head_dim, theta, cfg.rope_scaling)
    model_rotary = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding(config)
    theirs = model_rotary.inv_freq.numpy().astype(np.float64)
    if context is not None:
        theirs_direct, _ = ROPE_INIT_FUNCTIONS["llama3"](config)
        np.testing.assert_array_equal(theirs, theirs_direct.numpy())
    np.testing.assert_allclose(inv_freq, theirs, rtol=FLOAT32_RTOL)


@pytest.mark.parametrize("arch, tie", [("llama", False), ("qwen3", True)])
def test_greedy_generation_gives_hugging_face_s_tokens(torch, transformers, arch, tie):
    # 200 new tokens through each side's KV cache: one wrong cached key (a rotation at the wrong position) changes
    # a token. Weights at scale 0.3, so that the logits are far from ties.
    cfg = GPTConfig(arch=arch, vocab_size=50, block_size=208, n_layer=2, n_head=4, n_kv_head=1, n_embd=32,
                    tie_word_embeddings=tie)
    ours, hf = paired(torch, transformers, cfg, np.float64, seed=3, scale=0.3)
    prompt = np.random.default_rng(3).integers(0, 50, size=(2, 8))
    tokens = ours.eval().generate(prompt, 200, do_sample=False)
    with float64_exact(torch, hf, ours, np.float64), torch.no_grad():
        theirs = hf.generate(torch.from_numpy(prompt), max_new_tokens=200, min_new_tokens=200, do_sample=False,
                             attention_mask=torch.ones(prompt.shape, dtype=torch.long)).numpy()
    assert len(set(tokens[:, 8:].ravel().tolist())) > 5  # not a repeated token, which a broken cache could give too
    np.testing.assert_array_equal(tokens, theirs)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_a_hugging_face_state_dict_loads_and_gives_the_same_logits(torch, transformers, arch):
    # Hugging Face's own initialisation and its state dict as it gives it (with lm_head.weight when tied)
    from minigpt.hf import to_minigpt

    cfg = GPTConfig(arch=arch, vocab_size=50, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=16,
                    tie_word_embeddings=arch == "qwen3")
    hf = hf_model(transformers, torch, cfg, np.float32)
    ours = GPT(cfg, seed=0)
    ours.load_state_dict(to_minigpt(hf.state_dict(), cfg))
    idx = np.random.default_rng(0).integers(0, 50, size=(2, 16))
    with torch.no_grad():
        hf_logits = hf(torch.from_numpy(idx)).logits.numpy()
    assert rel_err(ours.eval().forward(idx)[0], hf_logits) < TORCH_RTOL_FLOAT32
