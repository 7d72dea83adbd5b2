"""A built corpus's text encoded once into token files (`minigpt data tokenize`), which training maps
(minigpt/data/tokens.py, where the directory's layout is described).

The text is streamed: read a line at a time, encoded a document at a time (the stretch up to each <|endoftext|>), its
ids appended to the .bin file as uint16, so the corpus never becomes one list of Python ints (20 MB of text would be
6 million ints, about 200 MB). Encoding up to each special token gives exactly the ids of encoding the whole file,
because the encoder cuts the text at special tokens before its regex splits it (BPETokenizer.encode): decoding
train.bin gives back train.txt byte for byte (tests/test_tokens.py).

The directory is written beside the corpus's files in a temporary and renamed into place (minigpt/files.py,
directory_write): a tokenization that stops leaves nothing. Tokenizing again with the same tokenizer finds it; with
another, it is refused, never overwritten.
"""

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minigpt.corpus.build import MANIFEST
from minigpt.data.bpe import ENDOFTEXT, BPETokenizer
from minigpt.data.tokens import DTYPE, FORMAT, HEADER, SPLITS, TEXTS, TOKENIZER, TOKENS, read_header
from minigpt.files import directory_write
from minigpt.validate import check_object, read_json


class Tokenized(NamedTuple):
    path: Path  # CORPUS/tokens
    header: dict
    fresh: bool  # tokenized now (False: found tokenized before, by the same tokenizer)


def tokenize(corpus: Path, tokenizer: BPETokenizer, progress: bool = False) -> Tokenized:
    """The tokens of the corpus built in `corpus` (train.txt, val.txt, manifest.json), in corpus/tokens: found there,
    or written now."""
    out = corpus / TOKENS
    check_built(corpus)
    if tokenizer.vocab_size > np.iinfo(DTYPE).max + 1:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size:,} tokens; the token files hold "
                         f"{np.dtype(DTYPE).name} ids, below {np.iinfo(DTYPE).max + 1:,}: train a smaller vocabulary")
    if out.exists():
        header = read_header(out)
        if header["tokenizer_sha256"] != tokenizer.fingerprint():
            raise ValueError(f"{out} holds the tokens of another tokenizer (SHA-256 {header['tokenizer_sha256'][:12]}"
                             f"...); remove it to tokenize {corpus.name} with this one")
        return Tokenized(out, header, False)
    files = check_object(read_json(corpus / MANIFEST), corpus / MANIFEST, {"files": dict})["files"]
    with directory_write(out) as tmp:
        splits = {split: encode_file(corpus / TEXTS[split], tokenizer, tmp / SPLITS[split], progress)
                  for split in SPLITS}
        for split, counts in splits.items():
            listed = check_object(files.get(TEXTS[split]), corpus / MANIFEST, {"sha256": str})["sha256"]
            if counts["text_sha256"] != listed:  # (raised inside the block: nothing is put in place)
                raise ValueError(f"{corpus / TEXTS[split]} is not the file {corpus / MANIFEST} lists (SHA-256); the "
                                 f"corpus is damaged: remove {corpus} and build it again")
        (tmp / TOKENIZER).write_text(tokenizer.to_json(), encoding="utf-8")
        header = {"format": FORMAT, "corpus": corpus.name, "dtype": np.dtype(DTYPE).name,
                  "tokenizer_sha256": tokenizer.fingerprint(), "vocab_size": tokenizer.vocab_size,
                  "splits": splits}
        (tmp / HEADER).write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
    return Tokenized(out, header, True)


def check_built(corpus: Path) -> None:
    """A directory that `minigpt data build` wrote, or one line saying how to make it."""
    for name in (*TEXTS.values(), MANIFEST):
        if not (corpus / name).is_file():
            raise FileNotFoundError(f"{corpus} holds no built corpus ({name} is missing); build it first: minigpt "
                                    f"data build {corpus.name} (docs/pretraining.md)")


def encode_file(text: Path, tokenizer: BPETokenizer, out: Path, progress: bool) -> dict:
    """Encode the text file into `out` (uint16 ids), a document at a time; its counts and SHA-256s for the header:
    tokens, UTF-8 bytes, the text's SHA-256 and the token file's."""
    from tqdm import tqdm

    text_hash, ids_hash = hashlib.sha256(), hashlib.sha256()
    tokens = n_bytes = 0
    size = text.stat().st_size
    bar = tqdm(total=size, desc=f"tokenize {text.name}", unit="B", unit_scale=True,
               disable=None if progress else True)
    with open(text, encoding="utf-8", newline="") as f, open(out, "wb") as w:

        def put(piece: list) -> None:
            nonlocal tokens, n_bytes
            chunk = "".join(piece)
            raw = chunk.encode("utf-8")
            ids = np.asarray(tokenizer.encode(chunk, allowed_special={ENDOFTEXT}), dtype=DTYPE)  # (n,)
            ids_hash.update(ids.tobytes())
            text_hash.update(raw)
            ids.tofile(w)
            tokens, n_bytes = tokens + len(ids), n_bytes + len(raw)
            bar.update(len(raw))

        piece = []
        for line in f:
            cut = line.rfind(ENDOFTEXT)
            if cut < 0:
                piece.append(line)
                continue
            # a document ends: encode up to and including the separator's token, keep the rest of its line
            put([*piece, line[:cut + len(ENDOFTEXT)]])
            piece = [line[cut + len(ENDOFTEXT):]]
        put(piece)
    bar.close()
    if n_bytes != size:  # (a file that changed while it was read)
        raise ValueError(f"{text} changed while it was tokenized ({n_bytes:,} bytes read of {size:,}); try again")
    return {"tokens": tokens, "bytes": n_bytes, "sha256": ids_hash.hexdigest(), "text_sha256": text_hash.hexdigest()}

