"""A model quantized for inference (GPT.quantize, --quantize q8_0): it computes exactly what the float model holding
the dequantized weights computes, with every backend, in every family, decoding with its key/value cache too; its
float weights are gone; it refuses to train; the commands take the flag."""

import json

import numpy as np
import pytest

from helpers import cli, error_line
from minigpt import GPT, GPTConfig
from minigpt.ops import q8_0

SHAPES = {  # tiny, every linear's input width a multiple of 32
    "gpt2": dict(arch="gpt2", n_layer=2, n_head=2, n_embd=32, block_size=12),
    "llama": dict(arch="llama", n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=12, intermediate_size=96,
                  tie_word_embeddings=False),
    "qwen3": dict(arch="qwen3", n_layer=2, n_head=4, n_kv_head=2, head_dim=32, n_embd=64, block_size=12,
                  intermediate_size=64),
}


def dequantized_twin(quantized: GPT, params: dict) -> GPT:
    """The float model whose arithmetic the quantized one must reproduce: params, with each weight the quantized
    model holds in Q8_0 dequantized and laid out as the family lays it out."""
    f = quantized.family
    state = {name: p.copy() for name, p in params.items()}
    for name, blocks in quantized.quantized.items():
        w = q8_0.dequantize(blocks)  # (out, in)
        state[f.WTE if name == "lm_head.weight" and quantized.config.tie_word_embeddings else name] = (
            w.T if f.LINEAR_IN_OUT and name.startswith(f.BLOCKS) else w)
    twin = GPT(quantized.config, backend=quantized.backend)
    twin.load_state_dict(state)
    return twin.eval()


@pytest.mark.parametrize("arch", sorted(SHAPES))
@pytest.mark.parametrize("backend", ["numpy", "c", "numba"])
def test_a_quantized_model_computes_what_its_dequantized_twin_computes(arch, backend):
    """A tied head's Q8_0 copy multiplies the output while the float embedding looks up the input: the embedding is
    first rounded to Q8_0's values (which quantize to themselves), so that one float twin holds both."""
    model = GPT(GPTConfig(vocab_size=96, **SHAPES[arch]), seed=1, backend=backend).eval()
    head = model.family.WTE if model.config.tie_word_embeddings else "lm_head.weight"
    rng = np.random.default_rng(2)  # biases away from 0 and norms' gains away from 1: a dropped one shows
    state = {name: (p + rng.normal(0, 0.1, p.shape)).astype(p.dtype) for name, p in model.params.items()}
    state[head] = q8_0.dequantize(q8_0.quantize(state[head]))
    model.load_state_dict(state)
    idx = np.random.default_rng(0).integers(0, 96, (2, 10))
    float_logits, _ = model.forward(idx)
    model.quantize("q8_0")
    twin = dequantized_twin(model, state)
    logits, _ = model.forward(idx)
    expected, _ = twin.forward(idx)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert np.abs(logits - float_logits).max() > 1e-4  # (the weights did change)
    # decoding, one position at a time from the key/value cache: the kernels' few-row path
    prompt = idx[:, :3]
    np.testing.assert_array_equal(model.generate(prompt, 8, do_sample=False), twin.generate(prompt, 8, do_sample=False))


def test_lora_s_adapters_stay_float_beside_the_quantized_base():
    model = GPT(GPTConfig(vocab_size=96, **SHAPES["llama"], lora_rank=4), seed=2, backend="c").eval()
    rng = np.random.default_rng(4)  # B away from 0: the adapters' branch counts
    state = {name: (p + rng.normal(0, 0.1, p.shape)).astype(p.dtype) for name, p in model.params.items()}
    model.load_state_dict(state)
    model.quantize()
    adapters = [name for name in model.params if "lora_" in name]
    assert adapters and not set(adapters) & set(model.quantized)
    twin = dequantized_twin(model, state)
    idx = np.random.default_rng(5).integers(0, 96, (2, 10))
    np.testing.assert_allclose(model.forward(idx)[0], twin.forward(idx)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.generate(idx[:, :3], 6, do_sample=False),
                                  twin.generate(idx[:, :3], 6, do_sample=False))


