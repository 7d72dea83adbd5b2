"""Llama and Qwen 3 weights in and out of Hugging Face directories: what minigpt writes, LlamaForCausalLM and
Qwen3ForCausalLM read (and the reverse), in transformers 5's config.json and in 4's; what minigpt cannot represent is
refused in one line; a run of either family trains, resumes, fine-tunes and exports from the command line."""

import json

import numpy as np
import pytest

from minigpt import GPT, GPTConfig, hf, load
from minigpt.cli import main
from helpers import TINY, make_text
from test_hf import RTOL, rel_err, tokenizer  # noqa: F401  (tokenizer: a fixture)

SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 8}
CONFIGS = {
    "llama": GPTConfig(arch="llama", vocab_size=300, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=16,
                       rope_theta=500000.0, rope_scaling=SCALING),
    "qwen3": GPTConfig(arch="qwen3", vocab_size=300, block_size=32, n_layer=2, n_head=4, n_kv_head=1, n_embd=16,
                       head_dim=8, intermediate_size=40, norm_eps=1e-5, rope_theta=1e6, tie_word_embeddings=True),
}


def random_model(cfg, seed=3):
    model = GPT(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    for p in model.params.values():  # larger than the initialisation, so that greedy choices are clear-cut
        p += rng.normal(0, 0.3, size=p.shape).astype(np.float32)
    return model.eval()


def hf_logits(torch, hf_model, idx):
    with torch.no_grad():
        return hf_model(torch.from_numpy(idx)).logits.numpy()


@pytest.mark.parametrize("arch", CONFIGS)
def test_an_export_loads_in_transformers_with_the_same_logits_and_tokens(arch, tokenizer, transformers, torch, tmp_path):  # noqa: F811
    model = random_model(CONFIGS[arch])
    hf.save_pretrained(model, tmp_path, tokenizer)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(theirs).__name__ == hf.MODEL_TYPES[arch]
    assert theirs.config.num_key_value_heads == model.config.n_kv_head
    assert theirs.config.rope_parameters["rope_type"] == ("llama3" if arch == "llama" else "default")
    idx = np.random.default_rng(0).integers(0, 300, size=(2, 32))
    assert rel_err(model.forward(idx)[0], hf_logits(torch, theirs, idx)) < RTOL
    with torch.no_grad():
        tokens = theirs.generate(torch.from_numpy(idx[:, :4]), max_new_tokens=20, min_new_tokens=20, do_sample=False,
                                 attention_mask=torch.ones((2, 4), dtype=torch.long)).numpy()
    np.testing.assert_array_equal(model.generate(idx[:, :4], 20, do_sample=False), tokens)


@pytest.mark.parametrize("arch", CONFIGS)
def test_a_transformers_directory_loads_in_minigpt(arch, transformers, torch, tmp_path):
    from test_torch_llama import hf_config

    theirs = getattr(transformers, hf.MODEL_TYPES[arch])(hf_config(transformers, CONFIGS[arch])).eval()
    theirs.save_pretrained(tmp_path)  # safetensors, transformers 5's config.json; the tied head not saved
    config = hf.read_config(tmp_path / "config.json")
    assert config == CONFIGS[arch]
    ours = load.build_model(load.read(tmp_path))
    idx = np.random.default_rng(0).integers(0, 300, size=(2, 32))
    assert rel_err(ours.forward(idx)[0], hf_logits(torch, theirs, idx)) < RTOL


@pytest.mark.parametrize("arch", CONFIGS)
def test_a_transformers_4_config_reads_alike(arch, tmp_path):
    # transformers 4 wrote the rotary settings as rope_theta and rope_scaling (with "type" in older files)
    model = random_model(CONFIGS[arch])
    hf.save_pretrained(model, tmp_path)
    d = json.loads((tmp_path / "config.json").read_text())
    del d["rope_parameters"]
    if d["rope_scaling"] is not None:
        d["rope_scaling"] = {("type" if k == "rope_type" else k): v for k, v in d["rope_scaling"].items()}
    (tmp_path / "config.json").write_text(json.dumps(d))
    assert hf.read_config(tmp_path / "config.json") == model.config


@pytest.mark.parametrize(
    "arch, change, message",
    [
        ("llama", {"hidden_act": "gelu"}, "hidden_act 'gelu' is not silu"),
        ("llama", {"attention_bias": True}, "its linear layers have biases"),
        ("llama", {"mlp_bias": True}, "its linear layers have biases"),
        ("qwen3", {"use_sliding_window": True}, "sliding window"),
        ("qwen3", {"layer_types": ["full_attention", "sliding_attention"]}, "sliding window"),
        ("llama", {"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}}, "of type 'yarn'"),
        ("llama", {"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}},
         "turn only part of each head"),
        ("llama", {"rope_parameters": None, "rope_scaling": {"type": "linear", "factor": 2.0}}, "of type 'linear'"),
    ],
)
def test_configurations_minigpt_cannot_represent_are_refused(arch, change, message, tmp_path):
    hf.save_pretrained(random_model(CONFIGS[arch]), tmp_path)
    d = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**d, **change}))
    with pytest.raises(ValueError) as e:
        load.read(tmp_path)
    assert message in str(e.value) and "cannot represent it" in str(e.value) and str(tmp_path) in str(e.value)


def test_a_llama_state_dict_with_lm_head_needs_the_config_to_say_whether_it_is_tied():
    cfg = CONFIGS["qwen3"]  # tied
    sd = GPT(cfg).state_dict()
    with_head = {**sd, "lm_head.weight": sd["model.embed_tokens.weight"].copy(),
                 "model.layers.0.self_attn.rotary_emb.inv_freq": np.ones(4, dtype=np.float32)}  # an old file's buffer
    with pytest.raises(ValueError, match=r"give the model's config, to_minigpt\(state_dict, config\)"):
        hf.to_minigpt(with_head)
    assert set(hf.to_minigpt(with_head, cfg)) == set(sd)
    with_head["lm_head.weight"] += 1.0
    with pytest.raises(ValueError, match="lm_head.weight differs from model.embed_tokens.weight; this model's LM head "
                                         "is tied to it"):
        hf.to_minigpt(with_head, cfg)
    untied = CONFIGS["llama"]
    sd = GPT(untied).state_dict()
    assert hf.to_minigpt(sd, untied).keys() == sd.keys()


def test_a_run_of_each_family_trains_resumes_exports_and_fine_tunes(tmp_path, transformers, torch, capsys):
    text = make_text(tmp_path / "t.txt", seed=0)
    llama = ["--arch", "qwen3", "--n-kv-head", "1", "--head-dim", "4", "--intermediate-size", "24"]
    run = tmp_path / "run"
    assert main(["train", "--data", str(text), "--out-dir", str(run), "--max-iters", "4", *TINY, *llama]) == 0
    assert main(["train", "--resume", "--out-dir", str(run), "--max-iters", "6"]) == 0
    latest = load.read(run, "latest")
    ckpt, ours, run_tokenizer = latest.path, load.build_model(latest), latest.tokenizer
    assert ours.config.arch == "qwen3" and ours.config.head_dim == 4 and ours.config.n_kv_head == 1
    # a checkpoint is a Hugging Face directory: Qwen3ForCausalLM reads it as it is
    theirs = transformers.Qwen3ForCausalLM.from_pretrained(ckpt).eval()
    idx = np.random.default_rng(0).integers(0, ours.config.vocab_size, size=(2, 16))
    assert rel_err(ours.forward(idx)[0], hf_logits(torch, theirs, idx)) < RTOL
    assert main(["export", "--out-dir", str(run), "--hf", str(tmp_path / "hf")]) == 0
    assert "Qwen3ForCausalLM.from_pretrained" in capsys.readouterr().out
    # fine-tuning a Llama 3 with rope_scaling keeps it: the frequencies come with the weights trained with them
    scaled = random_model(GPTConfig(**{**CONFIGS["llama"].to_dict(), "vocab_size": ours.config.vocab_size}))
    hf.save_pretrained(scaled, tmp_path / "llama3", run_tokenizer)
    ft = tmp_path / "ft"
    assert main(["train", "--data", str(text), "--init-from", str(tmp_path / "llama3"), "--out-dir", str(ft),
                 "--arch", "llama", "--n-layer", "2", "--n-head", "4", "--n-kv-head", "2", "--n-embd", "16",
                 "--block-size", "16", "--rope-theta", "500000", "--max-iters", "1", "--batch-size", "2",
                 "--eval-iters", "1"]) == 0
    tuned = load.build_model(load.read(ft, "latest"))
    assert tuned.config.rope_scaling == SCALING and tuned.config.block_size == 16
    np.testing.assert_array_equal(tuned.inv_freq, scaled.inv_freq)
