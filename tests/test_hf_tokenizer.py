"""Hugging Face tokenizer.json files encode as the `tokenizers` library encodes them: pipelines shaped like those of
SmolLM 2 (digits one by one, GPT-2's split), Qwen 3 (NFC, its own split regex, added tokens of the chat format) and
Llama 3 (its split regex, ignore_merges, <|begin_of_text|> added by the post-processor), each trained here on Tiny
Shakespeare with `tokenizers`; then whole model directories of those shapes, made by transformers, through
minigpt's loading, sampling and export."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, error_line
from hypothesis import given
from hypothesis import strategies as st

from minigpt import load
from minigpt.cli import main
from minigpt.data import HFTokenizer, load_tokenizer
from minigpt.data.bpe import BYTE_TO_CHAR

tokenizers = pytest.importorskip("tokenizers")
SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
# the split regexes of Qwen 2/3 and Llama 3 as their tokenizer.json files give them
QWEN_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
ADDED = {
    "smollm2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    "qwen3": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    "gpt2-prefix": ["<|endoftext|>"],
}
NOT_SPECIAL = {"qwen3": ["<think>", "</think>"]}  # added tokens that are not special (Qwen 3's reasoning markers)


def corpus() -> str:
    """Shakespeare, and numbers: so that merges of digits exist, which splitting digits one by one must prevent."""
    numbers = " ".join(str(n) for n in range(0, 20_000, 7))
    if SHAKESPEARE.is_file():
        return SHAKESPEARE.read_text(encoding="utf-8")[:200_000] + numbers
    return "First Citizen:\nBefore we proceed any further, hear me speak.\ndon't we'll\n" * 500 + numbers


def build(kind: str, vocab_size: int = 800):
    """A tokenizers.Tokenizer with the pipeline of `kind`, trained on the corpus."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    t = Tokenizer(models.BPE(ignore_merges=kind == "llama3"))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if kind == "smollm2":  # (trained without the digit split, so that merges of digits exist for it to prevent)
        t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif kind == "qwen3":
        t.normalizer = normalizers.NFC()
        t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"), byte_level])
    elif kind == "llama3":
        t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"), byte_level])
    else:  # GPT-2's own, with a space added in front of the text
        t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=ADDED[kind], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t.train_from_iterator([corpus()], trainer)
    t.add_tokens(NOT_SPECIAL.get(kind, []))
    if kind == "smollm2":
        t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    if kind == "llama3":
        t.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[
            ("<|begin_of_text|>", t.token_to_id("<|begin_of_text|>"))])
    return t


KINDS = list(ADDED)


@pytest.fixture(scope="module", params=KINDS)
def pair(request):
    theirs = build(request.param)
    return request.param, theirs, HFTokenizer(json.loads(theirs.to_str()))


def texts():
    """Text where the pipelines differ: digits, runs of spaces and newlines, apostrophes, accents in both normal
    forms, letters of other scripts, emoji, and the added tokens themselves."""
    pieces = st.sampled_from(["1", "23", "4567", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "’", "e\u0301", "é", "ﬁ",
                              "Ω", "日本", "🙂", "ROMEO:", " thou", "<|", "|>", *sum(ADDED.values(), []), "<think>"])
    return st.lists(st.one_of(pieces, st.text(max_size=8)), max_size=12).map("".join)


@given(text=texts())
def test_encoding_equals_the_tokenizers_library(pair, text):
    _, theirs, ours = pair
    assert ours.encode(text) == theirs.encode(text, add_special_tokens=False).ids
    assert ours.encode(text, add_special_tokens=True) == theirs.encode(text).ids


def test_shakespeare_encodes_alike_and_decodes_back(pair):
    kind, theirs, ours = pair
    text = (SHAKESPEARE.read_text(encoding="utf-8")[-20_000:] if SHAKESPEARE.is_file() else corpus()[:20_000])
    assert len(ours.encode(text)) < len(text) / 2  # merges are used: not byte by byte
    text += " ".join(str(n) for n in range(3, 5000, 11))  # numbers the tokenizer has merges for
    ids = ours.encode(text)
    assert ids == theirs.encode(text, add_special_tokens=False).ids
    prefix = " " if kind == "gpt2-prefix" and not text.startswith(" ") else ""  # add_prefix_space
    assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=False) == prefix + text


