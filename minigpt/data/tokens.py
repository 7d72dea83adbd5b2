"""A corpus tokenized once (`minigpt data tokenize`, minigpt/corpus/tokenize.py), read as memory-mapped token files.

The tokens of a built corpus lie beside its text, in a directory of their own:

    CORPUS/tokens/
        train.bin       the training split's token ids, uint16, one after the other (as nanoGPT's prepare.py
                        writes them)
        val.bin         the held-out split's
        tokenizer.json  the tokenizer that made them: the model's tokenizer (minigpt/data/bpe.py)
        tokens.json     the header: the tokenizer's SHA-256, the dtype, each split's tokens, UTF-8 bytes and SHA-256s

A TokensDataset maps the .bin files (np.memmap): nothing is read until a batch asks for its windows, so a corpus of
any size costs no memory. Its batches are windows of block_size tokens, as a text's (minigpt/data/text.py), and it is
the one kind of dataset that reports bits per byte (bits_per_byte: the header's counts make a loss per token one per
byte, comparable across tokenizers). docs/pretraining.md. Tests: tests/test_tokens.py, tests/test_datasets.py.
"""

import math
from pathlib import Path

import numpy as np

from minigpt.data.bpe import BPETokenizer
from minigpt.data.text import Windows
from minigpt.validate import check_object, read_json

TOKENS = "tokens"  # the directory, inside the corpus's
HEADER = "tokens.json"
TOKENIZER = "tokenizer.json"
SPLITS = {"train": "train.bin", "val": "val.bin"}
TEXTS = {"train": "train.txt", "val": "val.txt"}  # what each split's tokens encode, in the corpus's directory
DTYPE = np.uint16  # ids below 65,536: a vocabulary of 4,096 to 8,192 needs half the bytes of uint32
FORMAT = 1  # tokens.json's layout


class TokensDataset(Windows):
    """The token files of a tokenized corpus (the directory above), memory-mapped. identity: train.bin's size and
    SHA-256, from the header, saved with a run so that a resume checks it trains on the same tokens."""

    def __init__(self, directory: Path, header: dict, tokenizer: BPETokenizer):
        self.source, self.header, self.tokenizer = directory, header, tokenizer
        self.splits = {split: np.memmap(directory / name, dtype=DTYPE, mode="r") for split, name in SPLITS.items()}
        train = header["splits"]["train"]
        self.identity = {"size": train["tokens"] * np.dtype(DTYPE).itemsize, "sha256": train["sha256"]}

    @classmethod
    def open(cls, directory: Path, tokenizer: BPETokenizer | None = None) -> "TokensDataset":
        """The tokens in `directory` (CORPUS/tokens), checked against their header: a missing or damaged file, or
        `tokenizer` (a model's, or --tokenizer's) other than the one that made them, is refused in one line."""
        header = read_header(directory)
        own = BPETokenizer.from_dict(read_json(directory / TOKENIZER), str(directory / TOKENIZER))
        if own.fingerprint() != header["tokenizer_sha256"]:
            raise ValueError(f"{directory / TOKENIZER} is not the tokenizer {directory / HEADER} names; the tokens are "
                             f"damaged: remove {directory} and run minigpt data tokenize again")
        if tokenizer is not None and tokenizer != own:
            raise ValueError(f"the tokens in {directory} were made by another tokenizer (SHA-256 "
                             f"{header['tokenizer_sha256'][:12]}...) than this run's "
                             f"({tokenizer.fingerprint()[:12]}...): give that tokenizer ({directory / TOKENIZER}), or "
                             f"tokenize the corpus with this one")
        return cls(directory, header, own)

    def bits_per_byte(self, loss: float, split: str = "val") -> float:
        """The mean loss of the split's tokens (nats per token) as bits per UTF-8 byte of its text: times the split's
        tokens per byte, over ln 2 (docs/pretraining.md). A tokenizer that makes fewer, longer tokens has a higher
        loss per token for the same prediction; per byte, the two are comparable."""
        counts = self.header["splits"][split]
        return loss * counts["tokens"] / counts["bytes"] / math.log(2)


def read_header(directory: Path) -> dict:
    """tokens.json of a tokens directory, checked, and the .bin files it describes checked for their size: a file cut
    short (a copy that stopped, a full disk) is refused, naming it."""
    if not (directory / HEADER).is_file():
        raise FileNotFoundError(f"{directory} holds no tokens ({HEADER}); tokenize the corpus first: minigpt data "
                                f"tokenize NAME --tokenizer DIR (docs/pretraining.md)")
    header = check_object(read_json(directory / HEADER), directory / HEADER,
                          {"format": int, "dtype": str, "tokenizer_sha256": str, "vocab_size": int, "splits": dict})
    if header["format"] != FORMAT or header["dtype"] != np.dtype(DTYPE).name:
        raise ValueError(f"{directory / HEADER} is format {header['format']} of {header['dtype']}, not format {FORMAT} "
                         f"of {np.dtype(DTYPE).name}; remove {directory} and run minigpt data tokenize again")
    for split, name in SPLITS.items():
        counts = check_object(header["splits"].get(split), f"{directory / HEADER} splits.{split}",
                              {"tokens": int, "bytes": int, "sha256": str, "text_sha256": str})
        if counts["tokens"] <= 0 or counts["bytes"] <= 0:
            raise ValueError(f"{directory / HEADER}: the {split} split is empty; tokenize a corpus that has text in it")
        path, size = directory / name, counts["tokens"] * np.dtype(DTYPE).itemsize
        if not path.is_file() or path.stat().st_size != size:
            have = f"{path.stat().st_size:,} bytes" if path.is_file() else "missing"
            raise ValueError(f"{path} is {have}, not the {size:,} bytes ({counts['tokens']:,} tokens) its header "
                             f"gives: the file is truncated or damaged; remove {directory} and run minigpt data "
                             f"tokenize again")
    return header
