"""Data: the tokenizers (characters, byte-level BPE), text datasets (Tiny Shakespeare by default) and
synthetic tasks."""

import json

from minigpt.data.bpe import BPETokenizer
from minigpt.data.chars import CharTokenizer
from minigpt.data.tasks import AddTask, SortTask
from minigpt.data.text import TextDataset

__all__ = ["AddTask", "BPETokenizer", "CharTokenizer", "SortTask", "TextDataset", "tokenizer_from_json"]


def tokenizer_from_json(text: str):
    """A tokenizer saved with to_json (a checkpoint's tokenizer.json): characters or byte-level BPE."""
    kind = json.loads(text).get("type")
    if kind == "char":
        return CharTokenizer.from_json(text)
    if kind == "bpe":
        return BPETokenizer.from_json(text)
    raise ValueError(f"unknown tokenizer type {kind!r}; expected \"char\" or \"bpe\"")
