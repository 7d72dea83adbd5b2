"""LoRA on the model (minigpt/lora.py): gradients, frozen weights, merging, training from the command line, and PEFT's
files (minigpt/peft.py) both ways, read and written by peft itself."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import cli, error_line
import minigpt.peft
from minigpt import GPT, GPTConfig, hf, load, lora
from minigpt.gradcheck import check_model
from test_torch_reference import rel_err
from tolerances import GRAD_RTOL, TORCH_RTOL_FLOAT64


def adapted(cfg, seed=0, scale=0.3):
    """A float64 model with LoRA, every weight (adapters included, B too) moved off its initialisation."""
    model = GPT(cfg, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():
        p.setflags(write=True)
        p += rng.normal(0.0, scale, size=p.shape)
        p.setflags(write=name not in model.frozen)
    return model


def lora_config(arch, targets="attention", **kw):
    return GPTConfig(arch=arch, vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, lora_rank=2,
                     lora_alpha=4.0, lora_targets=targets, **kw)


@given(st.sampled_from(["gpt2", "llama", "qwen3"]), st.sampled_from(["attention", "mlp", "all", "c_proj", "v_proj,up_proj"]),
       st.sampled_from([0.0, 0.3]), st.integers(0, 2**16))
@settings(max_examples=12)
def test_the_adapters_gradients_match_finite_differences(arch, targets, lora_dropout, seed):
    if arch == "gpt2" and targets == "v_proj,up_proj":
        targets = "c_fc"
    if arch != "gpt2" and targets == "c_proj":
        targets = "o_proj"
    model = adapted(lora_config(arch, targets, lora_dropout=lora_dropout), seed)
    rng = np.random.default_rng(seed)
    idx, targets_ = rng.integers(0, 11, size=(2, 8)), rng.integers(0, 11, size=(2, 8))
    report = check_model(model, idx, targets_, max_elements=4, n_directions=3)  # (the dropout masks held fixed)
    assert report.max_rel_error < GRAD_RTOL, report
    assert set(model.backward()) == set(lora.param_shapes(model.config))  # the adapters' gradients, and no others


def test_the_base_is_frozen_no_gradient_no_optimizer_state_and_no_write(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the king and the queen of night\n" * 200)
    base, run = tmp_path / "base", tmp_path / "lora"
    args = ["--data", str(text), "--max-iters", "3", "--eval-iters", "1", "--n-layer", "2", "--n-embd", "16",
            "--block-size", "16", "--backend", "numpy"]
    assert cli(capsys, "train", "--out-dir", str(base), *args)[0] == 0
    assert cli(capsys, "train", "--out-dir", str(run), "--init-from", str(base), "--lora-rank", "4", *args)[0] == 0
    from minigpt import checkpoint

    before = load.build_model(load.read(base, "latest"))
    after = load.build_model(load.read(run, "latest"))
    for name, p in before.params.items():  # three steps later, every base weight is exactly as it was
        assert np.array_equal(after.params[name], p), name
    assert any(np.abs(after.params[n]).max() > 0 for n in after.params if n.endswith("lora_B.weight"))  # B trained
    state = checkpoint.read_optimizer(load.locate(run, "latest"))
    assert {k.split(".", 1)[1] for k in state} == set(lora.param_shapes(after.config))
    with pytest.raises(ValueError, match="read-only"):
        after.params["transformer.wte.weight"][0, 0] = 1.0
    # merged: the same function, without the branch
    idx = np.random.default_rng(0).integers(0, after.config.vocab_size, size=(2, 16))
    config, params = minigpt.peft.merged(after.config, after.params)
    plain = GPT(config)
    plain.load_state_dict(params)
    np.testing.assert_allclose(plain.eval().forward(idx)[0], after.forward(idx)[0], rtol=1e-5, atol=1e-5)


def test_exported_adapters_load_in_peft_with_the_same_logits(transformers, torch, tmp_path, capsys):
    peft = pytest.importorskip("peft") if False else __import__("helpers").require("peft")
    for arch in ("gpt2", "llama"):
        model = adapted(lora_config(arch, "all" if arch == "llama" else "attention"), seed=1)
        for p in model.params.values():  # values a float32 file holds exactly, so both sides compute alike
            p.setflags(write=True)
            p[...] = p.astype(np.float32)
        base_dir, peft_dir = tmp_path / f"{arch}-base", tmp_path / f"{arch}-peft"
        base_config = minigpt.peft.without_adapters(model.config)
        hf.write(base_dir, base_config, {n: p for n, p in model.params.items() if not lora.is_adapter(n)})
        peft_dir.mkdir()
        minigpt.peft.save_peft(model.config, model.params, peft_dir)
        theirs = transformers.AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float64)
        theirs = peft.PeftModel.from_pretrained(theirs, peft_dir).eval()
        idx = np.random.default_rng(0).integers(0, 11, size=(2, 8))
        ours = model.eval().forward(idx)[0]
        if arch == "gpt2":
            with torch.no_grad():
                logits = theirs(torch.from_numpy(idx)).logits.numpy()
        else:
            from test_torch_llama import float64_exact

            with float64_exact(torch, theirs.base_model.model, model, np.float64), torch.no_grad():
                logits = theirs(torch.from_numpy(idx)).logits.numpy()
        assert rel_err(ours, logits) < TORCH_RTOL_FLOAT64, arch
        # and back: minigpt reads its own directory as the adapters it wrote
        back = load.build_model(load.with_adapters(load.read(base_dir), peft_dir), dtype=np.float64)
        np.testing.assert_array_equal(back.forward(idx)[0], ours)


def test_adapters_written_by_peft_load_into_minigpt_with_the_same_logits(transformers, torch, tmp_path):
    peft = __import__("helpers").require("peft")
    from test_torch_llama import float64_exact, hf_config

    cfg = GPTConfig(arch="llama", vocab_size=11, block_size=8, n_layer=2, n_head=4, n_kv_head=2, n_embd=16)
    theirs = transformers.LlamaForCausalLM(hf_config(transformers, cfg)).to(torch.float64)
    theirs.save_pretrained(tmp_path / "base")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    theirs = peft.get_peft_model(theirs, config)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.3)  # (B starts at zero: move it, so that the adapters change the function)
    theirs.save_pretrained(tmp_path / "adapters")
    ours = load.build_model(load.with_adapters(load.read(tmp_path / "base"), tmp_path / "adapters"), dtype=np.float64)
    assert ours.config.lora_rank == 4 and ours.config.lora_alpha == 8.0
    assert set(lora.targets(ours.config)) == {"self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"}
    idx = np.random.default_rng(0).integers(0, 11, size=(2, 8))
    theirs = theirs.eval()
    with float64_exact(torch, theirs.base_model.model, ours, np.float64), torch.no_grad():
        logits = theirs(torch.from_numpy(idx)).logits.numpy()
    assert rel_err(ours.forward(idx)[0], logits) < TORCH_RTOL_FLOAT64


def test_export_writes_peft_adapters_and_a_merged_directory_and_refuses_a_run_without_adapters(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the king and the queen of night\n" * 200)
    args = ["--data", str(text), "--max-iters", "2", "--eval-iters", "1", "--n-layer", "1", "--n-embd", "16",
            "--block-size", "16", "--backend", "numpy"]
    assert cli(capsys, "train", "--out-dir", str(tmp_path / "base"), *args)[0] == 0
    assert cli(capsys, "train", "--out-dir", str(tmp_path / "run"), "--init-from", str(tmp_path / "base"),
               "--lora-rank", "2", "--lora-targets", "all", *args)[0] == 0
    assert cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--peft", str(tmp_path / "p"))[0] == 0
    assert json.loads((tmp_path / "p" / "adapter_config.json").read_text())["r"] == 2
    assert cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--hf", str(tmp_path / "h"))[0] == 0
    merged = load.read(tmp_path / "h")
    assert merged.config.lora_rank is None and not any(lora.is_adapter(n) for n in merged.weights)
    code, err = cli(capsys, "export", "--out-dir", str(tmp_path / "base"), "--peft", str(tmp_path / "q"))
    assert code == 1
    error_line(err, "trained no LoRA adapters", "--lora-rank")
    code, err = cli(capsys, "train", "--out-dir", str(tmp_path / "bad"), "--init-from", str(tmp_path / "base"),
                    "--lora-rank", "2", "--lora-targets", "wq", *args)
    assert code == 1
    error_line(err, "'wq' is none of gpt2's linears")
