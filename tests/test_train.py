"""Training: the log and checkpoint contract, exact resume (also after Ctrl-C), exact gradient
accumulation, the synthetic tasks, fine-tuning."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file

from minigpt import GPT, GPTConfig
from minigpt.cli import main
from minigpt.data.dataset import Batch
from minigpt.ops.cross_entropy import IGNORE_INDEX
from minigpt.train import accumulate_gradients
from helpers import TINY, make_text, read_log, train, without_timing
from tolerances import ACCUMULATION_ATOL, ACCUMULATION_RTOL, BACKEND_RTOL_FLOAT64, FLOAT64_RTOL, TRAINING_LOSS_ATOL


@pytest.fixture
def text(tmp_path):
    return make_text(tmp_path / "text.txt", seed=0)


def test_a_run_writes_the_log_and_checkpoints_of_the_contract(text, tmp_path):
    out = tmp_path / "run"
    train("--data", str(text), "--out-dir", str(out), "--max-iters", "25", *TINY)
    log = read_log(out)
    assert [r["iter"] for r in log] == list(range(1, 26))
    assert all({"iter", "loss", "lr"} <= set(r) for r in log)
    evaluated = [r["iter"] for r in log if "val_loss" in r]
    assert evaluated == [10, 20, 25]  # every eval_interval, and always the last step
    pointer = json.loads((out / "checkpoints.json").read_text())
    assert pointer["latest"] == "ckpt-000025"
    best = min((r for r in log if "val_loss" in r), key=lambda r: r["val_loss"])
    assert pointer["best"] == f"ckpt-{best['iter']:06d}"
    assert sorted(p.name for p in out.glob("ckpt-*")) == sorted(set(pointer.values()))  # older ones removed
    ckpt = out / "ckpt-000025"
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "manifest.json", "model.safetensors",
                                                       "optimizer.safetensors", "state.json", "tokenizer.json",
                                                       "train_config.json"]
    weights = load_file(str(ckpt / "model.safetensors"))
    cfg = GPTConfig(vocab_size=json.loads((ckpt / "config.json").read_text())["vocab_size"], block_size=16,
                    n_layer=1, n_head=2, n_embd=16)
    assert set(weights) == set(GPT(cfg).params)  # Hugging Face GPT-2 names
    assert json.loads((ckpt / "state.json").read_text())["iter"] == 25


@pytest.mark.parametrize("optimizer", [[], ["--optimizer", "muon"], ["--optimizer", "muon", "--arch", "llama"]])
def test_resume_continues_exactly(text, tmp_path, optimizer):
    # (Muon's momentum buffers are saved as AdamW's moments are, in each weight's own layout)
    common = ["--data", str(text), "--lr-decay-iters", "40", *TINY, *optimizer]
    train(*common, "--out-dir", str(tmp_path / "straight"), "--max-iters", "40")
    train(*common, "--out-dir", str(tmp_path / "resumed"), "--max-iters", "15")
    train("--resume", "--out-dir", str(tmp_path / "resumed"), "--max-iters", "40")
    straight, resumed = read_log(tmp_path / "straight"), read_log(tmp_path / "resumed")
    assert [r["iter"] for r in resumed] == list(range(1, 41))
    # identical losses, learning rates and gradient norms at every step; the first run's extra evaluation
    # at iter 15 (its last step) is the only difference in the logs
    for a, b in zip(without_timing(straight), without_timing(resumed)):
        if b["iter"] == 15:
            b = {k: v for k, v in b.items() if k not in ("train_loss", "val_loss")}
        assert a == b


SIGNALLED = ["--max-iters", "300", "--eval-interval", "100", "--n-layer", "2", "--n-head", "2", "--n-embd", "32",
             "--block-size", "32", "--batch-size", "8", "--eval-iters", "2"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A text, and the run the signalled ones are stopped in, on it, uninterrupted (once for the three signals)."""
    directory = tmp_path_factory.mktemp("signalled")
    text = make_text(directory / "text.txt", seed=0)
    train("--data", str(text), *SIGNALLED, "--out-dir", str(directory / "straight"))
    return text, directory / "straight"


@pytest.mark.parametrize("stop, status, said", [(signal.SIGINT, 130, "interrupted at iter"),
                                               (signal.SIGTERM, 143, "interrupted by SIGTERM at iter"),
                                               (signal.SIGHUP, 129, "interrupted by SIGHUP at iter")])
