"""Beam search (minigpt/beam.py) against transformers' generate(num_beams=...): random tiny models of each family in
float64 on both sides, random prompts, beams, length penalties, early stopping, end tokens and minimum lengths; one
beam is greedy decoding; a cache's rows reorder as beams do; bad arguments are refused in one line."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig, hf
from minigpt.beam import beam_search
from minigpt.ops import attention

V = 64  # enough tokens that the 2 x 4 (or 3 x 4, with two end tokens) candidates of a step are all real ones
CONFIGS = {
    "gpt2": GPTConfig(vocab_size=V, block_size=32, n_layer=2, n_head=2, n_embd=16),
    "llama": GPTConfig(arch="llama", vocab_size=V, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=16,
                       rope_theta=10000.0),
    "qwen3": GPTConfig(arch="qwen3", vocab_size=V, block_size=32, n_layer=2, n_head=4, n_kv_head=1, n_embd=16,
                       head_dim=8, intermediate_size=40, norm_eps=1e-5, rope_theta=1e6, tie_word_embeddings=True),
}


def random_model(cfg: GPTConfig) -> GPT:
    """float64 weights larger than the initialisation, so that the model prefers some continuations clearly."""
    model = GPT(cfg, seed=7, dtype=np.float64)
    rng = np.random.default_rng(7)
    for p in model.params.values():
        p += rng.normal(0, 0.3, size=p.shape)
    return model.eval()


def twin(transformers, torch, model: GPT, directory):
    """The same float64 weights in transformers: the directory holds float32, so the arrays are loaded after it."""
    hf.save_pretrained(model, directory)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager").double().eval()
    with torch.no_grad():
        missing, unexpected = theirs.load_state_dict({k: torch.from_numpy(v) for k, v in model.params.items()},
                                                     strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}  # (tied to the embedding)
    config = theirs.generation_config  # nothing of the directory's: every argument is given at the call
    config.eos_token_id = config.bos_token_id = config.pad_token_id = None
    return theirs


def frequent_tokens(model: GPT) -> list[int]:
    """The tokens the model writes most often, greedily after a few prompts: end tokens that beams do reach."""
    prompts = np.random.default_rng(1).integers(0, V, size=(8, 3))  # (8, 3)
    written = model.generate(prompts, 20, do_sample=False)[:, 3:]  # (8, 20)
    return [token for token, _ in Counter(written.ravel().tolist()).most_common(2)]


@pytest.fixture(scope="module", params=list(CONFIGS))
def pair(request, transformers, torch, tmp_path_factory):
    model = random_model(CONFIGS[request.param])
    return model, twin(transformers, torch, model, tmp_path_factory.mktemp(request.param)), frequent_tokens(model)


def theirs_of(torch, hf_model, prompt, max_new_tokens, num_beams, length_penalty, early_stopping, eos, min_new_tokens):
    """transformers' new tokens."""
    with torch.no_grad():
        out = hf_model.generate(torch.from_numpy(prompt), attention_mask=torch.ones(prompt.shape, dtype=torch.long),
                                do_sample=False, num_beams=num_beams, length_penalty=length_penalty,
                                early_stopping=early_stopping, eos_token_id=list(eos) or None, pad_token_id=0,
                                max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens)
    return out.numpy()[0, prompt.shape[1]:]


@settings(max_examples=10, deadline=None)
@given(prompt=st.lists(st.integers(0, V - 1), min_size=1, max_size=6), num_beams=st.integers(1, 4),
       length_penalty=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]), early_stopping=st.sampled_from([True, False, "never"]),
       ends=st.sampled_from([0, 1, 1, 2]), min_new_tokens=st.integers(0, 3), max_new_tokens=st.integers(1, 20))
def test_beam_search_equals_transformers(pair, torch, prompt, num_beams, length_penalty, early_stopping, ends,
                                         min_new_tokens, max_new_tokens):
    model, theirs, frequent = pair
    eos = frequent[:ends]
    idx = np.array([prompt], dtype=np.int64)  # (1, T)
    ours = beam_search(model, idx, max_new_tokens, num_beams, length_penalty, early_stopping, frozenset(eos),
                       min_new_tokens)
    want = theirs_of(torch, theirs, idx, max_new_tokens, num_beams, length_penalty, early_stopping, eos,
                     min_new_tokens)
    np.testing.assert_array_equal(ours, want)


def test_each_way_of_stopping_early_equals_transformers_where_they_differ(pair, torch):
    # A length penalty of 2 favours long hypotheses, so that stopping at once (True), when the best running beam
    # scored at its present length cannot win (False), or when it could not at the longest length ("never") end on
    # different hypotheses for some prompts: the same as transformers' for every prompt, and different somewhere.
    model, theirs, frequent = pair
    prompts = np.random.default_rng(2).integers(0, V, size=(12, 2))  # (12, 2)
    results = {}
    for early_stopping in (True, False, "never"):
        results[early_stopping] = []
        for prompt in prompts:
            ours = beam_search(model, prompt[None], 20, 2, 2.0, early_stopping, frozenset(frequent[:1]))
            want = theirs_of(torch, theirs, prompt[None], 20, 2, 2.0, early_stopping, frequent[:1], 0)
            np.testing.assert_array_equal(ours, want)
            results[early_stopping].append(tuple(ours.tolist()))
    assert results[True] != results[False] and results[False] != results["never"]


