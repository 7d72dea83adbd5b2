"""Exports used as the users of transformers and peft use them: adapters of a fine-tune that added tokens, loaded
exactly as PEFT's documentation says (the base resized to the tokenizer saved beside the adapters), and a classifier
read by pipeline("text-classification"), whose exported tokenizer appends <|extract|> itself."""

import json
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import cli, require
import minigpt.peft
from minigpt import GPT, GPTConfig, hf, load, weights
from minigpt.data import BPETokenizer, CharTokenizer, load_tokenizer
from minigpt.data.record_datasets import open_records
from minigpt.data.records import EOT, EXTRACT
from minigpt.data.text import encode_text
from minigpt.model import FAMILIES, HEAD, SCORE
from tolerances import TORCH_RTOL_FLOAT32, TORCH_RTOL_FLOAT64

SHAPE = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "48"]
STEPS = ["--max-iters", "2", "--eval-iters", "1", "--batch-size", "4", "--backend", "numpy", "--learning-rate", "1e-2"]
TEXT = "the king and the queen of night, thou art good lord, sweet prince.\n" * 40
PHRASES = ["the king", "the queen", "of night", "thou art", "good lord", "sweet prince"]


def rel_err(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def instructions(path):
    """Prompt and completion records: fine-tuning on them adds <|endoftext|> to a character vocabulary."""
    return write_jsonl(path, [{"prompt": p + " ", "completion": q} for p in PHRASES for q in PHRASES])


def classification(path):
    """Text and label records, labels by the words in the text."""
    rng = np.random.default_rng(0)
    records = []
    for _ in range(24):
        text = " ".join(rng.choice(PHRASES, size=rng.integers(1, 4)))
        records.append({"text": text, "label": "king" if "king" in text else "queen" if "queen" in text else "other"})
    return write_jsonl(path, records)


def pretrained(tmp_path, capsys, arch):
    """A character model pretrained on TEXT, and its Hugging Face export: the base of a fine-tune."""
    (tmp_path / "t.txt").write_text(TEXT)
    code, err = cli(capsys, "train", "--data", str(tmp_path / "t.txt"), "--out-dir", str(tmp_path / "base"),
                    "--arch", arch, *SHAPE, *STEPS)
    assert code == 0, err
    assert cli(capsys, "export", "--out-dir", str(tmp_path / "base"), "--hf", str(tmp_path / "BASE"))[0] == 0
    return tmp_path / "BASE"


def fine_tune(tmp_path, capsys, data):
    """A LoRA fine-tune of the pretrained run on `data`, its adapters exported as PEFT saves them."""
    code, err = cli(capsys, "train", "--data", str(data), "--init-from", str(tmp_path / "base"), "--out-dir",
                    str(tmp_path / "run"), "--lora-rank", "2", "--lora-targets", "all", *STEPS)
    assert code == 0, err
    assert cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--peft", str(tmp_path / "ADAPTERS"))[0] == 0
    return tmp_path / "ADAPTERS"


@pytest.mark.parametrize("arch", ["gpt2", "llama"])  # a tied LM head, and an untied one that grows too
def test_adapters_of_a_fine_tune_that_added_tokens_load_in_peft_as_its_documentation_says(arch, transformers, torch,
                                                                                             tmp_path, capsys):
    peft = require("peft")
    base_dir = pretrained(tmp_path, capsys, arch)
    adapters = fine_tune(tmp_path, capsys, instructions(tmp_path / "i.jsonl"))
    run = load.read(tmp_path / "run")
    ours, tokenizer = load.build_model(run), run.tokenizer
    # the user's side: the base, resized to the tokenizer saved with the adapters, then the adapters
    theirs_tokenizer = transformers.AutoTokenizer.from_pretrained(adapters)
    base = transformers.AutoModelForCausalLM.from_pretrained(base_dir)
    assert base.get_input_embeddings().weight.shape[0] == len(theirs_tokenizer) - 1
    base.resize_token_embeddings(len(theirs_tokenizer))
    theirs = peft.PeftModel.from_pretrained(base, adapters).eval()
    text = "the king and<|endoftext|>thou art good"
    ids = theirs_tokenizer(text)["input_ids"]
    assert ids == tokenizer.encode(text).tolist()
    idx = np.array([ids])
    with torch.no_grad():
        logits = theirs(torch.from_numpy(idx)).logits.numpy()
    assert rel_err(ours.forward(idx)[0], logits) < TORCH_RTOL_FLOAT32
    # the new rows are the fine-tune's, not resize_token_embeddings' draw around the mean
    wte = FAMILIES[arch].WTE
    np.testing.assert_array_equal(theirs.get_input_embeddings().weight.detach().numpy(), ours.params[wte])
    head = ours.params[wte] if ours.config.tie_word_embeddings else ours.params[HEAD]
    np.testing.assert_array_equal(theirs.get_output_embeddings().weight.detach().numpy(), head)
    # and minigpt reads the base and the adapters back as the run
    assert ours.config.lora_added_tokens == 1 and EOT in tokenizer.special_tokens  # <|endoftext|>, a row of its own
    adapted = load.with_adapters(load.read(base_dir), adapters)
    assert adapted.tokenizer == tokenizer  # the one saved beside the adapters, which has the token the fine-tune added
    back = load.build_model(adapted)
    assert back.config == replace(ours.config, lora_targets=back.config.lora_targets)  # (named module by module)
    np.testing.assert_array_equal(back.forward(idx)[0], ours.forward(idx)[0])


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_adapters_of_a_classifier_load_in_peft_with_its_head_and_the_extract_token(arch, transformers, torch, tmp_path,
                                                                                  capsys):
    peft = require("peft")
    base_dir = pretrained(tmp_path, capsys, arch)
    data = classification(tmp_path / "c.jsonl")
    adapters = fine_tune(tmp_path, capsys, data)
    run = load.read(tmp_path / "run")
    ours, tokenizer = load.build_model(run), run.tokenizer
    assert json.loads((adapters / "adapter_config.json").read_text())["modules_to_save"] == ["score"]
    theirs_tokenizer = transformers.AutoTokenizer.from_pretrained(adapters)
    base = transformers.AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=3)
    base.resize_token_embeddings(len(theirs_tokenizer))
    theirs = peft.PeftModel.from_pretrained(base, adapters).eval()
    records = open_records(data, tokenizer, ours.config.labels)
    for e, r in zip(records.examples[:6], (json.loads(line) for line in data.read_text().splitlines())):
        ids = theirs_tokenizer(r["text"])["input_ids"]
        assert ids == e.ids.tolist() and ids[-1] == tokenizer.special_tokens[EXTRACT]  # appended by the tokenizer
        idx, last = np.array([ids]), np.array([len(ids) - 1])
        with torch.no_grad():
            scores = theirs(torch.from_numpy(idx)).logits.numpy()
        assert rel_err(ours.forward(idx, last=last)[0], scores) < TORCH_RTOL_FLOAT32
    # minigpt reads them back, on the language model they were trained from, as the run
    assert ours.config.lora_added_tokens == 2  # <|endoftext|>, which pads, and <|extract|>
    back = load.build_model(load.with_adapters(load.read(base_dir), adapters, labels=ours.config.labels))
    batch = records.batch(records.examples)
    x, last = batch.x, batch.last
    np.testing.assert_array_equal(back.forward(x, last=last)[0], ours.forward(x, last=last)[0])
    # a resumed run still knows which rows it added
    assert cli(capsys, "train", "--resume", "--out-dir", str(tmp_path / "run"), "--max-iters", "3")[0] == 0
    assert load.read(tmp_path / "run", "latest").config.lora_added_tokens == 2


