"""What training and evaluation need of data, whatever it is: one protocol, `Dataset`, and one batch type, `Batch`.

Every dataset implements the same few methods, so that no caller asks which kind it has:

    dataset.fit(block_size, truncate)     the context, given once; returns what to tell the user (lines)
    dataset.sequence_length               T, the longest row of a batch (known once fitted)
    dataset.get_batch(split, B, rng)      a Batch of B rows of the split ("train" or "val"), drawn with rng
    dataset.split_size(split)             how much the split holds, of what, and how much of it a row reads
    dataset.accuracy(model, split)        the held-out score the run reports with its losses, or None
    dataset.bits_per_byte(loss, split)    the split's loss per token as bits per byte of its text, or None
    dataset.what_next(out_dir)            the command that shows what a run on it learned
    dataset.tokenizer, .vocab_size        its vocabulary (a fine-tune's is the model's, with what the data adds)
    dataset.source                        what to call it in messages
    dataset.identity                      a file's size and SHA-256, saved with a run to check a resume; or None
    dataset.labels                        a classifier's class names, in order; None for a language model
    dataset.kind                          records' kind ("instruction", "preference", ...); None for a text or task
    dataset.keep_reference(model, saved, resumed)   preference pairs: the reference's log-probabilities, kept

The kinds, each a subclass: a text read in windows (minigpt/data/text.py), a tokenized corpus read in windows of its
memory-mapped token files (minigpt/data/tokens.py), the synthetic tasks
(minigpt/data/tasks.py), and JSONL records for fine-tuning, instructions or classification (minigpt/data/records.py).
A new kind (summarisation or question-answer records) subclasses Dataset, or
Records where it is records, and is picked in minigpt/run.py's load_dataset: nothing else changes. Tests:
tests/test_datasets.py calls the whole protocol on every kind.
"""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minigpt.ops.cross_entropy import IGNORE_INDEX


class Batch(NamedTuple):
    """Rows of a split: what a model's forward takes, and its loss the mean over loss_count."""

    x: np.ndarray  # (B, T) int64 the inputs
    y: np.ndarray  # (B, T) int64 the next tokens, IGNORE_INDEX where no loss counts (prompts, padding)
    last: np.ndarray | None = None  # (B,) int64 a classifier's: the position of each row's last token; else None
    labels: np.ndarray | None = None  # (B,) int64 a classifier's: each row's class; else None
    reference: np.ndarray | None = None  # (2B,) float64 preference pairs': the reference's log-probability of each
    # row's completion, B chosen rows then B rejected ones (minigpt/objectives.py's DPO); else None

    @property
    def loss_count(self) -> int:
        """What the batch's loss is the mean over: preference pairs, a classifier's rows, or a language model's
        targets (the weight of a micro-batch in a step, minigpt/train.py's accumulate_gradients)."""
        if self.reference is not None:  # preference pairs
            return len(self.reference) // 2
        return len(self.labels) if self.labels is not None else int((self.y != IGNORE_INDEX).sum())


class Dataset(ABC):
    """The protocol above; a subclass sets tokenizer and source, and identity and labels where it has them."""

    tokenizer: object  # a CharTokenizer, BPETokenizer or HFTokenizer (minigpt/data)
    source: Path | str
    identity: dict | None = None
    labels: tuple | None = None
    kind: str | None = None  # records' kind (minigpt/data/records.py's kind_of); None for a text, a corpus or a task
    reference: np.ndarray | None = None  # preference pairs': (records, 2) the reference's log-probabilities

    def keep_reference(self, model, saved: list | None, resumed: bool) -> None:
        """Preference pairs keep the reference's log-probabilities of their completions: a fresh run's computed from
        `model` (the one it starts from), a resumed run's as its checkpoint saved them; other kinds have none."""

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @abstractmethod
    def fit(self, block_size: int, truncate: bool = False) -> list:
        """Fit the data to a context of block_size tokens, or refuse (ValueError) what cannot fit; truncate: cut what is
        longer (records only; the others refuse it). Returns the lines to tell the user (none: an empty list)."""

    @property
    @abstractmethod
    def sequence_length(self) -> int:
        """T of the batches: at most the block_size fitted to."""

    @abstractmethod
    def get_batch(self, split: str, batch_size: int, rng: np.random.Generator) -> Batch:
        """batch_size random rows of the split, drawn with rng (the same rng state, the same batch)."""

    @abstractmethod
    def split_size(self, split: str) -> tuple[int, str, int]:
        """(how much the split holds, of what, how much of it a row of a batch reads): for --eval-iters' bound."""

    @abstractmethod
    def accuracy(self, model, split: str = "val") -> float | None:
        """The model's held-out score on the split, reported at each evaluation; None where there is none (a text)."""

    def bits_per_byte(self, loss: float, split: str = "val") -> float | None:
        """The split's mean loss (nats per token) in bits per byte of the text it encodes, reported with the losses;
        None for a kind that does not know its text's bytes (all but a tokenized corpus, minigpt/data/tokens.py)."""
        return None

    @abstractmethod
    def what_next(self, out_dir: str) -> str:
        """The command that shows what a run on this data learned (out_dir quoted for a shell)."""


def refuse_truncate(truncate: bool) -> None:
    """--truncate cuts records longer than the context: a text or a task, which have none, refuse it."""
    if truncate:
        raise ValueError("--truncate cuts records (a .jsonl file, or a task made of records) that are longer than the "
                         "context; a text is read in windows of --block-size tokens, and a task's problems fit: "
                         "drop it")
