"""Data: the tokenizers (characters, byte-level BPE) and how they are saved, and the datasets, every one of them a
Dataset drawing Batches (minigpt/data/dataset.py, the protocol): text (Tiny Shakespeare by default), synthetic tasks,
and records for fine-tuning (minigpt/data/record_datasets.py)."""

from pathlib import Path

from minigpt.data.bpe import BYTE_TO_CHAR, CHAR_TO_BYTE, BPETokenizer, check_vocab, read_text
from minigpt.data.chars import CharTokenizer
from minigpt.data.chat_template import ChatTemplate, from_file
from minigpt.data.dataset import Batch, Dataset
from minigpt.data.hf_tokenizer import HFTokenizer
from minigpt.data.tasks import AddTask, SortTask
from minigpt.data.text import TextDataset
from minigpt.validate import check_object, read_json

__all__ = ["AddTask", "BPETokenizer", "Batch", "CharTokenizer", "Dataset", "HFTokenizer", "SortTask", "TextDataset", "load_tokenizer",
           "tokenizer_from_dict"]


def tokenizer_from_dict(d, where: str = "tokenizer.json"):
    """A tokenizer from to_json's object (a checkpoint's tokenizer.json): characters, byte-level BPE, or a Hugging
    Face tokenizer.json kept whole."""
    check_object(d, where, {"type": str})
    if d["type"] == "char":
        return CharTokenizer.from_dict(d, where)
    if d["type"] == "bpe":
        return BPETokenizer.from_dict(d, where)
    if d["type"] == "hf":
        return HFTokenizer.from_dict(d, where)
    raise ValueError(f"{where}: unknown tokenizer type {d['type']!r} (minigpt writes \"char\", \"bpe\" or \"hf\")")


def load_tokenizer(directory):
    """The tokenizer saved in a directory, or None if there is none: minigpt's tokenizer.json (a checkpoint, or
    `minigpt tokenizer train`), a Hugging Face tokenizer.json (with its tokenizer_config.json: what transformers'
    fast tokenizers read first), or GPT-2's vocab.json and merges.txt. A vocab.json (or tokenizer.json) of single
    bytes without merges is a character vocabulary, as `minigpt export --hf` writes a character model's."""
    directory = Path(directory)
    own = directory / "tokenizer.json"
    if own.is_file():
        d = read_json(own)
        if not (isinstance(d, dict) and "model" in d and "type" not in d):
            return tokenizer_from_dict(d, str(own))
        config = directory / "tokenizer_config.json"  # Hugging Face's fast-tokenizer file
        config = read_json(config) if config.is_file() else {}
        if not isinstance(config, dict):
            raise ValueError(f"{directory / 'tokenizer_config.json'} is not a JSON object; the file is damaged")
        template = chat_template_in(directory, config)
        model = d["model"] if isinstance(d["model"], dict) else {}
        if not model.get("merges") and isinstance(model.get("vocab"), dict) \
                and sum(len(t) == 1 and t in CHAR_TO_BYTE for t in model["vocab"]) < 256:
            # single bytes without merges: a character vocabulary, as vocab.json's below (a classifier's export)
            return char_vocabulary(check_vocab(model["vocab"], own), own, template)
        if template is not None:  # (a list of named templates stays as it is, for export)
            config["chat_template"] = template
        return HFTokenizer(d, config, str(own))
    vocab_json, merges_txt = directory / "vocab.json", directory / "merges.txt"
    if not (vocab_json.is_file() and merges_txt.is_file()):
        return None
    merges = [line for line in read_text(merges_txt).splitlines() if line.strip() and not line.startswith("#version")]
    vocab = check_vocab(read_json(vocab_json), vocab_json)
    config = directory / "tokenizer_config.json"
    config = read_json(config) if config.is_file() else {}
    template = chat_template_in(directory, config if isinstance(config, dict) else {})
    single = [t for t in vocab if len(t) == 1 and t in CHAR_TO_BYTE]
    if not merges and len(single) < 256:
        return char_vocabulary(vocab, vocab_json, template)
    tokenizer = BPETokenizer.from_gpt2_files(vocab_json, merges_txt)
    tokenizer.chat_template = template
    return tokenizer


def chat_template_in(directory: Path, config: dict) -> ChatTemplate | None:
    """A Hugging Face directory's chat template: chat_template.jinja, where transformers 5 writes it, else
    tokenizer_config.json's chat_template (a string), named by its file for errors."""
    template = directory / "chat_template.jinja"
    if template.is_file():
        return ChatTemplate(read_text(template), f"the chat template {template}")
    return from_file(config.get("chat_template"), directory / "tokenizer_config.json")


def char_vocabulary(vocab: dict, where, chat_template: str | None = None) -> CharTokenizer:
    """The character tokenizer of a vocab.json of single bytes, ids 0..n-1 in the characters' order, then its special
    tokens (the reverse of minigpt.hf.write_char_vocab)."""
    order = sorted(vocab, key=vocab.get)
    n = sum(1 for t in order if len(t) == 1)
    if [vocab[t] for t in order] != list(range(len(order))) or not all(len(t) == 1 and t in CHAR_TO_BYTE for t in order[:n]) \
            or any(len(t) == 1 for t in order[n:]):
        raise ValueError(f"{where} is neither a byte-level BPE vocabulary (it has no merges and not all 256 bytes) "
                         f"nor a character vocabulary minigpt reads (single bytes, ids 0..n-1 in order, then special tokens)")
    try:
        return CharTokenizer("".join(chr(CHAR_TO_BYTE[t]) for t in order[:n]), order[n:], chat_template)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


assert all(BYTE_TO_CHAR[CHAR_TO_BYTE[c]] == c for c in CHAR_TO_BYTE)  # the two maps are each other's inverse
