"""Jane Austen's six novels, from the R package janeaustenr (Debian's r-cran-janeaustenr), one document per chapter.

The package keeps each novel as a character vector of Project Gutenberg's lines, hard-wrapped at about 70
characters, a blank line between paragraphs, in R's lazy-load database (data/Rdata.rdx and data/Rdata.rdb, what
R's `data()` reads): the .rdx is a gzip-compressed serialized R list whose `variables` maps each object's name to
(offset, length) in the .rdb, where each object is a 4-byte big-endian length and then R's serialization of it,
zlib-compressed. PyPI's `rdata` reads R's serialization (pip install "minigpt[corpus]").

A novel is cut at its chapter headings ("CHAPTER I", "Chapter 1"); its title page opens the first chapter. Lines
are joined back into paragraphs (one line each), runs of spaces made one; the text is otherwise Gutenberg's
(_italics_ and -- dashes kept).
"""

import re
import struct
import zlib

import numpy as np

from minigpt.corpus.documents import document

DATA = "usr/lib/R/site-library/janeaustenr/data/Rdata"
NOVELS = {  # the object of each novel, in the order they were published, and its title
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
HEADING = re.compile(r"(chapter|volume)\s+([0-9]+|[ivxlc]+)\.?", re.IGNORECASE)  # "CHAPTER IV", "Chapter 4"
MAX_OBJECT_BYTES = 64 << 20  # one novel, serialized (Emma's: 1.2 MB)


def wanted(name: str) -> bool:
    return name in (DATA + ".rdx", DATA + ".rdb")


def documents(files: dict) -> list:
    """The chapters of the six novels, in the order they were published, keyed "emma.1", "emma.2", ..."""
    if DATA + ".rdx" not in files or DATA + ".rdb" not in files:
        raise ValueError(f"the package lacks /{DATA}.rdx or /{DATA}.rdb; it is not janeaustenr 1.0.0")
    lines = lazy_load(files[DATA + ".rdx"], files[DATA + ".rdb"], tuple(NOVELS))
    return [chapter for novel in NOVELS for chapter in chapters(novel, lines[novel])]


def chapters(novel: str, lines: list) -> list:
    """A novel's lines cut into chapters: each begins at a heading, or at the volume heading just before it (Emma is
    in three volumes); the title page opens the first. Paragraphs are runs of non-blank lines, joined by spaces."""
    parts = [[]]  # each chapter's lines
    begun = prose = False  # a heading was seen; text followed the last heading
    for line in lines:
        heading = HEADING.fullmatch(line.strip()) is not None
        if heading and prose:
            parts.append([])
        prose = not heading and (prose or (begun and bool(line.strip())))
        begun = begun or heading
        parts[-1].append(line)
    return [document(f"{novel}.{i}", paragraphs(part)) for i, part in enumerate(parts, 1)]


def paragraphs(lines: list) -> list:
    found, current = [], []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            found.append(" ".join(" ".join(current).split()))  # (Gutenberg's two spaces after a full stop: one)
            current = []
    return found


def lazy_load(rdx: bytes, rdb: bytes, names: tuple) -> dict:
    """The character vectors `names` from an R lazy-load database: name -> list of str."""
    import_rdata()
    index = unserialize(gunzip(rdx, "janeaustenr's Rdata.rdx"), "janeaustenr's Rdata.rdx")
    # the file is untrusted: what it holds is checked, type by type, before it is used
    variables = index.get("variables") if isinstance(index, dict) else None
    if not isinstance(variables, dict):
        raise ValueError("janeaustenr's Rdata.rdx holds no index of variables; the package is damaged")
    found = {}
    for name in names:
        where = f"janeaustenr's {name} (in Rdata.rdb)"
        place = variables.get(name)  # (offset, length) in the .rdb
        if not (isinstance(place, np.ndarray) and place.shape == (2,) and place.dtype.kind in "iu"):
            raise ValueError(f"janeaustenr's Rdata.rdx lists no {name}; the package is not janeaustenr 1.0.0")
        offset, length = (int(n) for n in place)
        if offset < 0 or length < 4 or offset + length > len(rdb):
            raise ValueError(f"{where} lies past the end of Rdata.rdb; the package is damaged")
        value = unserialize(inflate(rdb[offset:offset + length], where), where)
        if not (isinstance(value, np.ndarray) and value.dtype.kind == "U" and value.ndim == 1):
            raise ValueError(f"{where} is not a character vector; the package is not janeaustenr 1.0.0")
        found[name] = [str(line) for line in value]
    return found


def inflate(entry: bytes, where: str) -> bytes:
    """An object of a lazy-load database: its 4-byte big-endian size, then zlib's stream of that many bytes."""
    (size,) = struct.unpack(">I", entry[:4])
    if size > MAX_OBJECT_BYTES:
        raise ValueError(f"{where} claims {size:,} bytes, more than a novel ({MAX_OBJECT_BYTES:,}); damaged")
    try:
        data = zlib.decompressobj().decompress(entry[4:], size + 1)  # (no more than it claims, plus one)
    except zlib.error as e:
        raise ValueError(f"{where} is not zlib data ({e}); the package is damaged") from None
    if len(data) != size:
        raise ValueError(f"{where} decompresses to other than the {size:,} bytes it claims; the package is damaged")
    return data


def gunzip(raw: bytes, where: str) -> bytes:
    inflater = zlib.decompressobj(wbits=31)  # (31: a gzip header)
    try:
        data = inflater.decompress(raw, MAX_OBJECT_BYTES + 1)
    except zlib.error as e:
        raise ValueError(f"{where} is not gzip data ({e}); the package is damaged") from None
    if len(data) > MAX_OBJECT_BYTES:
        raise ValueError(f"{where} decompresses to more than {MAX_OBJECT_BYTES:,} bytes; the package is damaged")
    return data


def unserialize(data: bytes, where: str):
    """R's serialization of one object, as Python: a character vector is a NumPy array of str, a named list a
    dict."""
    import warnings

    import rdata

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (rdata warns of an R version it does not know; the data decide)
            return rdata.conversion.convert(rdata.parser.parse_data(data, extension=".rds"))
    except (ValueError, NotImplementedError, KeyError, IndexError, TypeError, EOFError, AssertionError) as e:
        raise ValueError(f"{where} is not R data that the reader knows ({e.__class__.__name__}: {e}); the package "
                         f"is damaged") from None


def import_rdata() -> None:
    try:
        import rdata  # noqa: F401
    except ImportError:
        raise ImportError('reading Jane Austen\'s novels (R data files) needs the rdata package: '
                          'pip install "minigpt[corpus]"') from None
