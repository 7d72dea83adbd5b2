"""Muon (minigpt/muon.py) against torch.optim.Muon in float64, in both weight layouts; the Newton-Schulz iteration's
map of the singular values; the split between Muon and AdamW; its state; `minigpt train --optimizer muon`."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig
from minigpt.muon import NS_COEFFICIENTS, NS_STEPS, Muon, MuonAdamW, newton_schulz
from minigpt.optim import AdamW
from helpers import TINY, cli, error_line, make_text, read_log, train
from tolerances import FLOAT64_RTOL, MUON_BFLOAT16_ATOL, MUON_RTOL_FLOAT64


@contextlib.contextmanager
def float64_iterations(torch):
    """Inside it, torch.optim.Muon runs its Newton-Schulz iterations in the gradient's dtype: as shipped, it casts
    the update to bfloat16 first (grad.bfloat16(), as Keller Jordan's does on GPUs), which minigpt does not; the rest
    of torch's code runs as shipped."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, "bfloat16", lambda self, *args, **kwargs: self.clone())
        yield


def assert_close(mine, reference, rtol):
    """Equal within rtol of the reference's largest entry."""
    np.testing.assert_allclose(mine, reference, rtol=0, atol=rtol * np.abs(reference).max())


@given(seed=st.integers(0, 2**16), out_features=st.integers(1, 24), in_features=st.integers(1, 24),
       in_out=st.booleans(), lr=st.floats(1e-3, 0.1), momentum=st.sampled_from([0.0, 0.5, 0.9, 0.95]),
       weight_decay=st.sampled_from([0.0, 0.1, 1.0]))
@settings(max_examples=40, deadline=None)
def test_muon_matches_torch_in_float64(torch, seed, out_features, in_features, in_out, lr, momentum,
                                       weight_decay):
    """Several steps on a random (out, in) matrix, stored (out, in) as Llama's or (in, out) as GPT-2's: the same
    update as torch's on its nn.Linear layout, (out, in)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(out_features, in_features))  # (out, in), as torch lays it out
    stored = w.T.copy() if in_out else w.copy()
    opt = Muon({"w": stored}, {"w": in_out}, momentum, weight_decay)
    t_w = torch.tensor(w, requires_grad=True)
    t_opt = torch.optim.Muon([t_w], lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=True,
                             ns_coefficients=NS_COEFFICIENTS, eps=1e-7, ns_steps=NS_STEPS)
    with float64_iterations(torch):
        for step in range(4):
            g = rng.normal(size=w.shape)  # (out, in)
            step_lr = lr * (step + 1) / 4  # a changing rate, as under the schedule
            opt.step({"w": g.T.copy() if in_out else g}, step_lr)
            t_opt.param_groups[0]["lr"] = step_lr
            t_w.grad = torch.from_numpy(g.copy())
            t_opt.step()
    t_buf = t_opt.state[t_w]["momentum_buffer"].numpy()
    assert_close(stored.T if in_out else stored, t_w.detach().numpy(), MUON_RTOL_FLOAT64)
    assert_close(opt.buf["w"].T if in_out else opt.buf["w"], t_buf, MUON_RTOL_FLOAT64)


@given(seed=st.integers(0, 2**16), rows=st.integers(1, 32), cols=st.integers(1, 32))
@settings(max_examples=30, deadline=None)
def test_newton_schulz_is_torchs_up_to_torchs_bfloat16(torch, seed, rows, cols):
    """torch.optim.Muon as shipped iterates in bfloat16: the same map as minigpt's, to bfloat16's precision."""
    from torch.optim._muon import _zeropower_via_newtonschulz
    g = np.random.default_rng(seed).normal(size=(rows, cols))
    theirs = _zeropower_via_newtonschulz(torch.from_numpy(g), NS_COEFFICIENTS, NS_STEPS, 1e-7).double().numpy()
    assert_close(newton_schulz(g), theirs, MUON_BFLOAT16_ATOL)


@given(seed=st.integers(0, 2**16), rows=st.integers(1, 16), cols=st.integers(1, 16))
@settings(max_examples=30, deadline=None)
def test_newton_schulz_maps_each_singular_value_by_the_quintic(seed, rows, cols):
    """NS(U S V^T) = U p(S) V^T: the iteration changes the singular values alone, each s / ||G||_F by the quintic
    p(s) = a s + b s^3 + c s^5, five times (docs/muon.md), computed here on the singular values from an SVD."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(rows, cols))
    u, s, vt = np.linalg.svd(g, full_matrices=False)  # (rows, k), (k,), (k, cols)
    a, b, c = NS_COEFFICIENTS
    x = s / np.sqrt(np.sum(s * s))  # the Frobenius norm
    for _ in range(NS_STEPS):
        x = a * x + b * x**3 + c * x**5
    assert_close(newton_schulz(g), (u * x) @ vt, FLOAT64_RTOL)
    assert_close(newton_schulz(g.T), newton_schulz(g).T, FLOAT64_RTOL)  # the same map in either layout


def test_newton_schulz_pushes_singular_values_towards_one_and_leaves_zero_zero():
    g = np.random.default_rng(0).normal(size=(32, 64)) * 1e3  # any scale: it is divided out
    s = np.linalg.svd(newton_schulz(g), compute_uv=False)
    assert 0.6 < s.min() and s.max() < 1.2  # (the gradient's own: 1e3 times a spread of about 4)
    np.testing.assert_array_equal(newton_schulz(np.zeros((3, 5))), 0.0)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen3"])
def test_muon_takes_the_blocks_matrices_and_adamw_the_rest(arch):
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, arch=arch), dtype=np.float64)
    matrices = model.matrices()
    linears = ("c_attn", "c_proj", "c_fc") if arch == "gpt2" else ("_proj",)
    assert set(matrices) == {name for name, p in model.params.items()
                             if p.ndim == 2 and any(f"{linear}.weight" in name for linear in linears)}
    assert set(matrices.values()) == {arch == "gpt2"}  # GPT-2's are (in, out)
    rest = {name: p.copy() for name, p in model.params.items() if name not in matrices}
    rng = np.random.default_rng(0)
    grads = {name: rng.normal(size=p.shape) for name, p in model.params.items()}
    MuonAdamW(model.params, matrices, learning_rate=1e-3, muon_lr=0.02).step(grads, 5e-4)
    AdamW(rest).step(grads, 5e-4)  # the rest: exactly AdamW's step, at the scheduled rate
    for name, p in rest.items():
        np.testing.assert_array_equal(model.params[name], p)


