"""GPT-2 weights in and out: Hugging Face directories (safetensors only) and llm.c's model file."""

import json

import numpy as np
import pytest

from minigpt import GPT, BPETokenizer, GPTConfig, hf, llmc, load
from minigpt.cli import main
from helpers import CORPUS, TINY, cli, error_line, make_text, read_log

CFG = GPTConfig(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=16)
RTOL = 1e-4  # float32, two implementations


def rel_err(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train(CORPUS, vocab_size=300)


@pytest.fixture
def model():
    m = GPT(CFG, seed=3)
    rng = np.random.default_rng(3)
    for p in m.params.values():  # larger than the initialisation, so that greedy choices are clear-cut
        p += rng.normal(0, 0.3, size=p.shape).astype(np.float32)
    return m.eval()


def test_export_loads_in_transformers_with_the_same_logits_and_tokens(model, tokenizer, transformers, torch, tmp_path):
    hf.save_pretrained(model, tmp_path, tokenizer)
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    hf_tok = transformers.GPT2TokenizerFast.from_pretrained(tmp_path)
    text = "Speak, speak. First Citizen: it's naïve"
    ids = tokenizer.encode(text)
    assert hf_tok.encode(text) == ids
    idx = np.array([ids])
    with torch.no_grad():
        hf_logits = hf_model(torch.from_numpy(idx)).logits.numpy()
    assert rel_err(model.forward(idx)[0], hf_logits) < RTOL


def test_greedy_generation_equals_transformers_generate(model, transformers, torch, tmp_path):
    hf.save_pretrained(model, tmp_path)
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    prompt = np.array([[5, 17, 42, 99, 7]])
    new = CFG.block_size - prompt.shape[1]  # up to the end of the context
    with torch.no_grad():
        theirs = hf_model.generate(torch.from_numpy(prompt), attention_mask=torch.ones(1, 5, dtype=torch.long),
                                   max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0).numpy()
    np.testing.assert_array_equal(model.generate(prompt, new, do_sample=False), theirs)


def test_200_greedy_tokens_in_float64_equal_transformers_generate(transformers, torch, tmp_path):
    # In float64 both sides round alike far enough that 200 greedy choices through the KV cache must agree.
    cfg = GPTConfig(vocab_size=50, block_size=208, n_layer=2, n_head=4, n_embd=32)
    model = GPT(cfg, seed=5, dtype=np.float64)
    rng = np.random.default_rng(5)
    for p in model.params.values():
        p += rng.normal(0, 0.3, size=p.shape)
    hf.save_pretrained(model.eval(), tmp_path)
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").double().eval()
    with torch.no_grad():  # from the float64 arrays themselves: the directory holds float32
        missing, unexpected = hf_model.load_state_dict({k: torch.from_numpy(v) for k, v in model.params.items()},
                                                       strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}  # tied to the embedding
    prompt = rng.integers(0, 50, size=(2, 8))
    with torch.no_grad():
        theirs = hf_model.generate(torch.from_numpy(prompt), attention_mask=torch.ones(2, 8, dtype=torch.long),
                                   max_new_tokens=200, min_new_tokens=200, do_sample=False, pad_token_id=0).numpy()
    tokens = model.generate(prompt, 200, do_sample=False)
    assert len(set(tokens[:, 8:].ravel().tolist())) > 5  # not one repeated token, which a broken cache could give too
    np.testing.assert_array_equal(tokens, theirs)


@pytest.mark.parametrize("base_model", [False, True])
def test_a_transformers_directory_loads_with_the_same_logits(transformers, torch, tmp_path, base_model):
    config = transformers.GPT2Config(vocab_size=300, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    hf_model = transformers.GPT2LMHeadModel(config).eval()
    # GPT2Model (the released "gpt2" checkpoint is one) names its weights without "transformer."
    (hf_model.transformer if base_model else hf_model).save_pretrained(tmp_path)
    ours = load.build_model(load.read(tmp_path))
    idx = np.random.default_rng(0).integers(0, 300, size=(2, 32))
    with torch.no_grad():
        hf_logits = hf_model(torch.from_numpy(idx)).logits.numpy()
    assert rel_err(ours.forward(idx)[0], hf_logits) < RTOL


def test_sharded_weights_load(transformers, tmp_path):
    config = transformers.GPT2Config(vocab_size=300, n_positions=32, n_embd=16, n_layer=2, n_head=2)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert load.build_model(load.read(tmp_path)).config.n_layer == 2  # (as minigpt sample and train --init-from read it)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"activation_function": "relu"}, "activation_function 'relu' is not GPT-2's tanh GELU"),
        ({"add_cross_attention": True}, "cross-attention"),
        ({"n_inner": 40}, "n_inner 40 is not 4 * n_embd"),
        ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon 1e-06 is not GPT-2's 1e-05"),
        ({"scale_attn_by_inverse_layer_idx": True}, "not scaled by 1 / sqrt(head size) alone"),
        ({"model_type": "mistral"}, "model_type 'mistral' is none of gpt2, llama, qwen3"),
    ],
)
def test_configurations_minigpt_cannot_represent_are_refused(model, tmp_path, change, message):
    hf.save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError) as e:
        load.read(tmp_path)
    assert message in str(e.value) and "cannot represent it" in str(e.value)