def test_the_merge_rule_is_the_listed_pair_not_any_concatenation():
    # "abc" is made by the merge (ab, c); with (b, c) ranked first, "abc" splits a|bc and stays so in tokenizers,
    # although a + bc = abc is a token: tiktoken's rule would merge it
    vocab = {BYTE_TO_CHAR[b]: b for b in range(256)}
    vocab.update({"bc": 256, "ab": 257, "abc": 258})
    spec = {"model": {"type": "BPE", "vocab": vocab, "merges": ["b c", "a b", "ab c"]},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "added_tokens": []}
    theirs = tokenizers.Tokenizer.from_str(json.dumps(spec))
    assert HFTokenizer(spec).encode("abc") == theirs.encode("abc").ids == [ord("a"), 256]
    spec["model"]["ignore_merges"] = True  # Llama 3's: a piece that is a token is taken whole, before any merge
    theirs = tokenizers.Tokenizer.from_str(json.dumps(spec))
    assert HFTokenizer(spec).encode("abc") == theirs.encode("abc").ids == [258]


@pytest.mark.parametrize("change, message", [
    (lambda s: s["model"].update(byte_fallback=True), "model.byte_fallback is True"),
    (lambda s: s.update(pre_tokenizer={"type": "Metaspace", "replacement": "▁"}), "pre_tokenizer 'Metaspace'"),
    (lambda s: s.update(normalizer={"type": "Lowercase"}), "normalizer 'Lowercase'"),
    (lambda s: s["added_tokens"][0].update(lstrip=True), "sets lstrip, rstrip or single_word"),
    (lambda s: s["model"]["vocab"].pop("Ġ"), "byte 32 is not a token"),
    (lambda s: s["model"].update(type="WordPiece"), "its model is 'WordPiece'"),
])
def test_what_minigpt_cannot_compute_is_refused_by_name(change, message):
    spec = json.loads(build("gpt2-prefix", 300).to_str())
    change(spec)
    with pytest.raises(ValueError, match="byte-level BPE tokenizers") as e:
        HFTokenizer(spec, where="tok/tokenizer.json")
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("change, message", [
    (lambda s: s["model"]["vocab"].update({"Ġthe": "7"}), "must map each token to a non-negative integer id"),
    (lambda s: s["model"].update(merges={}), "model.merges must be a list"),
    (lambda s: s.update(post_processor={"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}],
                                        "special_tokens": {}}), "names a special token it does not define"),
    (lambda s: s["added_tokens"].append({"content": 5}), "an added token is not an object with a content and an id"),
])
def test_a_damaged_file_is_one_line_saying_so(change, message):
    spec = json.loads(build("gpt2-prefix", 300).to_str())
    change(spec)
    with pytest.raises(ValueError, match=message) as e:
        HFTokenizer(spec, where="tok/tokenizer.json")
    assert "tok/tokenizer.json" in str(e.value) and "\n" not in str(e.value)


# --- whole directories: a model and its tokenizer, as transformers writes them --------------------------------------

SHAPES = {  # the real models' settings, at small sizes where the shape allows
    "smollm2": ("LlamaForCausalLM", dict(hidden_size=72, num_hidden_layers=2, num_attention_heads=9, num_key_value_heads=3,
                                         intermediate_size=192, tie_word_embeddings=True, rope_theta=100000.0,
                                         rms_norm_eps=1e-5, max_position_embeddings=128)),
    "qwen3": ("Qwen3ForCausalLM", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                       head_dim=16, intermediate_size=96, tie_word_embeddings=True, rope_theta=1000000.0,
                                       rms_norm_eps=1e-6, max_position_embeddings=128)),
    "llama3": ("LlamaForCausalLM", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                                        intermediate_size=224, tie_word_embeddings=False, rope_theta=500000.0,
                                        rms_norm_eps=1e-5, max_position_embeddings=128,
                                        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
}
CHAT_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"


