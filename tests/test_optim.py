import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig
from minigpt.optim import AdamW, clip_grad_norm, decays, get_lr
from tolerances import ADAMW_FIRST_STEP_RTOL, FLOAT64_RTOL


def test_decay_split_is_nanogpts():
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=2, n_head=1, n_embd=4))
    decayed = {name for name, p in model.params.items() if decays(name, p)}
    assert decayed == {name for name in model.params if name.endswith("weight") and ".ln_" not in name}
    assert "transformer.wte.weight" in decayed and "transformer.wpe.weight" in decayed
    assert not any(decays(n, p) for n, p in model.params.items() if n.endswith(".bias") or ".ln_" in n)


@given(st.integers(0, 2**16), st.floats(1e-4, 1e-1), st.floats(0.0, 0.3), st.sampled_from([(0.9, 0.99), (0.8, 0.95)]))
@settings(max_examples=20)
def test_adamw_matches_torch(torch, seed, lr, weight_decay, betas):
    rng = np.random.default_rng(seed)
    params = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
    t_params = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    groups = [{"params": [t_params["w"]], "weight_decay": weight_decay}, {"params": [t_params["b"]], "weight_decay": 0.0}]
    t_opt = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8)
    opt = AdamW(params, weight_decay=weight_decay, beta1=betas[0], beta2=betas[1])
    for step in range(5):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        step_lr = lr * (step + 1) / 5  # a changing learning rate, as under the schedule
        opt.step(grads, step_lr)
        for g in t_opt.param_groups:
            g["lr"] = step_lr
        for k, p in t_params.items():
            p.grad = torch.from_numpy(grads[k])
        t_opt.step()
    for k in params:
        np.testing.assert_allclose(params[k], t_params[k].detach().numpy(), rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL)


def test_adamw_first_step_moves_each_parameter_by_about_lr():
    # with bias correction, the first update is lr * g / (|g| + eps): a step of size lr in every coordinate
    p = {"b": np.array([1.0, -2.0, 3.0])}
    AdamW(p, weight_decay=0.0).step({"b": np.array([0.5, -7.0, 1e-3])}, lr=0.01)
    np.testing.assert_allclose(p["b"], [0.99, -1.99, 2.99], rtol=ADAMW_FIRST_STEP_RTOL)


def test_adamw_state_round_trip_continues_identically():
    rng = np.random.default_rng(0)
    a = {"w": rng.normal(size=(2, 3))}
    b = {"w": a["w"].copy()}
    opt_a = AdamW(a)
    opt_a.step({"w": rng.normal(size=(2, 3))}, 0.1)
    b["w"][:] = a["w"]
    opt_b = AdamW(b)
    opt_b.load_state_dict(opt_a.state_dict(), t=opt_a.t)
    g = rng.normal(size=(2, 3))
    opt_a.step({"w": g}, 0.1)
    opt_b.step({"w": g.copy()}, 0.1)
    np.testing.assert_array_equal(a["w"], b["w"])


def test_adamw_state_with_a_wrong_shape_is_rejected():
    opt = AdamW({"w": np.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"optimizer state 'exp_avg.w' has shape \(3, 2\)"):
        opt.load_state_dict({"exp_avg.w": np.zeros((3, 2)), "exp_avg_sq.w": np.zeros((2, 3))}, t=1)


def test_learning_rate_schedule():
    lr = lambda it: get_lr(it, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, decay_iters=2000)  # noqa: E731
    assert lr(0) == pytest.approx(1e-3 / 101)  # nanoGPT's warmup starts at lr * 1 / (warmup + 1)
    assert lr(49) == pytest.approx(1e-3 * 50 / 101)
    assert lr(100) == pytest.approx(1e-3)  # the peak, where the cosine starts
    assert lr(1050) == pytest.approx((1e-3 + 1e-4) / 2)  # half way down the cosine
    assert lr(2000) == pytest.approx(1e-4)
    assert lr(5000) == 1e-4
    values = [lr(i) for i in range(100, 2001)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # never increases after the warmup


@given(st.integers(0, 2**16), st.floats(0.01, 10.0))
def test_clip_grad_norm_matches_torch(torch, seed, max_norm):
    rng = np.random.default_rng(seed)
    grads = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=5) * 3}
    tensors = [torch.zeros(3, 4, dtype=torch.float64, requires_grad=True), torch.zeros(5, dtype=torch.float64, requires_grad=True)]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.from_numpy(g.copy())
    t_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    norm = clip_grad_norm(grads, max_norm)
    assert norm == pytest.approx(t_norm.item(), rel=FLOAT64_RTOL)
    for t, g in zip(tensors, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=FLOAT64_RTOL)
    clipped = math.sqrt(sum(float((g**2).sum()) for g in grads.values()))
    assert clipped <= max_norm * (1 + 1e-9)


def test_clip_zero_disables_clipping():
    grads = {"a": np.full(4, 10.0)}
    assert clip_grad_norm(grads, 0.0) == pytest.approx(20.0)
    np.testing.assert_array_equal(grads["a"], 10.0)
