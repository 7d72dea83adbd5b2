"""Beam search on the key/value cache, equal token for token to Hugging Face transformers' `generate(num_beams=N,
do_sample=False, length_penalty=..., early_stopping=..., eos_token_id=[...], max_new_tokens=..., min_new_tokens=...)`
(transformers 5, generation/utils.py `_beam_search` and its helpers), whose rules are these:

- A beam's score is the sum of the log-probabilities of its new tokens: log_softmax of the logits (unchanged by
  temperature, top-k or top-p, which beam search does not use), with the end tokens at -inf while fewer than
  min_new_tokens tokens have been generated (not renormalised afterwards).
- The prompt is one beam at first. Each step scores every running beam continued by every token and keeps the
  K = max(2, 1 + number of end tokens) x N best candidates, best first. (transformers starts N copies of the prompt,
  all but the first at score -1e9, which are never picked while the first has K candidates to give. A vocabulary
  smaller than that, a character model's, makes it pick placeholders at -1e9; this module keeps fewer candidates,
  those of score above -inf, and then may end elsewhere.)
- A candidate ends if its token is an end token, or if it is the max_new_tokens-th token. Only those ranked among
  the first N of the K are kept as finished hypotheses, scored score / n ** length_penalty, n the number of NEW
  tokens (the end token included, the prompt not). The N best finished hypotheses are kept.
- The N best candidates that did not end are the next step's running beams (the K candidates hold N of them, at
  least N times the vocabulary's end tokens come after them).
- The search stops at max_new_tokens, or, once N hypotheses have finished:
  early_stopping=True: at once;
  early_stopping=False: when the best running beam, scored with the length it has now (score / n ** length_penalty),
  would no longer beat the worst finished hypothesis;
  early_stopping="never": the same, but with length_penalty > 0 it is scored with the longest length it could reach,
  max_new_tokens, so that the search stops only when no hypothesis could be improved (with length_penalty <= 0
  a longer beam can only lose, so the present length is already the bound).
- The result is the best finished hypothesis: its new tokens, its end token included if it ended on one.
- One beam is greedy decoding (transformers then takes its greedy path, which has no length penalty or early stopping
  to apply): the most likely token each step, up to the first end token.

Ties between equal scores go to the lower beam, then the lower token id, then the earlier finished hypothesis.
Scores are float64 here (transformers adds them in float32): the two agree except between scores closer than
float32 can tell apart. Math, cost, and why the result is not the most likely sequence: docs/sampling.md.
Tests: tests/test_beam.py.
"""

import math
from typing import NamedTuple

import numpy as np

from minigpt import interrupt
from minigpt.generate import check_memory
from minigpt.validate import check_token_ids

EARLY_STOPPING = (True, False, "never")


class Beams(NamedTuple):
    """How a command asks for beam search (minigpt/chat.py): its arguments other than the prompt and the lengths."""
    num_beams: int
    length_penalty: float = 1.0
    early_stopping: bool | str = False


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """logits (n, V) -> log-probabilities (n, V) float64. The largest logit is subtracted first so that exp cannot
    overflow."""
    z = logits.astype(np.float64)  # (n, V)
    z = z - z.max(axis=-1, keepdims=True)  # (n, V) <= 0
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (n, V)


def check_beam_args(num_beams, length_penalty=1.0, early_stopping=False, flags=False) -> None:
    """Beam search's own arguments, checked: a ValueError names the first that is wrong, as an argument or, with
    flags, as the command's flag (--num-beams)."""
    name = (lambda arg: "--" + arg.replace("_", "-")) if flags else (lambda arg: arg)  # noqa: E731
    if isinstance(num_beams, bool) or not isinstance(num_beams, (int, np.integer)) or num_beams < 1:
        raise ValueError(f"{name('num_beams')} must be a positive integer, got {num_beams!r}")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float, np.floating)) \
            or not math.isfinite(length_penalty):
        raise ValueError(f"{name('length_penalty')} must be a finite number, got {length_penalty!r}")
    if not any(early_stopping is choice for choice in (True, False)) and early_stopping != "never":
        raise ValueError(f"{name('early_stopping')} must be True, False or \"never\", got {early_stopping!r}")


