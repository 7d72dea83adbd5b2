"""A document of the corpus, and how documents share one text file.

A document is a unit the held-out split takes or leaves whole: a chapter of a book, a file of the documentation.
Its text is paragraphs separated by a blank line (a line of verse, or of a list, ends with a single newline). In
train.txt and val.txt the documents follow each other separated by a line that holds only <|endoftext|>, the token
that GPT-2's tokenizer and minigpt's BPE keep for the boundary between documents:

    Sir Walter Elliot, of Kellynch Hall, ...
    <|endoftext|>
    Chapter 2
    ...

`split(join(texts)) == texts`. To encode a file with the boundaries as tokens, pass
allowed_special={"<|endoftext|>"} to BPETokenizer.encode (minigpt/data/bpe.py).
"""

import re
from typing import NamedTuple

from minigpt.data.bpe import ENDOFTEXT

SEPARATOR = f"\n{ENDOFTEXT}\n"  # between two documents: the token on a line of its own
BLANK_LINES = re.compile(r"\n{3,}")


class Document(NamedTuple):
    key: str  # its name, stable across builds: "Gen.1" (a Bible's chapter), "emma.12", "library/os.rst"
    text: str  # paragraphs separated by a blank line; no whitespace at either end


def document(key: str, paragraphs: list) -> Document:
    """A Document of `paragraphs` (strings; empty ones dropped), separated by a blank line."""
    return Document(key, "\n\n".join(p for p in paragraphs if p))


def join(texts: list) -> str:
    """One file's text: the documents separated by SEPARATOR, a newline at the end ("" if there are none)."""
    check_no_separator(texts)
    return SEPARATOR.join(texts) + "\n" if texts else ""


def write(path, texts: list) -> None:
    """join(texts) into the file at `path`, as UTF-8, a document at a time: the corpus's 20 MB never become one more
    string in memory (where a character lies outside the Basic Multilingual Plane, 4 bytes a character)."""
    check_no_separator(texts)
    with open(path, "wb") as f:
        for i, text in enumerate(texts):
            f.write(((SEPARATOR if i else "") + text).encode("utf-8"))
        f.write(b"\n" if texts else b"")


def check_no_separator(texts: list) -> None:
    for i, text in enumerate(texts):
        if ENDOFTEXT in text:  # (it would be read back as two documents)
            raise ValueError(f"document {i} holds the separator {ENDOFTEXT}; remove it from the source's text")


def split(text: str) -> list:
    """The documents of a file that join wrote."""
    return text[:-1].split(SEPARATOR) if text else []


def words(text: str) -> int:
    """Words as the corpus counts them: runs of characters between whitespace (the separators not counted)."""
    return len(text.split()) - text.count(ENDOFTEXT)
