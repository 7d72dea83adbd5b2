"""A Sword Bible module in the zText format, read from the files of its Debian package (sword-text-*).

The module's .conf (usr/share/sword/mods.d/NAME.conf) says where its files are (DataPath), how they are stored
(ModDrv=zText, CompressType=ZIP) and their markup (SourceType=OSIS, Encoding=UTF-8). zText keeps each testament in
three files (crosswire.org, the Sword project's "zText" format; all integers little-endian):

    ot.bzs   a block index: per block, 12 bytes:   offset in ot.bzz (u32), compressed size (u32), size (u32)
    ot.bzz   the blocks, each zlib-compressed (with BlockType=BOOK, one block per book)
    ot.bzv   a verse index: per entry, 10 bytes:   block (u32), offset in the decompressed block (u32), size (u16)

The entries run in the versification's order: the module's header, the testament's, then per book its header and
per chapter its header and verses. An empty entry (a verse the translation lacks) has size 0. The markup itself marks
books and chapters (osis.py), so no versification table is needed here.
"""

import posixpath
import struct
import zlib
from typing import Iterator

from minigpt.corpus import osis

ROOT = "usr/share/sword/"  # where the Debian packages install modules
CONF_DIR = ROOT + "mods.d/"
BLOCK = struct.Struct("<III")
ENTRY = struct.Struct("<IIH")
MAX_BLOCK_BYTES = 64 << 20  # one decompressed block, at most (the WEB's largest book, Psalms: under 2 MB)
MAX_INFLATED_BYTES = 512 << 20  # all the blocks decompressed for one testament (the WEB's Old Testament: 23 MB)
TESTAMENTS = ("ot", "nt")


def wanted(name: str) -> bool:
    return name.startswith(ROOT)


def documents(files: dict) -> list:
    """The module's chapters as Documents (osis.py); `files` are its package's, name -> bytes."""
    where, stems = testaments(files)
    return osis.documents(entry for stem in stems for entry in entries(files, stem, where))


def testaments(files: dict) -> tuple:
    """(the module's name for messages, the paths of its testaments without .bzs/.bzv/.bzz), its .conf checked."""
    conf_name, conf = module_conf(files)
    where = f"the Sword module {conf_name}"
    for key, expected in (("ModDrv", "zText"), ("CompressType", "ZIP"), ("SourceType", "OSIS"), ("Encoding", "UTF-8")):
        if conf.get(key, "").lower() != expected.lower():
            raise ValueError(f"{where} has {key}={conf.get(key, '(none)')}; the reader reads {key}={expected} only")
    directory = posixpath.normpath(posixpath.join(ROOT, conf.get("DataPath", "")))
    if not (directory + "/").startswith(ROOT) or "DataPath" not in conf:
        raise ValueError(f"{where}: its DataPath {conf.get('DataPath')!r} is not a directory under /{ROOT}")
    stems = [f"{directory}/{t}" for t in TESTAMENTS if f"{directory}/{t}.bzs" in files]
    if not stems:
        raise ValueError(f"{where} has neither ot.bzs nor nt.bzs in /{directory}; the package is damaged")
    return where, stems


def module_conf(files: dict) -> tuple:
    """(name, settings) of the one module's .conf: "Key=Value" lines after "[Name]"; a key given twice (a
    GlobalOptionFilter) keeps its first value, a line ending in "\\" goes on to the next."""
    confs = sorted(name for name in files if name.startswith(CONF_DIR) and name.endswith(".conf"))
    if len(confs) != 1:
        raise ValueError(f"the package holds {len(confs)} Sword module .conf files in /{CONF_DIR}, the reader takes "
                         f"one: {', '.join(confs) or 'none'}")
    text = files[confs[0]].decode("utf-8", "replace").replace("\\\n", "")
    lines = [line.strip() for line in text.splitlines()]
    names = [line[1:-1] for line in lines if line.startswith("[") and line.endswith("]")]
    settings = {}
    for line in lines:
        key, equals, value = line.partition("=")
        if equals and not line.startswith("#"):
            settings.setdefault(key.strip(), value.strip())
    return (names[0] if names else confs[0]), settings