@pytest.mark.parametrize("arch", CONFIGS)
def test_one_beam_is_greedy_decoding_up_to_the_first_end_token(arch):
    model = random_model(CONFIGS[arch])
    end = frequent_tokens(model)[0]
    for prompt in np.random.default_rng(3).integers(0, V, size=(6, 3)):
        greedy = model.generate(prompt[None], 16, do_sample=False)[0, 3:]  # (16,)
        stop = np.flatnonzero(greedy == end)
        want = greedy[:stop[0] + 1] if stop.size else greedy  # up to and with the end token
        for length_penalty, early_stopping in ((1.0, False), (2.0, "never"), (-1.0, True)):  # (none of them applies)
            np.testing.assert_array_equal(beam_search(model, prompt[None], 16, 1, length_penalty, early_stopping,
                                                      frozenset([end])), want)


def test_a_cache_reorders_its_rows_as_beams_do():
    # Two prompts are cached; the rows reorder to (1, 1, 0), as three beams that continue the second prompt twice
    # and the first once; the next token's logits are those of the full sequences, and the two copies of a row are
    # two arrays: one beam's new position does not write into another's.
    model = random_model(CONFIGS["llama"])
    prompts = np.random.default_rng(4).integers(0, V, size=(2, 5))  # (2, 5)
    kv_cache = model.new_kv_cache(2, 8)
    model.forward(prompts, kv_cache=kv_cache)
    rows = np.array([1, 1, 0])
    for layer_cache in kv_cache:
        layer_cache.reorder(rows)
    assert kv_cache[0].k.shape[0] == 3 and kv_cache[0].length == 5
    nxt = np.array([[7], [9], [11]])  # (3, 1) a different token for each beam
    logits, _ = model.forward(nxt, kv_cache=kv_cache)  # (3, 1, V)
    full, _ = model.forward(np.concatenate([prompts[rows], nxt], axis=1))  # (3, 6, V)
    np.testing.assert_allclose(logits[:, 0], full[:, -1], rtol=1e-12, atol=1e-12)


def test_reorder_keeps_the_rows_asked_for_as_copies():
    cache = attention.KVCache(3, 4, 2, 5, np.float64)
    rng = np.random.default_rng(5)
    k, v = rng.normal(size=(2, 3, 2, 2, 5))  # (3, 2, 2, 5) x2: the keys and values of 2 positions of 3 rows
    cache.append(k, v)
    before_k, before_v = cache.k.copy(), cache.v.copy()
    cache.reorder(np.array([2, 0, 2, 1]))
    np.testing.assert_array_equal(cache.k, before_k[[2, 0, 2, 1]])
    np.testing.assert_array_equal(cache.v, before_v[[2, 0, 2, 1]])
    cache.append(np.ones((4, 1, 2, 5)), np.zeros((4, 1, 2, 5)))  # the next position of each of the four rows
    assert cache.length == 3
    np.testing.assert_array_equal(cache.k[:, 2], 1.0)
    np.testing.assert_array_equal(cache.k[:, :2], before_k[[2, 0, 2, 1], :2])  # the positions before, unchanged
    cache.k[0, 0] += 1.0  # row 2 kept twice is two arrays: one changed, the other is not
    np.testing.assert_array_equal(cache.k[2, 0], before_k[2, 0])


@pytest.mark.parametrize("change, message", [
    (dict(num_beams=0), "num_beams must be a positive integer, got 0"),
    (dict(num_beams=2.0), "num_beams must be a positive integer"),
    (dict(length_penalty=float("nan")), "length_penalty must be a finite number"),
    (dict(early_stopping="sometimes"), 'early_stopping must be True, False or "never"'),
    (dict(early_stopping=1), 'early_stopping must be True, False or "never"'),
    (dict(max_new_tokens=-1), "max_new_tokens must be a non-negative integer"),
    (dict(min_new_tokens=-2), "min_new_tokens must be a non-negative integer"),
    (dict(max_new_tokens=30), "lower max_new_tokens to at most 29"),
    (dict(idx=np.array([[1, 2], [3, 4]])), "beam search continues one prompt, got 2"),
    (dict(idx=np.array([[1, V]])), "outside the vocabulary"),
    (dict(eos_token_ids=frozenset([V])), f"must be in [0, {V})"),
    (dict(eos_token_ids=frozenset(range(V))), f"all {V} tokens of the vocabulary are end tokens"),
])
def test_bad_arguments_are_refused_in_one_line(change, message):
    model = random_model(CONFIGS["gpt2"])
    args = dict(idx=np.array([[1, 2, 3]]), max_new_tokens=4, num_beams=2, length_penalty=1.0, early_stopping=False,
                eos_token_ids=frozenset(), min_new_tokens=0) | change
    with pytest.raises(ValueError) as e:
        beam_search(model, **args)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
