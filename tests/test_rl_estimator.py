"""The policy gradient's estimate against the exact gradient of the expected reward, on a model small enough that
every completion it can sample is enumerated: the prompt [1, 0], the answer [0, STOP], so that a completion is [STOP],
or two tokens of which the first is not STOP (7 in all), and the expected reward R = sum_o pi(o) r(o) is a finite sum
whose gradient central differences give to 1e-9.

    exactly:      the estimate's expectation over every group of G completions, each group weighted by its
                  probability, equals grad R (leave-one-out advantages), and differs from it when the baseline
                  includes the completion itself (the check can fail);
    statistically: the objective as a run uses it, sampling included, averaged over many seeds, is within
                  SIGMAS standard errors of grad R in every entry (docs/preference.md)."""

import itertools

import numpy as np
import pytest

from minigpt import GPT, GPTConfig
from minigpt.data.dataset import Batch
from minigpt.objectives import PolicyGradient, sample_completions
from minigpt.ops import policy_gradient
from minigpt.ops.cross_entropy import IGNORE_INDEX
from tolerances import FLOAT64_ROUNDED_RTOL

V, STOP = 3, 2
PROMPT, ANSWER = [1, 0], [0, STOP]
G = 3  # completions per group
SEEDS = 600  # samples of the estimate in the statistical test
SIGMAS = 5  # its tolerance, in standard errors of the mean, entry by entry
FD_EPS = 1e-6


def model_and_batch(seed=0):
    model = GPT(GPTConfig(vocab_size=V, block_size=4, n_layer=1, n_head=1, n_embd=4, dropout=0.0), seed=seed,
                dtype=np.float64)
    rng = np.random.default_rng([seed, 7])
    for p in model.params.values():
        p += rng.normal(0.0, 0.5, size=p.shape)
    row = PROMPT + ANSWER
    x = np.array([row[:-1]])  # (1, 3) the record's row, as Instructions.batch makes it
    y = np.array([[IGNORE_INDEX] * (len(PROMPT) - 1) + ANSWER])  # (1, 3)
    return model, Batch(x, y)


def completions() -> list:
    """Every completion the sampler can return: cut after its first STOP, at most len(ANSWER) tokens."""
    out = [(STOP,)]
    out += [(a, b) for a in range(V) if a != STOP for b in range(V)]
    return out


def rows(completions_: list):
    """x, y (N, T) of the prompt with each completion, as sample_completions lays them out."""
    T = len(PROMPT) + max(map(len, completions_)) - 1
    x = np.zeros((len(completions_), T), dtype=np.int64)
    y = np.full((len(completions_), T), IGNORE_INDEX)
    for i, c in enumerate(completions_):
        seq = PROMPT + list(c)
        x[i, :len(seq) - 1] = seq[:-1]
        y[i, len(PROMPT) - 1:len(seq) - 1] = c
    return x, y


def probabilities(model) -> np.ndarray:
    x, y = rows(completions())
    model.eval()
    logp, _ = model.completion_logprobs(x, y, keep_cache=False)
    return np.exp(logp)  # (7,)


def reward(c) -> float:
    return float(list(c) == ANSWER)


def expected_reward(model) -> float:
    return float(probabilities(model) @ np.array([reward(c) for c in completions()]))


def exact_gradient(model) -> dict:
    """grad R by central differences (R is a sum of 7 products of softmaxes: smooth, and exact to ~1e-10)."""
    grads = {}
    for name, p in model.params.items():
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + FD_EPS
            up = expected_reward(model)
            p[i] = old - FD_EPS
            down = expected_reward(model)
            p[i] = old
            g[i] = (up - down) / (2 * FD_EPS)
        grads[name] = g
    return grads


def expected_estimate(model, advantage) -> dict:
    """The estimate's expectation: over every group of G completions, its probability times -grad of the surrogate."""
    cs, p = completions(), probabilities(model)
    objective = PolicyGradient(G, 1.0, "leave-one-out", 0, {STOP}, 0)
    total = {name: np.zeros_like(q) for name, q in model.params.items()}
    for group in itertools.product(range(len(cs)), repeat=G):
        weight = np.prod(p[list(group)])
        x, y = rows([cs[i] for i in group])
        A = advantage(np.array([[reward(cs[i]) for i in group]])).reshape(-1)
        objective.surrogate(model, x, y, A)
        for name, g in objective.backward(model).items():
            total[name] -= weight * g
    return total


def include_self(rewards):
    """A baseline that includes the completion itself, r_i - mean(r): biased, by (G - 1) / G."""
    return rewards - rewards.mean(axis=1, keepdims=True)


def flat(grads: dict) -> np.ndarray:
    return np.concatenate([g.ravel() for g in grads.values()])


@pytest.fixture(scope="module")
def exact():
    model, _ = model_and_batch()
    return flat(exact_gradient(model))


def test_the_sampler_s_completions_are_all_enumerated():
    model, batch = model_and_batch()
    assert probabilities(model).sum() == pytest.approx(1.0, rel=1e-12)
    done = sample_completions(model, batch, 64, 1.0, {STOP}, 0, np.random.default_rng(0))
    seen = {tuple(int(t) for t in row[len(PROMPT) - 1:] if t != IGNORE_INDEX) for row in done.y}
    assert seen <= set(completions()) and len(seen) > 3


def test_the_estimate_s_expectation_is_exactly_the_gradient_of_the_expected_reward(exact):
    model, _ = model_and_batch()
    mean = flat(expected_estimate(model, lambda r: policy_gradient.advantages(r, "leave-one-out")))
    np.testing.assert_allclose(mean, exact, rtol=0, atol=FLOAT64_ROUNDED_RTOL * np.abs(exact).max())


def test_a_baseline_that_includes_the_completion_is_biased_and_caught(exact):
    model, _ = model_and_batch()
    mean = flat(expected_estimate(model, include_self))
    np.testing.assert_allclose(mean, (G - 1) / G * exact, rtol=0, atol=FLOAT64_ROUNDED_RTOL * np.abs(exact).max())
    assert np.abs(mean - exact).max() > 0.1 * np.abs(exact).max()


def test_sampled_estimates_average_to_the_gradient_within_their_standard_error(exact):
    """The objective as a run calls it (sampling, rewards, advantages, surrogate, backward), SEEDS times."""
    model, batch = model_and_batch()
    objective = PolicyGradient(G, 1.0, "leave-one-out", 0, {STOP}, 0)
    samples = []
    for s in range(SEEDS):
        objective.loss(model, batch, (s, 0))
        samples.append(-flat(objective.backward(model)))
    samples = np.array(samples)  # (SEEDS, params)
    mean, stderr = samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(SEEDS)
    # (plus the central differences' own error, where the true gradient is 0 and every sample's is exactly 0)
    assert np.all(np.abs(mean - exact) <= SIGMAS * stderr + FLOAT64_ROUNDED_RTOL * np.abs(exact).max())
    # and it would see the biased baseline's shortfall, exact / G, in some entry: the check can fail
    assert np.any(np.abs(exact) / G > 2 * SIGMAS * stderr)
