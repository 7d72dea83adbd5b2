"""One protocol for every dataset (minigpt/data/dataset.py): a text, the synthetic tasks, and records of each kind offer
the same methods and draw the same Batch type, so that training and evaluation never ask which kind they have."""

import hashlib
import json

import numpy as np
import pytest
from helpers import corpus_of

from minigpt import GPT, GPTConfig
from minigpt.corpus import SAMPLE
from minigpt.corpus.tokenize import tokenize
from minigpt.data import AddTask, BPETokenizer, SortTask, TextDataset
from minigpt.data.dataset import Batch, Dataset
from minigpt.data.record_datasets import open_records
from minigpt.data.tokens import TokensDataset
from minigpt.ops.cross_entropy import IGNORE_INDEX

PROTOCOL = {"fit", "sequence_length", "get_batch", "split_size", "accuracy", "what_next"}  # what a kind must define
BLOCK_SIZE = 32
B = 3


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def text(tmp_path) -> TextDataset:
    path = tmp_path / "t.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 30)
    return TextDataset.load(str(path))


def tokenized_corpus(tmp_path) -> TokensDataset:
    """The shipped sample's val.txt as a whole corpus (train and val), tokenized by a BPE of 300 tokens."""
    text = (SAMPLE / "val.txt").read_text()
    return TokensDataset.open(tokenize(corpus_of(tmp_path / "corpus", text, text), BPETokenizer.train(text, 300)).path)


def instructions(tmp_path):
    return open_records(write_jsonl(tmp_path / "i.jsonl", [{"prompt": f"{n}+{n}=", "completion": str(2 * n)}
                                                          for n in range(12)]), None)


def chats(tmp_path):
    return open_records(write_jsonl(tmp_path / "c.jsonl", [{"messages": [{"role": "user", "content": f"{n}?"},
                                                                         {"role": "assistant", "content": f"{n}!"}]}
                                                           for n in range(12)]), None)


def classification(tmp_path):
    return open_records(write_jsonl(tmp_path / "l.jsonl", [{"text": "ab" * (n % 4 + 1), "label": "xy"[n % 2]}
                                                          for n in range(12)]), None)


# (what makes it, the file its identity is of (None: it has none), whether it is a classifier, whether it has a
# held-out score)
SOURCE = lambda dataset: dataset.source  # noqa: E731
KINDS = {
    "text": (text, SOURCE, False, False),
    "tokenized corpus": (tokenized_corpus, lambda dataset: dataset.source / "train.bin", False, False),
    "sort": (lambda tmp_path: SortTask(), None, False, True),
    "add": (lambda tmp_path: AddTask(), None, False, True),
    "instruction records": (instructions, SOURCE, False, True),
    "chat records": (chats, SOURCE, False, True),
    "classification records": (classification, SOURCE, True, True),
}


def test_the_protocol_is_what_dataset_leaves_every_kind_to_define():
    assert Dataset.__abstractmethods__ == PROTOCOL


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_dataset_offers_the_whole_protocol_and_draws_batches(kind, tmp_path):
    make, identity_of, is_classifier, is_scored = KINDS[kind]
    dataset = make(tmp_path)
    assert isinstance(dataset, Dataset) and not type(dataset).__abstractmethods__  # (else it could not be made)
    assert dataset.vocab_size == dataset.tokenizer.vocab_size and str(dataset.source)
    if identity_of is not None:
        raw = identity_of(dataset).read_bytes()
        assert dataset.identity == {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    else:
        assert dataset.identity is None
    assert (dataset.labels is not None) == is_classifier
    if is_classifier:
        assert dataset.labels == ("x", "y")

    notices = dataset.fit(BLOCK_SIZE, truncate=False)
    assert isinstance(notices, list) and all(isinstance(n, str) for n in notices)
    T = dataset.sequence_length
    assert 1 <= T <= BLOCK_SIZE
    for split in ("train", "val"):
        held, what, per_row = dataset.split_size(split)
        assert held > 0 and what and per_row in (1, T)
        batch = dataset.get_batch(split, B, np.random.default_rng(0))
        assert type(batch) is Batch
        assert batch.x.dtype == batch.y.dtype == np.int64
        assert batch.x.shape == batch.y.shape and batch.x.shape[0] == B and 1 <= batch.x.shape[1] <= T
        assert batch.x.min() >= 0 and batch.x.max() < dataset.vocab_size
        targets = batch.y[batch.y != IGNORE_INDEX]
        assert targets.min() >= 0 and targets.max() < dataset.vocab_size
        if is_classifier:
            assert batch.last.dtype == batch.labels.dtype == np.int64 and batch.last.shape == batch.labels.shape == (B,)
            assert batch.last.max() < batch.x.shape[1] and set(batch.labels.tolist()) <= {0, 1}
            assert batch.loss_count == B  # a classifier's loss is the mean over its rows
        else:
            assert batch.last is None and batch.labels is None
            assert batch.loss_count == len(targets) > 0  # a language model's, over its targets
        again = dataset.get_batch(split, B, np.random.default_rng(0))  # the same generator, the same batch
        assert all(np.array_equal(a, b) for a, b in zip(batch, again) if a is not None)

    model = GPT(GPTConfig(vocab_size=dataset.vocab_size, block_size=BLOCK_SIZE, n_layer=1, n_head=1, n_embd=8,
                          labels=dataset.labels), seed=0, backend="numpy")
    _, loss = model.forward(batch.x, batch.y, last=batch.last, labels=batch.labels)
    assert np.isfinite(loss)
    model.eval()
    accuracy = dataset.accuracy(model, "val")
    assert (accuracy is not None) == is_scored
    if is_scored:
        assert 0.0 <= accuracy <= 1.0
    assert "--out-dir 'a run'" in dataset.what_next("'a run'")


@pytest.mark.parametrize("kind", ["text", "tokenized corpus", "sort", "add"])
def test_a_dataset_with_nothing_to_cut_refuses_truncate(kind, tmp_path):
    dataset = KINDS[kind][0](tmp_path)
    with pytest.raises(ValueError, match="--truncate cuts records"):
        dataset.fit(BLOCK_SIZE, truncate=True)


@pytest.mark.parametrize("kind", ["instruction records", "chat records", "classification records"])
def test_records_longer_than_the_context_are_refused_or_cut(kind, tmp_path):
    dataset = KINDS[kind][0](tmp_path)
    longest = dataset.sequence_length
    with pytest.raises(ValueError, match="more than the model's context of"):
        dataset.fit(longest - 1, truncate=False)
    said = dataset.fit(longest - 1, truncate=True)
    assert any(line.startswith("--truncate: ") for line in said) and dataset.sequence_length <= longest - 1