def model_directory(transformers, torch, kind, path: Path, bf16=False):
    """A directory as the hub holds one: a model of the family's shape (random weights) and its tokenizer."""
    theirs = build(kind)
    cls, shape = SHAPES[kind]
    config = getattr(transformers, cls.replace("ForCausalLM", "Config"))(vocab_size=theirs.get_vocab_size(), **shape)
    torch.manual_seed(0)
    model = getattr(transformers, cls)(config).eval()
    with torch.no_grad():
        for p in model.parameters():  # away from the initialisation, so that greedy choices are clear-cut
            p.add_(torch.randn_like(p) * 0.2)
    if bf16:
        model = model.to(torch.bfloat16)
    model.save_pretrained(path, max_shard_size="100KB" if bf16 else "1GB")
    roles = {"llama3": ("<|begin_of_text|>", "<|eot_id|>")}.get(kind, ("<|endoftext|>", "<|im_end|>"))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=theirs, bos_token=roles[0], eos_token=roles[1])
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return model, theirs


@pytest.mark.parametrize("kind", SHAPES)
def test_a_model_directory_of_each_family_reads_with_its_tokenizer(kind, transformers, torch, tmp_path):
    model, theirs = model_directory(transformers, torch, kind, tmp_path / "hub", bf16=kind == "llama3")
    if kind == "llama3":
        assert (tmp_path / "hub" / "model.safetensors.index.json").is_file()  # sharded, bfloat16
    tokenizer = load_tokenizer(tmp_path / "hub")
    text = "ROMEO:\nI'll speak 1234 words, thou art 5 times blest.\n<|im_start|>user"
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "hub")
    assert tokenizer.encode(text) == auto.encode(text, add_special_tokens=False)
    assert tokenizer.encode(text, add_special_tokens=True) == auto.encode(text)
    ours = load.build_model(load.read(tmp_path / "hub"))
    idx = np.array([tokenizer.encode(text)])
    with torch.no_grad():
        logits = model.float()(torch.from_numpy(idx)).logits.numpy()
    np.testing.assert_allclose(ours.forward(idx)[0], logits, rtol=1e-4, atol=1e-4 * np.abs(logits).max())


def test_sample_train_and_export_keep_the_tokenizer_and_its_chat_template(transformers, torch, tmp_path, capsys):
    model_directory(transformers, torch, "qwen3", tmp_path / "hub")
    capsys.readouterr()
    assert main(["sample", "--init-from", str(tmp_path / "hub"), "--prompt", "ROMEO:", "--max-new-tokens", "5",
                 "--num-samples", "1"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")
    code, err = cli(capsys, "inspect", "--init-from", str(tmp_path / "hub"), "--prompt", "ROMEO: speak 12",
                    "--html", str(tmp_path / "page.html"))
    assert code == 0, err
    assert "layer 1 head 3 kv 1" in (tmp_path / "page.html").read_text()  # 4 query heads on 2 key/value heads
    data = tmp_path / "text.txt"
    data.write_text(corpus()[:20_000], encoding="utf-8")
    code, err = cli(capsys, "train", "--init-from", str(tmp_path / "hub"), "--data", str(data), "--out-dir",
                    str(tmp_path / "run"), "--max-iters", "2", "--eval-interval", "2", "--eval-iters", "1",
                    "--batch-size", "2", "--block-size", "32")
    assert code == 0, err
    code, err = cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--hf", str(tmp_path / "out"))
    assert code == 0, err
    exported = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    original = transformers.AutoTokenizer.from_pretrained(tmp_path / "hub")
    text = "<|im_start|>user\nSpeak 42 times, é\u0301<|im_end|>"
    assert exported.encode(text) == original.encode(text)
    assert exported.chat_template == CHAT_TEMPLATE
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["eos_token_id"] == original.convert_tokens_to_ids("<|im_end|>")
    assert config["bos_token_id"] == original.convert_tokens_to_ids("<|endoftext|>")


def test_a_damaged_tokenizer_json_is_one_line(tmp_path, capsys, transformers, torch):
    model_directory(transformers, torch, "smollm2", tmp_path / "hub")
    spec = json.loads((tmp_path / "hub" / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁"}
    (tmp_path / "hub" / "tokenizer.json").write_text(json.dumps(spec))
    code, err = cli(capsys, "sample", "--init-from", str(tmp_path / "hub"), "--max-new-tokens", "2")
    assert code != 0
    error_line(err, "tokenizer.json", "Metaspace")
