"""Text datasets: find the text file, tokenize it once into memory-mapped token files, sample batches.

The default dataset is Tiny Shakespeare, looked for in this order:
  1. the path given with --data (TrainConfig.data);
  2. the path in the environment variable MINIGPT_DATA;
  3. the user's cache directory (minigpt.files.cache_dir), where a download is kept;
  4. downloaded from its public URL, with its SHA-256 checked.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from minigpt.data.bpe import BPETokenizer
from minigpt.data.chars import CharTokenizer
from minigpt.data.dataset import Batch, Dataset, refuse_truncate
from minigpt.data.hf_tokenizer import HFTokenizer
from minigpt.files import atomic_write, cache_dir, temporary
from minigpt.validate import decode, read_json, regular_file

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_FILE = "tinyshakespeare.txt"
TRAIN_FRACTION = 0.9  # first 90% train, last 10% validation, as nanoGPT splits it


def find_text(path: str | None = None) -> Path:
    """The text file to train on: `path` if given, else Tiny Shakespeare (found or downloaded)."""
    if path is not None:
        return regular_file(Path(path).expanduser(), "data file ", "give the path of a text file with --data")
    if os.environ.get("MINIGPT_DATA"):
        return regular_file(Path(os.environ["MINIGPT_DATA"]).expanduser(), "MINIGPT_DATA=",
                            "point it at the Tiny Shakespeare text file")
    cached = cache_dir() / SHAKESPEARE_FILE
    if cached.is_file():
        return cached
    try:
        download(SHAKESPEARE_URL, cached, SHAKESPEARE_SHA256)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"Tiny Shakespeare was not found and could not be downloaded ({e}); pass --data PATH, set "
            f"MINIGPT_DATA=PATH, or save {SHAKESPEARE_URL} as {cached}"
        ) from None
    return cached


def read_text_file(source: Path) -> tuple:
    """(bytes, text) of a data file, or one line: not UTF-8, binary, or empty."""
    raw = source.read_bytes()
    text = decode(raw, source, "data file ", "give a UTF-8 text file")
    if not text.strip():
        raise ValueError(f"data file {source} is {'empty' if not raw else 'only whitespace'}; give a text to train on")
    return raw, text


def download(url: str, dest: Path, sha256: str) -> None:
    """Download `url` to `dest`, checking its SHA-256; `dest` appears only if the whole file arrived intact."""
    import urllib.request  # here, not at the top: 20 ms of every process's start, for a download done once

    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=30) as response, atomic_write(dest, "wb") as f:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            f.write(chunk)
        if digest.hexdigest() != sha256:  # (raised inside the block: dest is not written)
            raise ValueError(f"the download from {url} has SHA-256 {digest.hexdigest()}, expected {sha256}")


def bpe_for(text: str, raw: bytes, vocab_size: int, progress: bool = False) -> BPETokenizer:
    """A byte-level BPE vocabulary of vocab_size tokens trained on `text`, kept in the cache directory and
    reused for the same text and size."""
    path = cache_dir() / "bpe" / f"{hashlib.sha256(raw).hexdigest()[:16]}-{vocab_size}.json"
    if path.is_file():
        return BPETokenizer.from_dict(read_json(path), path)
    tokenizer = BPETokenizer.train(text, vocab_size, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(tokenizer.to_json())
    return tokenizer


class Windows(Dataset):
    """Token ids read in windows: a split is one long array of ids (`splits`, set by the subclass: a text's, a tokenized
    corpus's, minigpt/data/tokens.py), and a batch is random windows of block_size + 1 consecutive ids (windows,
    below)."""

    splits: dict  # "train", "val" -> (N,) token ids, an array or a memmap
    block_size: int | None = None  # the windows' length, once fitted

    def fit(self, block_size: int, truncate: bool = False) -> list:
        """Windows of block_size tokens; --truncate, which cuts records, is refused."""
        refuse_truncate(truncate)
        self.block_size = block_size
        return []

    @property
    def sequence_length(self) -> int:
        if self.block_size is None:
            raise ValueError(f"{self.source} has no window length yet: fit(block_size) gives it one")
        return self.block_size

    def get_batch(self, split: str, batch_size: int, rng: np.random.Generator) -> Batch:
        """B random windows of T + 1 consecutive tokens (windows, below): of a memmap, only those pages are read."""
        return windows(self.splits[split], split, self.sequence_length, batch_size, rng)

    def split_size(self, split: str) -> tuple[int, str, int]:
        """The split's tokens; a row reads T of them."""
        return len(self.splits[split]), f"tokens of {self.source}", self.sequence_length

    def accuracy(self, model, split: str = "val") -> None:
        """Token ids have no held-out score beyond their loss."""
        return None

    def what_next(self, out_dir: str) -> str:
        """A model of text continues a prompt (a newline by default)."""
        return f"sample with: minigpt sample --out-dir {out_dir}"