def test_pickled_weights_are_never_opened(model, tmp_path):
    hf.save_pretrained(model, tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04 pickle data")
    with pytest.raises(ValueError, match="only PyTorch pickle weights .* minigpt never unpickles files"):
        load.read(tmp_path)


def test_the_command_line_exports_and_samples_from_a_transformers_directory(tmp_path, transformers):
    text = make_text(tmp_path / "t.txt", seed=0)
    assert main(["train", "--data", str(text), "--tokenizer", "bpe", "--vocab-size", "300", "--out-dir",
                 str(tmp_path / "run"), "--max-iters", "10", *TINY]) == 0
    assert main(["export", "--out-dir", str(tmp_path / "run"), "--hf", str(tmp_path / "hf")]) == 0
    transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf")
    transformers.GPT2TokenizerFast.from_pretrained(tmp_path / "hf")
    assert main(["sample", "--init-from", str(tmp_path / "hf"), "--prompt", "the king", "--max-new-tokens", "5"]) == 0


def test_fine_tuning_from_a_transformers_directory_beats_training_from_scratch(tmp_path):
    pre, other = make_text(tmp_path / "a.txt", seed=1), make_text(tmp_path / "b.txt", seed=2)
    assert main(["tokenizer", "train", "--data", str(pre), "--vocab-size", "300", "--out", str(tmp_path / "tok")]) == 0
    shape = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4", "--eval-iters", "8",
             "--eval-interval", "20", "--warmup-iters", "2"]
    assert main(["train", "--data", str(pre), "--tokenizer", str(tmp_path / "tok"), "--block-size", "32",
                 "--out-dir", str(tmp_path / "pre"), "--max-iters", "150", "--learning-rate", "1e-2", *shape]) == 0
    assert main(["export", "--out-dir", str(tmp_path / "pre"), "--hf", str(tmp_path / "hf")]) == 0
    # fine-tune the exported model on another text, with its tokenizer and a shorter context
    assert main(["train", "--data", str(other), "--init-from", str(tmp_path / "hf"), "--block-size", "16",
                 "--out-dir", str(tmp_path / "ft"), "--max-iters", "20", "--learning-rate", "1e-3", *shape]) == 0
    # the same model from scratch on the second text, with the same vocabulary
    assert main(["train", "--data", str(other), "--tokenizer", str(tmp_path / "tok"), "--block-size", "16",
                 "--out-dir", str(tmp_path / "scratch"), "--max-iters", "20", "--learning-rate", "1e-3", *shape]) == 0
    ft_val = [r["val_loss"] for r in read_log(tmp_path / "ft") if "val_loss" in r]
    scratch_val = [r["val_loss"] for r in read_log(tmp_path / "scratch") if "val_loss" in r]
    assert ft_val[-1] < scratch_val[-1] - 0.5
    assert json.loads((tmp_path / "ft" / "ckpt-000020" / "train_config.json").read_text())["block_size"] == 16


