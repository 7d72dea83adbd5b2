"""Autoregressive generation with a key/value cache: greedy, temperature, top-k and top-p sampling.

The prompt is processed once (the "prefill"); after that each step feeds only the newest token, whose
attention reads the keys and values of earlier positions from the cache instead of recomputing them.
Past block_size tokens the context window slides, as nanoGPT crops it: each token is predicted from
the last block_size tokens, and since every position then shifts by one, the cache is rebuilt from
the cropped window at every step. Math and costs: docs/sampling.md. Tests: tests/test_generate.py.
"""

import math

import numpy as np

from minigpt import interrupt, runtime
from minigpt.validate import check_token_ids


# --8<-- [start:filter]
def filter_logits(logits, temperature=1.0, top_k=None, top_p=None):
    """logits (B, V) -> probabilities (B, V) float64 to sample from, in Hugging Face's order:
    temperature, then top-k (keep the k largest), then top-p (keep the smallest set of most likely
    tokens whose probability adds up to at least top_p). Removed tokens get probability exactly 0.
    The largest logit is subtracted before the division: z/T then peaks at exactly 0 and every other entry is
    negative, so that however small T is (1e-320, a subnormal), the others fall to -inf rather than the largest
    overflowing to inf (inf - inf is NaN), and T -> 0 gives greedy decoding, probability 1 on the argmax."""
    x = np.asarray(logits, dtype=np.float64)  # (B, V)
    with np.errstate(over="ignore"):  # (an overflow here is the -inf wanted: a probability of 0)
        z = (x - x.max(axis=-1, keepdims=True)) / temperature  # (B, V) <= 0, its largest exactly 0
    B, V = z.shape
    if top_k is not None and top_k < V:
        kth = np.sort(z, axis=-1)[:, V - top_k][:, None]  # (B, 1) the k-th largest logit
        z = np.where(z < kth, -np.inf, z)  # (B, V) ties with the k-th are kept
    probs = np.exp(z)  # (B, V) 1 at the largest logit: the sum is at least 1, never 0
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        # most likely first, ranked by the logits themselves rather than by probs or z: a temperature so high that
        # exp rounds neighbours to the same probability, or the division rounds them to the same z (2.6e-28 and 0
        # over T = 1e296 are both 0), must not put a larger logit after a smaller one (Hugging Face sorts logits too)
        order = np.argsort(-x, axis=-1, kind="stable")  # (B, V)
        sorted_p = np.take_along_axis(probs, order, axis=-1)  # (B, V)
        mass_before = np.cumsum(sorted_p, axis=-1) - sorted_p  # (B, V) probability of the more likely tokens
        keep_sorted = mass_before < top_p  # (B, V) always keeps the most likely token
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)  # (B, V) back to vocabulary order
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum(axis=-1, keepdims=True)
    return probs
# --8<-- [end:filter]