def test_ctrl_c_saves_a_checkpoint_and_resume_gives_the_uninterrupted_losses(uninterrupted, tmp_path, stop, status,
                                                                             said):
    # and so do SIGTERM (kill, docker stop, a scheduler's preemption) and SIGHUP (a closed terminal), each with its
    # conventional exit status
    text, straight = uninterrupted
    args = ["--data", str(text), *SIGNALLED]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "minigpt.cli", "train", *args, "--out-dir", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = out / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and len(log.read_text().splitlines()) >= 30):
        time.sleep(0.01)
    proc.send_signal(stop)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr
    assert len(stderr.strip().splitlines()) == 1 and said in stderr and "Traceback" not in stderr
    stopped = read_log(out)[-1]["iter"]
    assert 30 <= stopped < 300  # it stopped early, with a checkpoint of that step
    assert json.loads((out / "checkpoints.json").read_text())["latest"] == f"ckpt-{stopped:06d}"

    train("--resume", "--out-dir", str(out))
    assert without_timing(read_log(out)) == without_timing(read_log(straight))


@given(st.integers(0, 2**16), st.integers(1, 4), st.integers(1, 3), st.integers(1, 5))
@settings(max_examples=25)
def test_gradient_accumulation_equals_one_big_batch(seed, k, b, T):
    rng = np.random.default_rng(seed)
    model = GPT(GPTConfig(vocab_size=7, block_size=5, n_layer=1, n_head=2, n_embd=4), seed=seed, dtype=np.float64)
    for p in model.params.values():
        p += rng.normal(0, 0.3, size=p.shape)
    x = rng.integers(0, 7, size=(k * b, T))
    y = rng.integers(0, 7, size=(k * b, T))
    y[rng.random(y.shape) < 0.3] = IGNORE_INDEX  # micro-batches with different numbers of targets
    y[:, 0] = rng.integers(0, 7, size=k * b)  # but none with no target at all
    micro = [Batch(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]) for i in range(k)]
    loss, grads, _ = accumulate_gradients(model, micro)
    _, big_loss = model.forward(x, y)
    big_grads = model.backward()
    assert loss == pytest.approx(big_loss, rel=FLOAT64_RTOL)
    for name, g in big_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=ACCUMULATION_RTOL, atol=ACCUMULATION_ATOL)


@pytest.mark.slow
def test_the_sort_task_reaches_full_held_out_accuracy(tmp_path):
    """The task's whole preset, 1500 steps (about 20 s here)."""
    out = tmp_path / "sort"
    train("--task", "sort", "--out-dir", str(out))
    final = read_log(out)[-1]
    assert final["val_accuracy"] == 1.0


def test_the_add_task_reports_held_out_accuracy(tmp_path):
    out = tmp_path / "add"
    train("--task", "add", "--out-dir", str(out), "--max-iters", "20", "--eval-interval", "10")
    evaluated = [r for r in read_log(out) if "val_loss" in r]
    assert len(evaluated) == 2 and all(0.0 <= r["val_accuracy"] <= 1.0 for r in evaluated)


def test_fine_tuning_starts_from_the_pretrained_weights(tmp_path):
    pre, other = make_text(tmp_path / "a.txt", seed=1), make_text(tmp_path / "b.txt", seed=2)
    train("--data", str(pre), "--out-dir", str(tmp_path / "pre"), "--max-iters", "100", "--learning-rate", "1e-2", *TINY)
    # the model's shape comes from the checkpoint (the default --n-layer would be 4)
    assert main(["train", "--data", str(other), "--out-dir", str(tmp_path / "ft"), "--init-from", str(tmp_path / "pre"),
                 "--max-iters", "5", "--learning-rate", "1e-4", "--eval-iters", "2", "--batch-size", "4"]) == 0
    train("--data", str(other), "--out-dir", str(tmp_path / "scratch"), "--max-iters", "5", *TINY)
    first_ft, first_scratch = read_log(tmp_path / "ft")[0]["loss"], read_log(tmp_path / "scratch")[0]["loss"]
    assert first_ft < first_scratch - 1.0  # the pretrained model already knows the characters' statistics
    config = json.loads((tmp_path / "ft" / "ckpt-000005" / "train_config.json").read_text())
    assert config["n_layer"] == 1 and config["learning_rate"] == 1e-4


