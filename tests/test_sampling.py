"""Sampling's bounds: every positive temperature, down to the smallest subnormal, gives a probability distribution,
and one near 0 gives greedy decoding (docs/sampling.md); `minigpt sample` checks everything before it prints
anything, so that a refused prompt leaves nothing on stdout."""

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minigpt import GPT, GPTConfig
from minigpt.generate import filter_logits, stream
from helpers import TINY, error_line, make_text, minigpt, train
from tolerances import FLOAT64_RTOL

SMALLEST = 5e-324  # the smallest positive float64, a subnormal

logits_of_a_model = arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 40)),
                           elements=st.floats(-1e4, 1e4, width=32))
temperatures = st.one_of(st.floats(SMALLEST, 1e-300), st.floats(1e-300, 1e300), st.sampled_from([SMALLEST, 1e-320]))


@given(logits_of_a_model, temperatures, st.one_of(st.none(), st.integers(1, 40)),
       st.one_of(st.none(), st.floats(0.01, 1.0)))
# (a temperature so high that exp rounds the three to one probability: top-p must still keep the largest logit)
@example(np.array([[0, 0, 1]], np.float32), 6.4e15, None, 0.5)
# (one so high that the division rounds the two to the same z: top-p must still keep the larger logit)
@example(np.array([[0, 2.5657333e-28]], np.float32), 1.0386203867514307e+296, None, 0.5)
def test_every_positive_temperature_gives_a_distribution_that_favours_the_argmax(logits, temperature, top_k, top_p):
    probs = filter_logits(logits, temperature, top_k, top_p)
    assert np.isfinite(probs).all() and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=FLOAT64_RTOL)
    rows = np.arange(len(logits))
    assert (probs[rows, logits.argmax(axis=-1)] == probs.max(axis=-1)).all()  # the likeliest token is never passed over


@given(logits_of_a_model, st.one_of(st.floats(SMALLEST, 1e-300), st.sampled_from([SMALLEST, 1e-320])))
def test_a_temperature_near_zero_puts_all_the_probability_on_the_argmax(logits, temperature):
    top = logits.max(axis=-1, keepdims=True)  # (B, 1)
    ties = logits == top  # (B, V) the tokens of the largest logit
    probs = filter_logits(logits, temperature)
    np.testing.assert_array_equal(probs, ties / ties.sum(axis=-1, keepdims=True))  # greedy (ties: shared evenly)


@given(st.floats(1e-3, 1e3), logits_of_a_model)
def test_the_temperature_scales_the_log_probabilities(temperature, logits):
    # the reference: softmax(z / T) in float64 where it cannot overflow
    z = logits.astype(np.float64) / temperature
    assume(np.ptp(z, axis=-1).max() < 600)  # (no probability below float64's range, where the reference rounds to 0)
    expected = np.exp(z - z.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(filter_logits(logits, temperature), expected, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("temperature", [SMALLEST, 1e-320, 1e-308, 1e-100])
def test_sampling_at_a_tiny_temperature_is_greedy_decoding(temperature):
    model = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8), seed=3, dtype=np.float64)
    rng = np.random.default_rng(3)
    for p in model.params.values():  # weights far from the initialisation: logits far from uniform
        p += rng.normal(0.0, 0.5, size=p.shape)
    idx = np.array([[3, 1, 4], [1, 5, 9]])
    sampled = model.generate(idx, 12, temperature=temperature, seed=0)
    np.testing.assert_array_equal(sampled, model.generate(idx, 12, do_sample=False))


def test_stream_checks_its_arguments_at_the_call_before_any_token():
    model = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="the prompt has 9 tokens but the model's context"):
        stream(model, np.zeros((1, 9), np.int64), 3)  # called, not iterated


# --- the command ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sample")
    text = make_text(tmp / "text.txt", seed=0)
    train("--data", str(text), "--out-dir", str(tmp / "run"), *TINY, "--max-iters", "2", "--backend", "numpy")
    return tmp / "run"


def test_the_command_at_a_subnormal_temperature_prints_the_greedy_sample(run):
    args = ["sample", "--out-dir", str(run), "--prompt", "the ", "--max-new-tokens", "12", "--backend", "numpy"]
    greedy = minigpt(*args, "--greedy")
    tiny = minigpt(*args, "--temperature", "1e-320")
    assert tiny.returncode == greedy.returncode == 0, tiny.stderr
    assert tiny.stdout == greedy.stdout and len(tiny.stdout) > len("the ")


@pytest.mark.parametrize("samples", ["1", "3"])
def test_a_prompt_longer_than_the_context_is_refused_before_anything_is_printed(run, samples):
    done = minigpt("sample", "--out-dir", str(run), "--prompt", "the king " * 4, "--max-new-tokens", "2",
                   "--num-samples", samples)
    assert done.returncode == 1
    error_line(done.stderr, "the prompt has 36 tokens but the model's context (block_size) is 16")
    assert done.stdout == ""
