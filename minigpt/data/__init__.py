"""Data: the character tokenizer, text datasets (Tiny Shakespeare by default) and synthetic tasks."""

from minigpt.data.chars import CharTokenizer
from minigpt.data.tasks import AddTask, SortTask
from minigpt.data.text import TextDataset

__all__ = ["AddTask", "CharTokenizer", "SortTask", "TextDataset"]
