"""A corpus of real English, built reproducibly from pinned Debian packages (`minigpt data build`).

Reading from the bottom up:
    documents.py   a Document (a stable key, its text) and how documents share one text file
    deb.py         the files of a .deb, read in Python (an ar archive holding a tar), bounded
    fetch.py       a pinned .deb: from the user's directory, the cache, or Debian's archive, checked by SHA-256
    osis.py        OSIS markup to plain text, one document per chapter
    sword.py       a Sword module in zText (a verse index and zlib-compressed blocks): its OSIS, entry by entry
    austen.py      Jane Austen's six novels from janeaustenr's R data, one document per chapter
    pydocs.py      the Python documentation's reStructuredText sources, one document per file
    sources.py     the pinned packages, what is taken from each, the named corpora
    build.py       the corpus written once into the cache: train.txt, val.txt, NOTICE, manifest.json
    tokenize.py    its text encoded once into token files beside it, tokens/ (`minigpt data tokenize`)

A small corpus made by the same code ships in sample/ (its NOTICE says how), so that the tests and a first try need
no network. docs/pretraining.md describes the corpus.
"""

from pathlib import Path

SAMPLE = Path(__file__).resolve().parent / "sample"  # `minigpt data build sample`, as shipped