def entries(files: dict, stem: str, where: str) -> Iterator[str]:
    """The text of each entry of one testament (stem: the path without .bzs/.bzv/.bzz), in order."""
    return (text for _, text in numbered_entries(files, stem, where))


def numbered_entries(files: dict, stem: str, where: str) -> Iterator[tuple]:
    """(its number in the verse index, its text) of each non-empty entry of one testament, in order: two modules of
    the same versification hold the same verse under the same number."""
    try:
        bzs, bzv, bzz = (files[f"{stem}.{ext}"] for ext in ("bzs", "bzv", "bzz"))
    except KeyError as e:
        raise ValueError(f"{where} lacks /{e.args[0]}; the package is damaged") from None
    name = posixpath.basename(stem)
    if len(bzs) % BLOCK.size or len(bzv) % ENTRY.size:
        raise ValueError(f"{where}: {name}.bzs or {name}.bzv is not a whole number of index records; damaged")
    blocks = [BLOCK.unpack_from(bzs, i) for i in range(0, len(bzs), BLOCK.size)]
    index = [ENTRY.unpack_from(bzv, i) for i in range(0, len(bzv), ENTRY.size)]
    ends = entry_ends(index, blocks)
    number, block, inflated = None, b"", 0  # the block decompressed last (entries run through them in order)
    for i, (n, start, size) in enumerate(index):
        if size == 0:
            continue
        if n >= len(blocks):
            raise ValueError(f"{where}: entry {i} of {name}.bzv names block {n}, of {len(blocks)}; damaged")
        if n != number:
            inflated += blocks[n][2]
            if inflated > MAX_INFLATED_BYTES:  # (entries that went back and forth between blocks)
                raise ValueError(f"{where}: {name}.bzv makes the reader decompress more than "
                                 f"{MAX_INFLATED_BYTES:,} bytes; damaged")
            number, block = n, decompress(bzz, blocks[n], f"{where}: block {n} of {name}.bzz")
        # zText keeps a size in 16 bits: an entry of 64 KB or more is recorded modulo 65,536 (the WEB puts the
        # whole of its Greek Daniel, which its versification has no verses for, in one entry of 125,566 bytes,
        # recorded as 60,030). Where the next entry (or the block's end) lies a whole number of 65,536 bytes
        # further on, the entry reaches it.
        if ends[i] > start + size and (ends[i] - start - size) % 65536 == 0:
            size = ends[i] - start
        if start + size > len(block):
            raise ValueError(f"{where}: entry {i} of {name}.bzv reaches past the end of its block; damaged")
        try:
            yield i, block[start:start + size].decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{where}: entry {i} of {name}.bzv is not UTF-8 ({e.reason}); damaged") from None


def entry_ends(index: list, blocks: list) -> list:
    """Where each entry's text can end at most: the start of the next non-empty entry if it is in the same block,
    else the end of its block (by the block index's size)."""
    ends, following = [0] * len(index), None  # following: (block, start) of the next non-empty entry
    for i in range(len(index) - 1, -1, -1):
        n, start, size = index[i]
        same_block = following is not None and following[0] == n
        ends[i] = following[1] if same_block else (blocks[n][2] if n < len(blocks) else 0)
        if size:
            following = (n, start)
    return ends


def decompress(bzz: bytes, block: tuple, where: str) -> bytes:
    offset, compressed, size = block
    if offset + compressed > len(bzz) or size > MAX_BLOCK_BYTES:
        raise ValueError(f"{where} claims bytes past the end of the file, or more than {MAX_BLOCK_BYTES:,} "
                         f"decompressed; damaged")
    inflate = zlib.decompressobj()
    try:
        data = inflate.decompress(bzz[offset:offset + compressed], size + 1)  # (no more than it claims, plus one)
    except zlib.error as e:
        raise ValueError(f"{where} is not zlib data ({e}); damaged") from None
    if len(data) != size:
        raise ValueError(f"{where} decompresses to {len(data):,}+ bytes, its index says {size:,}; damaged")
    return data