def test_settings_come_from_a_toml_file_and_flags_override_it(text, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(f'data = "{text}"\nmax_iters = 12\nlearning_rate = 3e-3\nbatch_size = 4\nn_layer = 1\n'
                      f'n_head = 2\nn_embd = 16\nblock_size = 16\neval_iters = 2\neval_interval = 10\n')
    out = tmp_path / "run"
    train("--config", str(config), "--out-dir", str(out), "--max-iters", "11")
    saved = json.loads((out / "ckpt-000011" / "train_config.json").read_text())
    assert saved["max_iters"] == 11 and saved["learning_rate"] == 3e-3 and saved["n_embd"] == 16


@pytest.mark.slow
def test_the_default_recipe_trains_exactly_as_pytorch_does(shakespeare, tmp_path, torch):
    """`minigpt train` with its defaults (nanoGPT's CPU recipe) on Tiny Shakespeare, against the same model
    trained by PyTorch autograd and torch.optim.AdamW from the same initial weights on the same batches.
    About 9 minutes on 2 cores. Measured here: val loss 1.9064 for both; nanoGPT publishes 1.88 for this
    recipe from a 20-batch estimate, and PyTorch reaches 1.891 to 1.907 over 200 batches across seeds."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from train_torch_reference import train_torch

    from minigpt.config import TrainConfig

    out = tmp_path / "shakespeare"
    train("--data", str(shakespeare), "--out-dir", str(out))
    final = read_log(out)[-1]
    assert final["iter"] == 2000
    peer = train_torch(TrainConfig(data=str(shakespeare)), same_init=True)
    # float32 rounding differs between the two, and 2000 steps amplify it; measured difference: 1e-7
    assert abs(final["val_loss"] - peer["val_loss"]) < TRAINING_LOSS_ATOL
    assert abs(final["train_loss"] - peer["train_loss"]) < TRAINING_LOSS_ATOL
    assert final["val_loss"] < 1.92  # the range the recipe reaches in PyTorch across seeds (1.891 to 1.907)


@pytest.mark.parametrize("backend", ["numba", "c"])
def test_every_backend_trains_as_the_reference_does(text, tmp_path, backend):
    from minigpt import backends

    if backends.kernels_for(backend).name != backend:
        pytest.skip(f"the {backend} backend is not available here")
    common = ["--data", str(text), "--max-iters", "8", "--eval-interval", "4", "--n-layer", "2", "--n-head", "2",
              "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--eval-iters", "2", "--dtype", "float64"]
    train(*common, "--out-dir", str(tmp_path / "ref"), "--backend", "numpy")
    train(*common, "--out-dir", str(tmp_path / "ours"), "--backend", backend)
    for ours, ref in zip(read_log(tmp_path / "ours"), read_log(tmp_path / "ref")):
        for key in ("loss", "grad_norm", "train_loss", "val_loss"):
            if key in ref:
                assert ours[key] == pytest.approx(ref[key], rel=BACKEND_RTOL_FLOAT64), (ref["iter"], key)


def test_a_run_stops_at_the_first_evaluation_that_reaches_its_target_loss(text, tmp_path, capsys):
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", "--data", str(text), "--out-dir", str(out), "--max-iters", "40", *TINY, "--eval-interval", "5", "--learning-rate", "3e-3",
                 "--target-loss", "3.9"]) == 0
    log = read_log(out)
    evals = [r for r in log if "val_loss" in r]
    assert evals[-1]["val_loss"] <= 3.9 and all(r["val_loss"] > 3.9 for r in evals[:-1])  # the first that reached it
    assert log[-1]["iter"] == evals[-1]["iter"] < 40
    assert json.loads((out / "checkpoints.json").read_text())["latest"] == f"ckpt-{log[-1]['iter']:06d}"
    assert f"reached the target validation loss 3.9 at iter {log[-1]['iter']}" in capsys.readouterr().out


def test_the_speedrun_preset_sits_under_the_flags():
    from minigpt import settings

    cfg = settings.merge(settings.given({"preset": "speedrun", "max_iters": 10}))
    assert (cfg.model.arch, cfg.target_loss, cfg.eval_iters, cfg.max_iters) == ("qwen3", 1.919, 200, 10)
    assert settings.merge(settings.given({})).target_loss is None


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1337, 1, 2])
def test_the_speedrun_reaches_nanogpts_shakespeare_loss(shakespeare, tmp_path, capsys, seed):
    # the record of docs/speedrun.md, on each seed its table gives: below 1.919 on the 200-batch evaluation
    out = tmp_path / "speedrun"
    capsys.readouterr()
    assert main(["train", "--preset", "speedrun", "--data", str(shakespeare), "--out-dir", str(out), "--seed",
                 str(seed)]) == 0
    last = read_log(out)[-1]
    assert last["iter"] == 550 and last["val_loss"] <= 1.919
    assert "reached the target validation loss 1.919 at iter 550" in capsys.readouterr().out