def test_llmc_files_round_trip_with_the_same_logits(model, tmp_path):
    llmc.save(model, tmp_path / "model.bin")
    header = np.fromfile(tmp_path / "model.bin", dtype=np.int32, count=8)
    Vp = 384  # 300 padded to a multiple of 128
    assert header.tolist() == [20240326, 3, 32, 300, 2, 2, 16, Vp]
    size = (tmp_path / "model.bin").stat().st_size
    assert size == 256 * 4 + 4 * (model.num_params() + (Vp - 300) * 16)
    wte_rows = np.fromfile(tmp_path / "model.bin", dtype=np.float32, offset=1024, count=Vp * 16).reshape(Vp, 16)
    np.testing.assert_array_equal(wte_rows[300:], 0.0)  # the padding
    np.testing.assert_array_equal(wte_rows[:300], model.params["transformer.wte.weight"])
    loaded = load.build_model(load.read(tmp_path / "model.bin"))
    idx = np.random.default_rng(0).integers(0, 300, size=(2, 32))
    np.testing.assert_array_equal(loaded.forward(idx)[0], model.forward(idx)[0])
    # llm.c stores the linear weights (out, in): the first one is the transpose of minigpt's
    qkvw = np.fromfile(tmp_path / "model.bin", dtype=np.float32, offset=1024 + 4 * (Vp * 16 + 32 * 16 + 4 * 16),
                       count=48 * 16).reshape(48, 16)
    np.testing.assert_array_equal(qkvw, model.params["transformer.h.0.attn.c_attn.weight"].T)


def test_broken_llmc_files_are_explained(model, tmp_path):
    llmc.save(model, tmp_path / "model.bin")
    data = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        llmc.read(tmp_path / "short.bin")
    (tmp_path / "other.bin").write_bytes(b"\x00" * 2048)
    with pytest.raises(ValueError, match="is not an llm.c model file"):
        llmc.read(tmp_path / "other.bin")
    header = np.frombuffer(data[:1024], dtype=np.int32).copy()
    header[1] = 5
    (tmp_path / "bf16.bin").write_bytes(header.tobytes() + data[1024:])
    with pytest.raises(ValueError, match="llm.c model version 5; minigpt reads version 3"):
        llmc.read(tmp_path / "bf16.bin")


def test_the_command_line_exports_llmc_files(tmp_path):
    text = make_text(tmp_path / "t.txt", seed=0)
    assert main(["train", "--data", str(text), "--out-dir", str(tmp_path / "run"), "--max-iters", "5", *TINY]) == 0
    assert main(["export", "--out-dir", str(tmp_path / "run"), "--llmc", str(tmp_path / "m.bin")]) == 0
    assert load.read(tmp_path / "m.bin").config.n_embd == 16


def test_a_char_model_exports_a_byte_vocabulary_that_transformers_encodes_alike_and_minigpt_reads_back(
        tmp_path, transformers, capsys):
    text = make_text(tmp_path / "t.txt", seed=0)
    assert main(["train", "--data", str(text), "--out-dir", str(tmp_path / "run"), "--max-iters", "5", *TINY]) == 0
    assert main(["export", "--out-dir", str(tmp_path / "run"), "--hf", str(tmp_path / "hf")]) == 0
    from minigpt.data import CharTokenizer, load_tokenizer

    pretrained = load.read(tmp_path / "run")
    model, tokenizer = load.build_model(pretrained), pretrained.tokenizer
    hf_tok = transformers.GPT2TokenizerFast.from_pretrained(tmp_path / "hf")
    sample = "the king and the queen"
    assert hf_tok.encode(sample) == tokenizer.encode(sample).tolist()
    assert hf.read_config(tmp_path / "hf" / "config.json").n_embd == 16
    # and minigpt reads its own export: the same characters, the same weights, everything that takes a directory
    assert isinstance(load_tokenizer(tmp_path / "hf"), CharTokenizer) and load_tokenizer(tmp_path / "hf") == tokenizer
    back = load.build_model(load.read(tmp_path / "hf"))
    for name, p in model.params.items():
        np.testing.assert_array_equal(back.params[name], p)
    capsys.readouterr()
    assert main(["sample", "--init-from", str(tmp_path / "hf"), "--max-new-tokens", "20", "--seed", "3"]) == 0
    from_export = capsys.readouterr().out
    assert main(["sample", "--out-dir", str(tmp_path / "run"), "--max-new-tokens", "20", "--seed", "3"]) == 0
    assert from_export == capsys.readouterr().out and len(from_export) == 22
    assert main(["train", "--data", str(text), "--init-from", str(tmp_path / "hf"), "--out-dir", str(tmp_path / "ft"),
                 "--max-iters", "2", "--batch-size", "4", "--eval-iters", "1"]) == 0