def check_sampling_args(max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None, flags=False) -> None:
    """The sampling arguments, checked: a ValueError names the first that is wrong, as an argument (top_k) or, with
    flags, as the command's flag (--top-k), which checks them before it loads anything."""
    name = (lambda arg: "--" + arg.replace("_", "-")) if flags else (lambda arg: arg)  # noqa: E731
    greedy = "to always take the most likely token, use --greedy" if flags else "for greedy decoding use do_sample=False"

    def integer(value):
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not integer(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"{name('max_new_tokens')} must be a non-negative integer, got {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"{name('temperature')} must be a positive number, got {temperature!r}; {greedy}")
    if top_k is not None and (not integer(top_k) or top_k < 1):
        raise ValueError(f"{name('top_k')} must be a positive integer, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float, np.floating))
                              or not 0.0 < top_p <= 1.0):
        raise ValueError(f"{name('top_p')} must be in (0, 1], got {top_p!r}")
    if seed is not None and (not integer(seed) or seed < 0):
        raise ValueError(f"{name('seed')} must be a non-negative integer, got {seed!r}")


# --8<-- [start:stream]
def stream(model, idx, max_new_tokens, do_sample=True, temperature=1.0, top_k=None, top_p=None, seed=None):
    """The next token of each of the B sequences, a (B,) int64 array per step, max_new_tokens times (an iterator).
    Everything is checked here, at the call, before the first token is computed: a command can check its input
    this way before it prints anything (the prompt it echoes)."""
    cfg = model.config
    idx = check_token_ids(idx, cfg.vocab_size)
    check_sampling_args(max_new_tokens, temperature, top_k, top_p, seed)
    B, T = idx.shape
    if T == 0:
        raise ValueError("the prompt is empty; give at least one token")
    if T > cfg.block_size:
        raise ValueError(f"the prompt has {T} tokens but the model's context (block_size) is {cfg.block_size}; shorten it")
    check_memory(model, B, T, max_new_tokens)
    return next_tokens(model, idx, max_new_tokens, do_sample, temperature, top_k, top_p, seed)


def next_tokens(model, idx, max_new_tokens, do_sample, temperature, top_k, top_p, seed):
    """Yield stream's tokens, its arguments checked."""
    cfg = model.config
    B, T = idx.shape
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    try:
        window = idx  # (B, <= block_size) the context the next token is predicted from
        # as many positions as this generation fills before the window slides: a model's context can be far longer
        kv_cache = model.new_kv_cache(B, min(cfg.block_size, T + max_new_tokens))
        logits, _ = model.forward(window, kv_cache=kv_cache)  # (B, T, V) prefill
        for step in range(max_new_tokens):
            interrupt.check()  # a stop whose KeyboardInterrupt was lost; or an evaluation abandoned
            last = logits[:, -1, :]  # (B, V)
            if do_sample:
                probs = filter_logits(last, temperature, top_k, top_p)  # (B, V)
                next_id = np.array([rng.choice(cfg.vocab_size, p=p) for p in probs], dtype=np.int64)  # (B,)
            else:
                next_id = np.argmax(last, axis=-1).astype(np.int64)  # (B,)
            yield next_id
            if step == max_new_tokens - 1:
                break
            window = np.concatenate([window, next_id[:, None]], axis=1)[:, -cfg.block_size:]  # (B, <= block_size)
            if kv_cache[0].length < cfg.block_size:
                logits, _ = model.forward(next_id[:, None], kv_cache=kv_cache)  # (B, 1, V) one new position
            else:  # the window is full and slides: every position shifts, so the cache is rebuilt
                kv_cache = model.new_kv_cache(B)
                logits, _ = model.forward(window, kv_cache=kv_cache)  # (B, block_size, V)
    finally:
        model.train(was_training)
# --8<-- [end:stream]


def check_memory(model, B: int, T: int, max_new_tokens: int) -> None:
    """Refuse in one line, before anything is allocated, B sequences that would not fit in memory together: their
    key/value caches and the longest forward pass (the prefill, or a full window once it slides), whose logits
    (V a position), activations (about 16 C) and attention scores (n_head a pair of positions) dominate."""
    cfg = model.config
    cached = min(cfg.block_size, T + max_new_tokens)
    window = T if T + max_new_tokens <= cfg.block_size else cfg.block_size
    per_sequence = (2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * cached
                    + window * (cfg.vocab_size + 16 * cfg.n_embd + cfg.n_head * window)) * model.dtype.itemsize
    runtime.check_memory(B * per_sequence, f"generating {B:,} sequences at once",
                         "generate fewer at once (--num-samples)")


def generate(model, idx, max_new_tokens, do_sample=True, temperature=1.0, top_k=None, top_p=None, seed=None):
    """idx (B, T) -> (B, T + max_new_tokens): the prompt followed by its continuation."""
    idx = check_token_ids(idx, model.config.vocab_size)
    steps = list(stream(model, idx, max_new_tokens, do_sample, temperature, top_k, top_p, seed))
    new = np.stack(steps, axis=1) if steps else np.zeros((idx.shape[0], 0), dtype=np.int64)  # (B, max_new_tokens)
    return np.concatenate([idx.astype(np.int64), new], axis=1)  # (B, T + max_new_tokens)