def test_muon_adamw_state_round_trip_continues_identically():
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, arch="llama")
    a, b = GPT(config, seed=0, dtype=np.float64), GPT(config, seed=1, dtype=np.float64)
    opt_a = MuonAdamW(a.params, a.matrices(), learning_rate=1e-3, muon_lr=0.02)
    rng = np.random.default_rng(0)
    grads = lambda: {name: rng.normal(size=p.shape) for name, p in a.params.items()}  # noqa: E731
    opt_a.step(grads(), 1e-3)
    for name, p in a.params.items():
        b.params[name][:] = p
    opt_b = MuonAdamW(b.params, b.matrices(), learning_rate=1e-3, muon_lr=0.02)
    opt_b.load_state_dict(opt_a.state_dict(), t=opt_a.t)
    g = grads()
    opt_a.step(g, 1e-3)
    opt_b.step({name: x.copy() for name, x in g.items()}, 1e-3)
    for name, p in a.params.items():
        np.testing.assert_array_equal(b.params[name], p)
    adamw_only = {key: x for key, x in opt_a.state_dict().items() if not key.startswith("momentum_buffer.")}
    with pytest.raises(ValueError, match="optimizer state 'momentum_buffer.model.layers.0.self_attn.q_proj.weight' "
                                         "is missing"):
        opt_b.load_state_dict(adamw_only, t=1)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_a_run_with_muon_trains(tmp_path, arch):
    text = make_text(tmp_path / "text.txt", seed=0)
    for optimizer in ("muon", "adamw"):
        train("--data", str(text), "--out-dir", str(tmp_path / optimizer), "--optimizer", optimizer, "--arch", arch,
              "--max-iters", "30", *TINY)
    log = read_log(tmp_path / "muon")
    evaluated = [r["val_loss"] for r in log if "val_loss" in r]
    assert evaluated == sorted(evaluated, reverse=True)  # lower at every evaluation
    assert evaluated[-1] < log[0]["loss"] - 0.1  # (measured: 0.2 below the first step's loss, ln V = 4.1)
    # the blocks' matrices took Muon's steps, not AdamW's: from the second step on, the losses differ
    assert [r["loss"] for r in log][1:] != [r["loss"] for r in read_log(tmp_path / "adamw")][1:]


@pytest.mark.parametrize("args, fragments", [
    (["--muon-momentum", "1"], ["--muon-momentum must be a number in [0, 1), got 1.0"]),
    (["--muon-lr", "0"], ["--muon-lr must be a positive number, got 0.0"]),
    (["--muon-weight-decay", "-1"], ["--muon-weight-decay must be a number, zero or positive, got -1.0"]),
    (["--optimizer", "muon", "--lora-rank", "2"], ["--optimizer muon", "LoRA", "drop"]),
])
def test_a_bad_muon_setting_is_refused_in_one_line(tmp_path, capsys, args, fragments):
    text = make_text(tmp_path / "text.txt", seed=0)
    code, err = cli(capsys, "train", "--data", str(text), "--out-dir", str(tmp_path / "run"), *TINY, *args)
    assert code != 0
    error_line(err, *fragments)


def test_a_bad_optimizer_in_a_config_file_is_refused_in_one_line(tmp_path, capsys):
    text = make_text(tmp_path / "text.txt", seed=0)
    (tmp_path / "run.toml").write_text('optimizer = "sgd"\n')
    code, err = cli(capsys, "train", "--config", str(tmp_path / "run.toml"), "--data", str(text), *TINY)
    assert code != 0
    error_line(err, "optimizer", "must be one of adamw, muon, got 'sgd'")


def test_resume_refuses_another_optimizer(tmp_path, capsys):
    text = make_text(tmp_path / "text.txt", seed=0)
    out = tmp_path / "run"
    train("--data", str(text), "--out-dir", str(out), "--optimizer", "muon", "--max-iters", "10", *TINY)
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(out), "--optimizer", "adamw", "--max-iters", "12")
    assert code != 0
    error_line(err, "cannot change optimizer when resuming ('muon' in", "'adamw' now)")