def test_the_float_weights_are_freed_and_the_bytes_are_8_5_bits_a_weight():
    model = GPT(GPTConfig(vocab_size=96, **SHAPES["llama"]))
    before = {name: p.size for name, p in model.params.items()}
    model.quantize()
    linears = [name for name in before if name.endswith("_proj.weight")] + ["lm_head.weight"]
    assert sorted(model.quantized) == sorted(linears)
    assert not set(linears) & set(model.params)  # freed
    for name in linears:
        assert model.quantized[name].nbytes == before[name] * 34 // 32
    tied = GPT(GPTConfig(vocab_size=96, **SHAPES["qwen3"])).quantize()
    assert "model.embed_tokens.weight" in tied.params and "lm_head.weight" in tied.quantized


def test_a_quantized_model_refuses_to_train_save_or_quantize_again():
    model = GPT(GPTConfig(vocab_size=96, **SHAPES["gpt2"])).quantize()
    idx = np.zeros((1, 4), dtype=np.int64)
    model.forward(idx, targets=idx)
    for call in (model.backward, model.state_dict, lambda: model.load_state_dict({}),):
        with pytest.raises(ValueError, match="quantized.*inference only"):
            call()
    with pytest.raises(ValueError, match="already quantized"):
        model.quantize()
    with pytest.raises(ValueError, match="unknown quantization 'q4_0'; choose one of q8_0"):
        GPT(GPTConfig(vocab_size=96, **SHAPES["gpt2"])).quantize("q4_0")


def test_a_weight_whose_rows_are_no_whole_blocks_stays_float():
    """An MLP of 40: gate and up (rows of 64) in Q8_0, down (rows of 40) float, and the model still its twin."""
    model = GPT(GPTConfig(vocab_size=96, **{**SHAPES["llama"], "intermediate_size": 40}), seed=3).eval()
    down = {name: p.copy() for name, p in model.params.items() if name.endswith("down_proj.weight")}
    model.quantize()
    assert down and all(np.array_equal(model.params[name], p) for name, p in down.items())
    assert not set(down) & set(model.quantized) and any(name.endswith("up_proj.weight") for name in model.quantized)
    idx = np.arange(8).reshape(1, 8)
    twin = dequantized_twin(model, model.params)
    np.testing.assert_allclose(model.forward(idx)[0], twin.forward(idx)[0], rtol=1e-5, atol=1e-6)


def test_the_commands_take_quantize(tmp_path, capsys):
    records = tmp_path / "r.jsonl"
    records.write_text("".join(json.dumps({"prompt": "the king ", "completion": w}) + "\n"
                               for w in ("and the", "of night", "sweet prince") * 10))
    code, err = cli(capsys, "train", "--data", str(records), "--out-dir", str(tmp_path / "run"), "--n-layer", "1",
                    "--n-head", "2", "--n-embd", "32", "--block-size", "32", "--max-iters", "30", "--eval-iters", "1",
                    "--batch-size", "4", "--backend", "numpy")
    assert code == 0, err
    scores = {}
    for flags in ([], ["--quantize", "q8_0"]):
        code, err = cli(capsys, "eval", "--out-dir", str(tmp_path / "run"), "--data", str(records), "--json",
                        str(tmp_path / f"s{len(flags)}.json"), *flags)
        assert code == 0, err
        scores[len(flags)] = json.loads((tmp_path / f"s{len(flags)}.json").read_text())
    assert scores[0]["quantize"] is None and scores[2]["quantize"] == "q8_0"
    assert scores[2]["loss"] != scores[0]["loss"] and abs(scores[2]["loss"] - scores[0]["loss"]) < 0.05
    code, err = cli(capsys, "sample", "--out-dir", str(tmp_path / "run"), "--quantize", "q8_0", "--greedy",
                    "--max-new-tokens", "20", "--prompt", "the ")
    assert code == 0, err
    code, err = cli(capsys, "sample", "--out-dir", str(tmp_path / "run"), "--quantize", "q4")
    error_line(err, "--quantize", "invalid choice")
    code, err = cli(capsys, "eval", "--task", "wordnet-qa", "--baseline", "majority", "--quantize", "q8_0")
    error_line(err, "--quantize is for a model")