def check_search(model, idx, max_new_tokens, num_beams, length_penalty, early_stopping, eos_token_ids,
                 min_new_tokens) -> tuple[np.ndarray, np.ndarray]:
    """Every argument of beam_search checked, in one line each: the prompt (1, T) and the end tokens (E,) sorted."""
    cfg = model.config
    idx = check_token_ids(idx, cfg.vocab_size, "prompt token id")
    check_beam_args(num_beams, length_penalty, early_stopping)
    for what, value in (("max_new_tokens", max_new_tokens), ("min_new_tokens", min_new_tokens)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    B, T = idx.shape
    if B != 1:
        raise ValueError(f"beam search continues one prompt, got {B}; search each of them in turn")
    if T == 0:
        raise ValueError("the prompt is empty; give at least one token")
    if T + max_new_tokens > cfg.block_size:
        raise ValueError(f"beam search keeps the prompt and its continuation in the model's context (block_size "
                         f"{cfg.block_size}), but {T} + max_new_tokens {max_new_tokens} is "
                         f"{T + max_new_tokens}; lower max_new_tokens to at most {max(cfg.block_size - T, 0)}")
    eos = sorted({int(i) for i in eos_token_ids})
    if any(not 0 <= i < cfg.vocab_size for i in eos):
        raise ValueError(f"end token ids {eos} must be in [0, {cfg.vocab_size}), the vocabulary")
    if len(eos) == cfg.vocab_size:
        raise ValueError(f"all {cfg.vocab_size} tokens of the vocabulary are end tokens; leave some to write with")
    return idx, np.array(eos, dtype=np.int64)  # (1, T), (E,)


# --8<-- [start:beam_search]
def beam_search(model, idx, max_new_tokens, num_beams, length_penalty=1.0, early_stopping=False,
                eos_token_ids=frozenset(), min_new_tokens=0) -> np.ndarray:
    """idx (1, T) int64 prompt -> the new tokens (n,) int64 of the best finished hypothesis, its end token included
    if it ended on one (n <= max_new_tokens). The rules: this module's docstring."""
    idx, eos = check_search(model, idx, max_new_tokens, num_beams, length_penalty, early_stopping, eos_token_ids,
                            min_new_tokens)  # (1, T), (E,)
    T = idx.shape[1]
    V = model.config.vocab_size
    K = max(2, 1 + eos.size) * num_beams  # candidates kept a step: N of them go on whichever end
    check_memory(model, num_beams, T, max_new_tokens)
    if max_new_tokens == 0:
        return np.zeros(0, dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        kv_cache = model.new_kv_cache(1, T + max_new_tokens)
        logits, _ = model.forward(idx, kv_cache=kv_cache)  # (1, T, V) the prefill, once: every beam starts from it
        running = np.zeros(1)  # (n,) each running beam's sum of log-probabilities; the prompt alone at first
        tokens = np.zeros((1, 0), dtype=np.int64)  # (n, step) each running beam's new tokens
        finished: list[tuple[float, np.ndarray]] = []  # (score, tokens) of at most N hypotheses, best first
        for step in range(max_new_tokens):
            interrupt.check()
            logp = log_softmax(logits[:, -1, :])  # (n, V)
            if step < min_new_tokens:
                logp[:, eos] = -np.inf  # (no end before min_new_tokens)
            total = (running[:, None] + logp).ravel()  # (n V,) each beam continued by each token, beam-major
            top = np.argsort(-total, kind="stable")[:K]  # (K,) the best candidates, best first
            top = top[total[top] > -np.inf]  # (<= K,) fewer in a vocabulary of fewer than K tokens (docstring)
            beam, token = top // V, top % V  # (K,) x2 which beam each continues, with which token
            ended = np.isin(token, eos) | (step == max_new_tokens - 1)  # (K,)
            new = [(total[top[r]] / (step + 1) ** length_penalty, np.append(tokens[beam[r]], token[r]))
                   for r in range(min(num_beams, top.size)) if ended[r]]  # only the first N candidates may finish
            finished = sorted(finished + new, key=lambda h: -h[0])[:num_beams]  # (stable: the earlier first on ties)
            go_on = np.flatnonzero(~ended)[:num_beams]  # (N,) or (0,) at max_new_tokens
            if go_on.size == 0:
                break
            running = total[top[go_on]]  # (N,) best first
            tokens = np.concatenate([tokens[beam[go_on]], token[go_on, None]], axis=1)  # (N, step + 1)
            if len(finished) == num_beams:
                if early_stopping is True or num_beams == 1:  # (one beam is greedy decoding: it ends at its end)
                    break
                # the best the best running beam could still score: with its length now, or, with "never" and a
                # length penalty that favours length, with the longest it could reach
                n = max_new_tokens if early_stopping == "never" and length_penalty > 0 else step + 1
                if running[0] / n ** length_penalty <= finished[-1][0]:
                    break
            for layer_cache in kv_cache:
                layer_cache.reorder(beam[go_on])  # (N,) rows: each beam kept continues the one it came from
            logits, _ = model.forward(token[go_on, None], kv_cache=kv_cache)  # (N, 1, V) one new position each
        return finished[0][1]  # (n,)
    finally:
        model.train(was_training)
# --8<-- [end:beam_search]