def test_every_kind_of_model_is_read_by_one_route_into_one_object(tmp_path, capsys):
    # a checkpoint, its Hugging Face export and its llm.c export: each read as it is stored, checked, then built alike
    text = make_text(tmp_path / "t.txt", seed=0)
    assert main(["train", "--data", str(text), "--out-dir", str(tmp_path / "run"), "--max-iters", "3", *TINY]) == 0
    assert main(["export", "--out-dir", str(tmp_path / "run"), "--hf", str(tmp_path / "hf")]) == 0
    assert main(["export", "--out-dir", str(tmp_path / "run"), "--llmc", str(tmp_path / "m.bin")]) == 0
    ckpt, exported, from_llmc = (load.read(tmp_path / name) for name in ("run", "hf", "m.bin"))
    assert (ckpt.kind, exported.kind, from_llmc.kind) == (load.CHECKPOINT, load.HUGGING_FACE, load.LLMC)
    assert ckpt.path == tmp_path / "run" / "ckpt-000003" and ckpt.train.max_iters == 3  # the run's settings too
    assert exported.train is None and from_llmc.train is None
    assert exported.tokenizer == ckpt.tokenizer and from_llmc.tokenizer is None  # (llm.c's file holds none)
    idx = np.random.default_rng(0).integers(0, ckpt.config.vocab_size, size=(2, 16))
    logits = load.build_model(ckpt).forward(idx)[0]
    for pretrained in (ckpt, exported, from_llmc):
        assert pretrained.config.n_layer == 1 and pretrained.config.n_embd == 16 and pretrained.config.block_size == 16
        assert pretrained.weights.keys() == ckpt.weights.keys()
        model = load.build_model(pretrained)
        assert not model.training and model.dtype == np.float32
        np.testing.assert_array_equal(model.forward(idx)[0], logits)
    wide = load.build_model(ckpt, dtype=np.float64)  # cast where the model is built, once; what was read is as stored
    assert wide.dtype == np.float64 and all(a.dtype == np.float32 for a in ckpt.weights.values())
    assert all(np.array_equal(wide.params[name], a) for name, a in ckpt.weights.items())
    # a command that reads text says in one line that llm.c's file has no tokenizer; a fine-tune takes the data's
    code, err = cli(capsys, "sample", "--init-from", str(tmp_path / "m.bin"), "--max-new-tokens", "2")
    assert code == 1
    error_line(err, f"{tmp_path / 'm.bin'} has no tokenizer (llm.c's model file holds none)")
    code, err = cli(capsys, "train", "--data", str(text), "--init-from", str(tmp_path / "m.bin"), "--out-dir",
                    str(tmp_path / "ft"), "--max-iters", "1", "--batch-size", "4", "--eval-iters", "1")
    assert code == 0, err
    assert load.read(tmp_path / "ft").train.init_from == str(tmp_path / "m.bin")
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(NotADirectoryError, match="notes.txt is a file, and no llm.c model file; give a run directory"):
        load.read(tmp_path / "notes.txt")