class TextDataset(Windows):
    """A text file tokenized into two memory-mapped token files, train.bin and val.bin (uint16, or uint32
    for vocabularies past 65,536), stored once in the cache directory next to tokenizer.json and
    reused on the next run. Its batches are windows of block_size tokens (minigpt/data/dataset.py)."""

    def __init__(self, train: np.ndarray, val: np.ndarray, tokenizer, source: Path, identity: dict | None = None):
        self.splits, self.tokenizer, self.source = {"train": train, "val": val}, tokenizer, source
        self.identity = identity  # the text file's size and SHA-256, saved with a run that trains on it

    @classmethod
    def load(cls, path: str | None = None, tokenizer=None, kind: str = "char", vocab_size: int | None = None,
             progress: bool = False) -> "TextDataset":
        """Tokenize the text at `path` (see find_text) with `tokenizer` (a fine-tuned model keeps its own
        vocabulary), or else with one made from the text itself: kind "char" (its sorted characters) or
        "bpe" (byte-level BPE with vocab_size tokens, trained once and cached)."""
        source = find_text(path)
        raw, text = read_text_file(source)
        if tokenizer is None:
            tokenizer = bpe_for(text, raw, vocab_size, progress) if kind == "bpe" else CharTokenizer.from_text(text)
        identity = {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        text_hash = identity["sha256"][:16]
        vocab_hash = tokenizer.fingerprint()[:8]
        prepared = cache_dir() / "data" / f"{source.stem}-{text_hash}-{vocab_hash}"
        meta = read_prepared(prepared)
        if meta is None:  # not there yet, or damaged (it is only a cache): made again
            shutil.rmtree(prepared, ignore_errors=True)
            prepare(text, tokenizer, prepared)
            meta = read_prepared(prepared)
        tokens = lambda split: np.memmap(prepared / f"{split}.bin", dtype=meta["dtype"], mode="r") \
            if meta[f"{split}_tokens"] else np.zeros(0, meta["dtype"])  # noqa: E731  (mmap refuses an empty file)
        return cls(tokens("train"), tokens("val"), tokenizer, source, identity)


def windows(data: np.ndarray, split: str, T: int, batch_size: int, rng: np.random.Generator) -> Batch:
    """B random windows of T + 1 consecutive tokens of `data` (an array or a memmap, of which only the windows are
    read): x (B, T) the inputs, y (B, T) the next tokens."""
    if len(data) <= T:
        raise ValueError(
            f"the {split} split has {len(data)} tokens, too few for block_size {T}; "
            f"use a longer text or a smaller --block-size"
        )
    ix = rng.integers(0, len(data) - T, size=batch_size)  # (B,) window starts
    x = np.stack([data[i:i + T] for i in ix]).astype(np.int64)  # (B, T)
    y = np.stack([data[i + 1:i + 1 + T] for i in ix]).astype(np.int64)  # (B, T)
    return Batch(x, y)


def read_prepared(prepared: Path) -> dict | None:
    """meta.json of a tokenized text in the cache, if it is there and agrees with its token files; else None."""
    try:
        meta = json.loads((prepared / "meta.json").read_text())
        itemsize = {"uint16": 2, "uint32": 4}[meta["dtype"]]
        if all((prepared / f"{split}.bin").stat().st_size == itemsize * meta[f"{split}_tokens"] for split in ("train", "val")):
            return meta
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def encode_text(tokenizer, text: str) -> np.ndarray:
    """A whole text as token ids; a BPE tokenizer reads its special tokens (<|endoftext|> between documents), as a
    Hugging Face one always does."""
    if isinstance(tokenizer, BPETokenizer):
        return np.asarray(tokenizer.encode(text, allowed_special="all"), dtype=np.int64)
    if isinstance(tokenizer, HFTokenizer):
        return np.asarray(tokenizer.encode(text), dtype=np.int64)
    return tokenizer.encode(text)


def prepare(text: str, tokenizer, out: Path) -> None:
    """Write train.bin, val.bin, tokenizer.json and meta.json into `out`, atomically: a directory that is
    half-written (the process died) is never picked up, because it only gets its name when complete."""
    ids = encode_text(tokenizer, text)  # (n,)
    dtype = np.uint16 if tokenizer.vocab_size <= 2**16 else np.uint32
    n = int(len(ids) * TRAIN_FRACTION)
    tmp = temporary(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ids[:n].astype(dtype).tofile(tmp / "train.bin")
    ids[n:].astype(dtype).tofile(tmp / "val.bin")
    (tmp / "tokenizer.json").write_text(tokenizer.to_json(), encoding="utf-8")
    meta = {"dtype": np.dtype(dtype).name, "train_tokens": n, "val_tokens": len(ids) - n}
    (tmp / "meta.json").write_text(json.dumps(meta))
    try:
        os.rename(tmp, out)
    except OSError:  # another process prepared the same data first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
