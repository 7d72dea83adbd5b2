"""DPO's and the policy gradient's backward through the whole model (minigpt/objectives.py): against central
differences in float64 on GPT-2, Llama and Qwen 3, and against PyTorch computing the loss as TRL's DPOTrainer does
(its concatenated forward's summed log-probabilities, its sigmoid loss) on transformers' models with the same
weights."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT
from minigpt.data.dataset import Batch
from minigpt.gradcheck import gradcheck
from minigpt.objectives import DPO, PolicyGradient
from minigpt.ops.cross_entropy import IGNORE_INDEX
import test_torch_llama
import test_torch_reference
from strategies import gpt_configs, llama_configs
from tolerances import GRAD_RTOL, TORCH_RTOL_FLOAT64, ZERO_GRADIENT_ATOL


def completion_rows(rng, N, T, V):
    """x, y (N, T): random tokens, each row's targets a prompt (ignored), then its completion, then padding."""
    x = rng.integers(0, V, size=(N, T))
    y = np.full((N, T), IGNORE_INDEX)
    for i in range(N):
        start = rng.integers(0, T)  # the prompt's last position
        end = rng.integers(start, T) + 1
        y[i, start:end] = rng.integers(0, V, size=end - start)
    return x, y


def perturbed(config, seed, scale=0.3):
    """A float64 model at a random point of parameter space, not only its initialisation."""
    model = GPT(config, seed=seed, dtype=np.float64)
    rng = np.random.default_rng([seed, 5])
    for p in model.params.values():
        p += rng.normal(0.0, scale, size=p.shape)
    return model


def preference_batch(rng, B, T, V):
    x, y = completion_rows(rng, 2 * B, T, V)
    return Batch(x, y, reference=-np.abs(rng.normal(0.0, 3.0, size=2 * B)))


def check_against_finite_differences(model, loss, grads):
    report = gradcheck(loss, model.params, grads, max_elements=40)
    assert report.max_rel_error < GRAD_RTOL, report


configs = st.one_of(gpt_configs(bias=None), llama_configs())


@given(configs, st.integers(1, 3), st.sampled_from([0.1, 1.0]), st.sampled_from([0.0, 0.7]), st.integers(0, 2**16))
@settings(max_examples=10, deadline=None)
def test_dpo_gradients_match_finite_differences(config, B, beta, alpha, seed):
    """DPO's loss, and with alpha > 0 RPO's, the chosen completions' cross-entropy added."""
    model = perturbed(config, seed)
    batch = preference_batch(np.random.default_rng(seed), B, config.block_size, config.vocab_size)
    objective = DPO(beta, alpha)
    objective.loss(model, batch)
    grads = objective.backward(model)
    check_against_finite_differences(model, lambda: objective.eval_loss(model, batch), grads)


@given(configs, st.integers(1, 5), st.integers(0, 2**16))
@settings(max_examples=10, deadline=None)
def test_policy_gradient_surrogate_gradients_match_finite_differences(config, N, seed):
    model = perturbed(config, seed)
    rng = np.random.default_rng(seed)
    x, y = completion_rows(rng, N, config.block_size, config.vocab_size)
    advantages = rng.normal(size=N)
    objective = PolicyGradient(2, 1.0, "leave-one-out", 0, stops={0}, pad=0)
    objective.surrogate(model, x, y, advantages)
    grads = objective.backward(model)
    check_against_finite_differences(model, lambda: objective.surrogate(model, x, y, advantages), grads)


def trl_dpo_loss(torch, hf, batch, beta, alpha):
    """TRL's DPOTrainer: the concatenated forward's per-token log-probabilities of the labels, masked and summed
    per row; then the sigmoid loss, -logsigmoid(beta (logratios - ref_logratios)), averaged; with rpo_alpha, plus
    alpha x nll_loss, the cross-entropy of the chosen rows' logits against their labels (a mean over the tokens)."""
    F = torch.nn.functional
    logits = hf(torch.from_numpy(batch.x)).logits
    labels = torch.from_numpy(batch.y)
    mask = labels != IGNORE_INDEX
    per_token = torch.gather(F.log_softmax(logits, dim=-1), 2, labels.clamp(min=0)[..., None])[..., 0]
    logps = (per_token * mask).sum(-1)
    B = len(batch.reference) // 2
    ref = torch.from_numpy(batch.reference)
    margins = (logps[:B] - logps[B:]) - (ref[:B] - ref[B:])
    nll = F.cross_entropy(logits[:B].flatten(0, 1), labels[:B].flatten(), ignore_index=IGNORE_INDEX)
    return -F.logsigmoid(beta * margins).mean() + alpha * nll


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@given(data=st.data(), seed=st.integers(0, 2**16))
@settings(max_examples=8, deadline=None)
def test_dpo_matches_trl_s_loss_on_transformers_models(torch, transformers, family, data, seed):
    if family == "gpt2":
        config = data.draw(test_torch_reference.configs(3))
        ours = perturbed(config, seed, scale=0.1)
        hf = test_torch_reference.hf_model(transformers, torch, config, np.float64)
        hf.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.params.items()}, strict=False)
        context = contextlib.nullcontext()  # (GPT-2 computes in the input's precision as it is)
    else:
        config = data.draw(test_torch_llama.configs())
        ours, hf = test_torch_llama.paired(torch, transformers, config, np.float64, seed, 0.1)
        context = test_torch_llama.float64_exact(torch, hf, ours, np.float64)
    beta, alpha = data.draw(st.sampled_from([0.1, 0.5])), data.draw(st.sampled_from([0.0, 1.0]))
    batch = preference_batch(np.random.default_rng(seed), data.draw(st.integers(1, 3)), config.block_size,
                             config.vocab_size)
    objective = DPO(beta, alpha)
    loss, _ = objective.loss(ours, batch)
    grads = objective.backward(ours)
    with context:
        hf.zero_grad()
        theirs = trl_dpo_loss(torch, hf, batch, beta, alpha)
        theirs.backward()
    hf_grads = {name: p.grad.numpy() for name, p in hf.named_parameters()}
    assert loss == pytest.approx(theirs.item(), rel=TORCH_RTOL_FLOAT64)
    largest = max(np.abs(g).max() for g in hf_grads.values())
    for name, g in grads.items():
        error = np.abs(g - hf_grads[name]).max()
        assert (error < TORCH_RTOL_FLOAT64 * np.abs(hf_grads[name]).max()
                or error < ZERO_GRADIENT_ATOL["float64"] * largest), name



def test_backward_takes_the_logits_gradient_only_of_a_forward_without_targets():
    from minigpt import GPTConfig

    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), dtype=np.float64)
    idx = np.array([[1, 2, 3]])
    logits, _ = model.forward(idx, idx)
    with pytest.raises(ValueError, match="call forward\\(idx\\) without targets first"):
        model.backward(np.zeros_like(logits))
    model.forward(idx)
    with pytest.raises(ValueError, match="needs a loss"):
        model.backward()
    # and a logits gradient equal to cross-entropy's gives cross-entropy's gradients
    from minigpt.ops import cross_entropy
    logits, _ = model.forward(idx, idx)
    expected = model.backward()
    _, ce_cache = cross_entropy.forward(logits, idx)
    model.forward(idx)
    got = model.backward(cross_entropy.backward(1.0, ce_cache))
    for name, g in expected.items():
        np.testing.assert_array_equal(got[name], g, err_msg=name)