@pytest.mark.parametrize("dtype", ["BF16", "F16"])
def test_half_precision_weights_are_widened_to_float32(model, tmp_path, dtype):
    """Hugging Face directories often ship BF16 or F16 weights; NumPy computes in float32."""
    hf.save_pretrained(model, tmp_path)
    weights = {name: p.astype(np.float32) for name, p in model.params.items()}
    if dtype == "F16":
        half = {name: w.astype(np.float16) for name, w in weights.items()}
        expected = {name: h.astype(np.float32) for name, h in half.items()}
    else:  # bfloat16: the high 16 bits of a float32 (truncated here; the reader must put them back in place)
        half = {name: (w.view(np.uint32) >> 16).astype(np.uint16) for name, w in weights.items()}
        expected = {name: (h.astype(np.uint32) << 16).view(np.float32) for name, h in half.items()}
    write_with_dtype(tmp_path / "model.safetensors", half, dtype)
    loaded = load.build_model(load.read(tmp_path))
    assert loaded.dtype == np.float32
    for name, e in expected.items():
        np.testing.assert_array_equal(loaded.params[name], e)
        assert np.abs(loaded.params[name] - weights[name]).max() <= np.abs(weights[name]).max() * 2**-7


def write_with_dtype(path, arrays, dtype):
    """A safetensors file whose arrays are stored as `dtype` (the library writes BF16 only from torch)."""
    header, offset, body = {}, 0, b""
    for name, a in arrays.items():
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        body += a.tobytes()
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + body)


@pytest.mark.parametrize("config, message", [
    ("null", "config.json must hold a JSON object, not NoneType"),
    ("[1, 2]", "config.json must hold a JSON object, not list"),
    ('{"n_layer": 2}', "config.json has no 'vocab_size'"),
    ("CONFIG+layer_norm_epsilon", "'layer_norm_epsilon' must be a number or null, got '1e-5'"),
    ("CONFIG+n_layer", "config.json says n_layer 1000000000 but the weights hold 2 blocks"),
    ("{", "config.json is not valid JSON"),
])
def test_a_damaged_config_json_is_named_in_one_line(model, tmp_path, config, message):
    hf.save_pretrained(model, tmp_path / "hf")
    good = json.loads((tmp_path / "hf" / "config.json").read_text())
    if config == "CONFIG+layer_norm_epsilon":
        config = json.dumps({**good, "layer_norm_epsilon": "1e-5"})
    elif config == "CONFIG+n_layer":
        config = json.dumps({**good, "n_layer": 10**9})
    (tmp_path / "hf" / "config.json").write_text(config)
    with pytest.raises(ValueError) as e:
        load.read(tmp_path / "hf")
    assert message in str(e.value) and str(tmp_path / "hf") in str(e.value)


def test_exports_never_overwrite_and_never_write_into_a_run(tmp_path, capsys):
    text = make_text(tmp_path / "t.txt", seed=0)
    run = tmp_path / "run"
    assert main(["train", "--data", str(text), "--out-dir", str(run), "--max-iters", "3", "--dtype", "float64", *TINY]) == 0
    ckpt = run / json.loads((run / "checkpoints.json").read_text())["latest"]
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    for target in ([ "--hf", str(run)], ["--hf", str(ckpt)], ["--hf", str(run / "hf")], ["--llmc", str(ckpt / "m.bin")]):
        assert main(["export", "--out-dir", str(run), *target, "--force"]) == 1
        assert "is inside the run directory" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # the float64 run still resumes
    (tmp_path / "m.bin").write_bytes(b"mine")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    assert main(["export", "--out-dir", str(run), "--llmc", str(tmp_path / "m.bin")]) == 1
    assert "exists; choose another name, or give --force" in capsys.readouterr().err
    assert main(["export", "--out-dir", str(run), "--hf", str(tmp_path / "full")]) == 1
    assert "is not empty; choose a new directory, or give --force" in capsys.readouterr().err
    assert (tmp_path / "m.bin").read_bytes() == b"mine" and sorted(p.name for p in (tmp_path / "full").iterdir()) == ["notes.txt"]
    assert main(["export", "--out-dir", str(run), "--llmc", str(tmp_path / "m.bin"), "--force"]) == 0
    assert main(["export", "--out-dir", str(run), "--hf", str(tmp_path / "full"), "--force"]) == 0
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"  # --force writes its files, and leaves the others
    assert load.read(tmp_path / "m.bin").config.n_embd == 16 and load.read(tmp_path / "full").config.n_embd == 16
    train_again = ["train", "--resume", "--out-dir", str(run), "--max-iters", "4"]
    assert main(train_again) == 0