def classifier_run(kind, tmp_path, capsys, transformers, torch):
    """A classification run whose tokenizer is minigpt's characters, minigpt's byte-level BPE, or a Hugging Face
    tokenizer.json with a BOS template of its own (Llama 3's)."""
    data = classification(tmp_path / "c.jsonl")
    run = ["train", "--data", str(data), "--out-dir", str(tmp_path / "run"), *STEPS]
    if kind == "char":
        code, err = cli(capsys, *run, *SHAPE)
    elif kind == "bpe":
        (tmp_path / "t.txt").write_text(TEXT)
        assert cli(capsys, "tokenizer", "train", "--data", str(tmp_path / "t.txt"), "--vocab-size", "300", "--out",
                   str(tmp_path / "tok"))[0] == 0
        code, err = cli(capsys, *run, *SHAPE, "--tokenizer", str(tmp_path / "tok"))
    else:
        from test_hf_tokenizer import model_directory

        model_directory(transformers, torch, "llama3", tmp_path / "hub")
        code, err = cli(capsys, *run, "--init-from", str(tmp_path / "hub"))
    assert code == 0, err
    return data


@pytest.mark.parametrize("kind", ["char", "bpe", "hf"])
def test_an_exported_classifier_predicts_in_pipeline_as_in_minigpt_eval(kind, transformers, torch, tmp_path, capsys):
    data = classifier_run(kind, tmp_path, capsys, transformers, torch)
    exported = tmp_path / "CLS"
    code, err = cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--hf", str(exported))
    assert code == 0, err
    texts = [json.loads(line)["text"] for line in data.read_text().splitlines()]
    # as its users call it
    pipe = transformers.pipeline("text-classification", model=str(exported))
    one_by_one = pipe(texts, top_k=None)
    # minigpt's scores of the same records, from the same directory
    from_export = load.read(exported)
    model, tokenizer = load.build_model(from_export), from_export.tokenizer
    records = open_records(data, tokenizer, model.config.labels)
    batch = records.batch(records.examples)
    x, last = batch.x, batch.last
    scores, _ = model.forward(x, last=last)
    probabilities = np.exp(scores - scores.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)

    def theirs(out):  # the pipeline's probabilities, in the order of the model's labels
        return [[{d["label"]: d["score"] for d in o}[name] for name in model.config.labels] for o in out]

    np.testing.assert_allclose(theirs(one_by_one), probabilities, rtol=TORCH_RTOL_FLOAT32, atol=TORCH_RTOL_FLOAT32)
    batched = pipe(texts, top_k=None, batch_size=5)  # padded on the right with the tokenizer's pad token
    np.testing.assert_allclose(theirs(batched), probabilities, rtol=TORCH_RTOL_FLOAT32, atol=TORCH_RTOL_FLOAT32)
    # the tokenizer appends <|extract|> itself, where minigpt's records end
    auto = transformers.AutoTokenizer.from_pretrained(exported)
    assert [auto(t)["input_ids"] for t in texts] == [e.ids.tolist() for e in records.examples]
    # and minigpt eval's accuracy is the pipeline's
    code, err = cli(capsys, "eval", "--out-dir", str(exported), "--data", str(data), "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    truth = [json.loads(line)["label"] for line in data.read_text().splitlines()]
    predicted = [max(o, key=lambda d: d["score"])["label"] for o in one_by_one]
    accuracy = json.loads((tmp_path / "e.json").read_text())["accuracy"]
    assert accuracy == pytest.approx(np.mean([p == t for p, t in zip(predicted, truth)]))


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_an_exported_classifiers_tokenizer_encodes_any_text_as_minigpts_records(kind, transformers, tmp_path):
    from helpers import CORPUS

    if kind == "char":
        tokenizer = CharTokenizer("".join(sorted(set(TEXT + "'!?\t")))).with_chat([EOT, EXTRACT], None)
        alphabet = sorted(set(TEXT + "'!?\t"))
    else:
        tokenizer = BPETokenizer.train(CORPUS, vocab_size=320).with_chat([EOT, EXTRACT], None)
        alphabet = sorted(set(CORPUS)) + ["<|endoftext|>", "  ", "\n\n", "1234"]
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=1, n_head=1, n_embd=8, labels=("a", "b"))
    hf.save_pretrained(GPT(config), tmp_path, tokenizer)
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path)
    extract = tokenizer.special_tokens[EXTRACT]

    @given(st.lists(st.sampled_from(alphabet), min_size=1, max_size=40).map("".join))
    @settings(max_examples=150, deadline=None)
    def encodes_alike(text):
        assert auto(text)["input_ids"] == [*encode_text(tokenizer, text).tolist(), extract]

    encodes_alike()
    assert load_tokenizer(tmp_path) == hf.exported_tokenizer(tokenizer, config)  # minigpt reads back what it wrote


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_adapters_peft_saved_for_a_grown_vocabulary_load_into_minigpt_with_peft_logits(arch, transformers, torch,
                                                                                        tmp_path):
    peft = require("peft")
    from test_torch_llama import float64_exact

    V, added = 11, 2
    if arch == "gpt2":
        config = transformers.GPT2Config(vocab_size=V, n_positions=8, n_embd=8, n_layer=2, n_head=2)
        targets = ["c_attn", "c_proj"]
    else:
        config = transformers.LlamaConfig(vocab_size=V, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                                          num_attention_heads=2, max_position_embeddings=8, tie_word_embeddings=False)
        targets = ["q_proj", "v_proj", "down_proj"]
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).to(torch.float64).save_pretrained(tmp_path / "base")
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype=torch.float64)
    model.resize_token_embeddings(V + added)  # the user's new tokens
    model = peft.get_peft_model(model, peft.LoraConfig(r=2, lora_alpha=4, target_modules=targets))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.3)
        for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
            layer.weight[V:] = torch.randn(added, 8, dtype=torch.float64)  # rows as training made them
    model.save_pretrained(tmp_path / "adapters")  # PEFT saves the embedding layers whole: the vocabulary grew
    ours = load.build_model(load.with_adapters(load.read(tmp_path / "base"), tmp_path / "adapters"), dtype=np.float64)
    assert ours.config.vocab_size == V + added and ours.config.lora_added_tokens == added
    idx = np.random.default_rng(0).integers(0, V + added, size=(2, 8))
    model = model.eval()
    exact = float64_exact(torch, model.base_model.model, ours, np.float64) if arch == "llama" else nullcontext()
    with exact, torch.no_grad():  # (Llama's norms and rotations in float64, as minigpt computes them)
        logits = model(torch.from_numpy(idx)).logits.numpy()
    assert rel_err(ours.forward(idx)[0], logits) < TORCH_RTOL_FLOAT64


