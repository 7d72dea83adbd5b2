"""What a training step minimises, chosen once per run (--method): the loss of a micro-batch, computed by a forward
that leaves the backward ready, and its gradients.

    sft   the language model's cross-entropy on its targets (a classifier's: its labels' loss), model.forward/backward
    dpo   direct preference optimisation on pairs of completions (minigpt/ops/dpo.py), against the reference's
          log-probabilities computed once (the starting model's, minigpt/data/record_datasets.py's Preferences)
    rl    the policy gradient on completions the model samples itself, each rewarded by a checker: exactly the
          record's completion, the end token included (minigpt/ops/policy_gradient.py)

    objective = for_run(cfg, dataset)                # once, in minigpt/run.py
    loss, measures = objective.loss(model, batch, key)  # the step's micro-batch (key: the step and micro-batch, which
    grads = objective.backward(model)                # seed the rl objective's sampling: a resume samples the same)
    objective.eval_loss(model, batch)                # an evaluation's loss (rl's: the language model's, on the records)

Each backward is the model's, from the gradient of the logits: d loss / d logp (minigpt/ops/dpo.py,
minigpt/ops/policy_gradient.py), then d logp / d logits (minigpt/ops/token_logprobs.py). Math: docs/preference.md.
Tests: tests/test_preference.py (finite differences through the whole model, PyTorch as referee),
tests/test_rl_estimator.py (the estimator's mean against the exact gradient).
"""

from typing import NamedTuple

import numpy as np

from minigpt.config import TrainConfig
from minigpt.data.dataset import Batch
from minigpt.ops import dpo, policy_gradient, token_logprobs
from minigpt.ops.cross_entropy import IGNORE_INDEX


class LanguageModel:
    """sft: the model's own loss, a language model's mean cross-entropy (or a classifier's, lm_weight its auxiliary
    language-modelling loss's weight)."""

    MEASURES = ()

    def __init__(self, lm_weight: float = 0.0):
        self.lm_weight = lm_weight

    def loss(self, model, batch: Batch, key=None) -> tuple[float, dict]:
        return self.eval_loss(model, batch, keep_cache=True), {}

    def weight(self, batch: Batch) -> int:
        """What the loss is the mean over (a micro-batch's weight in a step): the targets, a classifier's rows, or
        preference pairs (Batch.loss_count)."""
        return batch.loss_count

    def backward(self, model) -> dict:
        return model.backward()

    def eval_loss(self, model, batch: Batch, keep_cache: bool = False) -> float:
        return model.forward(batch.x, batch.y, keep_cache=keep_cache, last=batch.last, labels=batch.labels,
                             lm_weight=self.lm_weight)[1]


class DPO:
    """dpo: a batch holds B pairs, the chosen completions' rows then the rejected ones' (2B, T), with the
    reference's log-probabilities of each row (batch.reference (2B,)). With alpha > 0 (RPO), the loss adds alpha times
    the chosen completions' cross-entropy, the mean over their tokens (TRL's rpo_alpha and nll_loss)."""

    # TRL's rewards/margins and rewards/accuracies over the pairs, and its nll_loss, the chosen tokens' cross-entropy
    MEASURES = ("reward_margin", "reward_accuracy", "chosen_nll")

    def __init__(self, beta: float, alpha: float = 0.0):
        self.beta, self.alpha = beta, alpha
        self.cache = None

    def weight(self, batch: Batch) -> int:
        return batch.loss_count  # the pairs

    def forward(self, model, batch: Batch, keep_cache: bool):
        B = len(batch.reference) // 2
        logp, lp_cache = model.completion_logprobs(batch.x, batch.y, keep_cache)  # (2B,)
        ref = batch.reference  # (2B,)
        loss, dpo_cache = dpo.forward(logp[:B], logp[B:], ref[:B], ref[B:], self.beta)
        n_chosen = int(lp_cache.valid[:B].sum())  # the chosen completions' tokens
        nll = -logp[:B].sum() / n_chosen  # their mean cross-entropy
        margin = dpo.rewards(logp[:B], ref[:B], self.beta) - dpo.rewards(logp[B:], ref[B:], self.beta)  # (B,)
        return float(loss + self.alpha * nll), (lp_cache, dpo_cache, n_chosen), {
            "reward_margin": float(margin.mean()), "reward_accuracy": float((margin > 0).mean()),
            "chosen_nll": float(nll)}

    def loss(self, model, batch: Batch, key=None) -> tuple[float, dict]:
        loss, self.cache, measures = self.forward(model, batch, keep_cache=True)
        return loss, measures

    # --8<-- [start:dpo-backward]
    def backward(self, model) -> dict:
        (lp_cache, dpo_cache, n_chosen), self.cache = self.cache, None
        dchosen, drejected = dpo.backward(1.0, dpo_cache)  # (B,) each: d loss / d log pi(y_w | x), (y_l | x)
        dchosen = dchosen - self.alpha / n_chosen  # RPO: + alpha x the chosen tokens' mean -log p, each token's -1/n
        dseq = np.concatenate([dchosen, drejected])  # (2B,) one per row
        dlogp = np.broadcast_to(dseq[:, None], lp_cache.valid.shape)  # (2B, T): a sum's gradient, to each term
        dlogits = token_logprobs.backward(dlogp, lp_cache, kernels=model.kernels)  # (2B, T, V)
        return model.backward(dlogits)
    # --8<-- [end:dpo-backward]

    def eval_loss(self, model, batch: Batch) -> float:
        return self.forward(model, batch, keep_cache=False)[0]