def test_adapters_that_replace_another_layer_or_shrink_the_vocabulary_are_refused_naming_the_file(tmp_path):
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, lora_rank=2, lora_added_tokens=2)
    for wrong in (dict(lora_rank=None, lora_alpha=None, lora_targets=None), dict(lora_added_tokens=11),
                  dict(lora_added_tokens=-1)):
        with pytest.raises(ValueError, match="lora_added_tokens"):  # LoRA's, and fewer than the rows there are
            GPTConfig(**{**config.to_dict(), **wrong})
    model = GPT(config, seed=0)
    base = minigpt.peft.peft_base(config)
    with pytest.raises(ValueError, match="added 2 tokens"):  # their rows cannot be left out
        minigpt.peft.save_peft(config, model.params, tmp_path)
    for name, tensor, message in [("transformer.h.0.mlp.c_fc.weight", np.zeros((8, 32)), "holds the whole layer"),
                                  ("transformer.wte.weight", np.zeros((7, 8)), "at least the base model's vocabulary")]:
        directory = tmp_path / name.split(".")[-2]
        directory.mkdir()
        minigpt.peft.save_peft(config, model.params, directory, hf.embedding_layers(config, model.params))
        tensors = weights.read(directory / minigpt.peft.WEIGHTS)
        tensors[minigpt.peft.PEFT_PREFIX + name] = tensor.astype(np.float32)
        weights.write(directory / minigpt.peft.WEIGHTS, tensors, metadata={"format": "pt"})
        with pytest.raises(ValueError, match=message) as e:
            load.read_adapters(directory, base)
        assert str(directory / minigpt.peft.WEIGHTS) in str(e.value)
    # written whole, they read back as the model they came from
    directory = tmp_path / "whole"
    directory.mkdir()
    minigpt.peft.save_peft(config, model.params, directory, hf.embedding_layers(config, model.params))
    back, arrays = load.read_adapters(directory, base)
    assert back.vocab_size == 11 and back.lora_added_tokens == 2 and HEAD not in arrays  # (the tied head's copy)
    assert SCORE not in arrays
    np.testing.assert_array_equal(arrays["transformer.wte.weight"], model.params["transformer.wte.weight"])


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_a_model_without_an_end_token_exports_no_end_token_id(arch, transformers, tmp_path):
    tokenizer = CharTokenizer("abcdefgh")  # no <|endoftext|>: GPT-2's default 50256, or Llama's 2 ('c'), would be used
    model = GPT(GPTConfig(arch=arch, vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8))
    hf.save_pretrained(model, tmp_path, tokenizer)
    config = transformers.AutoConfig.from_pretrained(tmp_path)
    assert config.eos_token_id is None and config.bos_token_id is None