class Completions(NamedTuple):
    """The completions sampled for a micro-batch's prompts, as rows to train on."""
    x: np.ndarray  # (N, T) prompt and completion, padded
    y: np.ndarray  # (N, T) the completion's tokens as targets, IGNORE_INDEX elsewhere
    rewards: np.ndarray  # (P, G) 1 where the completion is exactly the record's, else 0


def prompt_and_answer(x_row, y_row, stops: set) -> tuple[np.ndarray, np.ndarray]:
    """A record's row (minigpt/data/record_datasets.py's Instructions.batch) -> (its prompt's ids, the answer's ids):
    the answer is the last run of targets, up to and including its first stop token; the prompt all before it."""
    valid = np.flatnonzero(y_row != IGNORE_INDEX)
    end = valid[-1]
    start = end
    while start > 0 and y_row[start - 1] != IGNORE_INDEX:
        start -= 1
    answer = y_row[start:end + 1]
    for i, t in enumerate(answer):
        if int(t) in stops:
            answer = answer[:i + 1]
            break
    return x_row[:start + 1], answer


def sample_completions(model, batch: Batch, group: int, temperature: float, stops: set, pad: int,
                       rng: np.random.Generator) -> Completions:
    """For each of the batch's P prompts, `group` completions sampled from the model (at most as many tokens as its
    answer: a longer one cannot be it), each cut after its first stop token, and rewarded 1 if it is exactly the
    answer."""
    rows, rewards = [], []
    for x_row, y_row in zip(batch.x, batch.y):
        prompt, answer = prompt_and_answer(x_row, y_row, stops)
        # (the record, prompt and answer, fits the context, so any completion of at most len(answer) tokens does)
        out = model.generate(np.repeat(prompt[None], group, axis=0), len(answer), do_sample=True,
                             temperature=temperature, seed=rng.integers(2**63))[:, len(prompt):]  # (G, len(answer))
        for o in out:
            stop = next((i for i, t in enumerate(o) if int(t) in stops), len(o) - 1)
            completion = o[:stop + 1]
            rows.append((prompt, completion))
            rewards.append(float(len(completion) == len(answer) and np.array_equal(completion, answer)))
    T = max(len(p) + len(c) for p, c in rows) - 1
    x = np.full((len(rows), T), pad, dtype=np.int64)  # (N, T)
    y = np.full((len(rows), T), IGNORE_INDEX, dtype=np.int64)  # (N, T)
    for i, (p, c) in enumerate(rows):
        seq = np.concatenate([p, c])
        x[i, :len(seq) - 1] = seq[:-1]
        y[i, len(p) - 1:len(seq) - 1] = c
    return Completions(x, y, np.array(rewards).reshape(len(batch.x), group))


class PolicyGradient:
    """rl: for each prompt of the micro-batch, a group of completions sampled from the model, rewarded, given their
    advantages within the group (policy_gradient.advantages), and trained on by the policy gradient's surrogate."""

    MEASURES = ("reward",)  # the mean reward of the step's completions: the fraction exactly right

    def __init__(self, group: int, temperature: float, advantage: str, seed: int, stops: set, pad: int):
        self.group, self.temperature, self.advantage, self.seed = group, temperature, advantage, seed
        self.stops, self.pad = stops, pad
        self.cache = None

    def weight(self, batch: Batch) -> int:
        return len(batch.x)  # the prompts (each with its group of completions)

    def loss(self, model, batch: Batch, key) -> tuple[float, dict]:
        rng = np.random.default_rng([self.seed, 3, *key])  # (the step and micro-batch: a resume samples the same)
        done = sample_completions(model, batch, self.group, self.temperature, self.stops, self.pad, rng)
        A = policy_gradient.advantages(done.rewards, self.advantage).reshape(-1)  # (N,)
        return self.surrogate(model, done.x, done.y, A), {"reward": float(done.rewards.mean())}

    def surrogate(self, model, x, y, advantages) -> float:
        """The surrogate loss of completions (x, y (N, T), as sample_completions makes them) with their advantages
        (N,), its backward made ready."""
        logits, _ = model.forward(x)  # (N, T, V)
        logp, lp_cache = token_logprobs.forward(logits, y, kernels=model.kernels)  # (N, T)
        loss, pg_cache = policy_gradient.forward(logp, advantages, lp_cache.valid)
        self.cache = (lp_cache, pg_cache)
        return float(loss)

    # --8<-- [start:pg-backward]
    def backward(self, model) -> dict:
        (lp_cache, pg_cache), self.cache = self.cache, None
        dlogp = policy_gradient.backward(1.0, pg_cache)  # (N, T)
        dlogits = token_logprobs.backward(dlogp, lp_cache, kernels=model.kernels)  # (N, T, V)
        return model.backward(dlogits)
    # --8<-- [end:pg-backward]

    def eval_loss(self, model, batch: Batch) -> float:
        """The language model's loss on the records' completions (what the policy has moved from)."""
        return model.forward(batch.x, batch.y, keep_cache=False)[1]


def for_run(cfg: TrainConfig, dataset) -> LanguageModel | DPO | PolicyGradient:
    """The objective of a run's --method, on its data (rl reads the records' stop and pad tokens)."""
    if cfg.method == "dpo":
        return DPO(cfg.dpo_beta, cfg.rpo_alpha)
    if cfg.method == "rl":
        return PolicyGradient(cfg.rl_group, cfg.rl_temperature, cfg.rl_advantage, cfg.seed, dataset.stops,
                              dataset.pad_token)
    return LanguageModel(cfg.lm_loss_weight)
