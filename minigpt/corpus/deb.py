"""The files of a Debian package (.deb), read in Python so that any OS can build the corpus (no dpkg-deb).

A .deb is an ar archive of three members: debian-binary ("2.0\\n"), control.tar.*, and data.tar.* (xz, gzip, bzip2
or none; zstd only from Python 3.14's standard library, so it is refused and said so). data.tar holds the installed
files. A .deb from elsewhere is untrusted, even once its SHA-256 matched a pin (the pin may be changed by hand):
every size is checked before it is read, the decompressed stream is bounded (a small archive can inflate to
gigabytes), only the files asked for are kept, in memory, by name: nothing is written to disk under a name the
archive chose, so no name can reach outside a directory.
"""

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable

MAX_DEB_BYTES = 64 << 20  # the largest pinned .deb is 12.6 MB
MAX_UNPACKED_BYTES = 512 << 20  # data.tar, decompressed (python3.11-doc's: 70 MB)
MAX_FILE_BYTES = 32 << 20  # one file taken from it
MAX_TAKEN_BYTES = 128 << 20  # all the files taken from it
MAX_MEMBERS = 100_000  # entries of data.tar (python3.11-doc's: 1,133)

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60  # name 16, mtime 12, uid 6, gid 6, mode 8, size 10, "`\n"
OPENERS = {"": lambda f: f, ".xz": lzma.LZMAFile, ".gz": lambda f: gzip.GzipFile(fileobj=f), ".bz2": bz2.BZ2File}


def read_files(path: Path, wanted: Callable[[str], bool]) -> dict:
    """The regular files of the package at `path` whose names (as installed, without the leading "/": e.g.
    "usr/share/doc/python3.11/copyright") `wanted` accepts: name -> bytes. One clear ValueError for anything that is
    no well-formed .deb, or is past the bounds above."""
    size = path.stat().st_size
    if size > MAX_DEB_BYTES:
        raise ValueError(f"{path} is {size:,} bytes, more than a .deb of the corpus can be ({MAX_DEB_BYTES:,}); "
                         f"it is not the pinned package")
    members = ar_members(path.read_bytes(), path)
    if members.get("debian-binary", b"")[:4] != b"2.0\n":
        raise ValueError(f"{path} is no Debian package of format 2.0 (its debian-binary member is missing or says "
                         f"otherwise); download it again")
    data = [name for name in members if name.startswith("data.tar")]
    if len(data) != 1:
        raise ValueError(f"{path} holds {len(data)} data.tar members, a .deb has one; download it again")
    suffix = data[0][len("data.tar"):]
    if suffix == ".zst":
        raise ValueError(f"{path} is compressed with zstd (data.tar.zst), which Python's standard library reads only "
                         f"from 3.14 on; take the package from Debian's archive, whose .deb files use xz")
    if suffix not in OPENERS:
        raise ValueError(f"{path}: its member {data[0]} is compressed in a way a .deb does not use; download it again")
    stream = Bounded(OPENERS[suffix](io.BytesIO(members[data[0]])), MAX_UNPACKED_BYTES, f"{path} ({data[0]})")
    try:
        return tar_files(stream, wanted, f"{path} ({data[0]})")
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError, zlib.error) as e:
        raise ValueError(f"{path}: its {data[0]} is damaged ({e}); download it again") from None


def ar_members(raw: bytes, where) -> dict:
    """The members of an ar archive: name -> bytes (GNU ar ends a name with "/", which is dropped)."""
    if not raw.startswith(AR_MAGIC):
        raise ValueError(f"{where} is not a Debian package (no ar archive: it starts {raw[:8]!r}); download it again")
    members, at = {}, len(AR_MAGIC)
    while at < len(raw):
        header = raw[at:at + AR_HEADER]
        if len(header) < AR_HEADER or header[58:60] != b"`\n":
            raise ValueError(f"{where}: the ar header at byte {at} is cut short or damaged; download it again")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58])
        except ValueError:
            raise ValueError(f"{where}: the ar member {name!r} at byte {at} has no size; download it again") from None
        start = at + AR_HEADER
        if size < 0 or start + size > len(raw):
            raise ValueError(f"{where}: the ar member {name!r} claims {size:,} bytes, past the end of the file "
                             f"({len(raw):,} bytes); the download is cut short")
        members[name] = raw[start:start + size]
        at = start + size + size % 2  # (members start at even offsets)
    return members


def tar_files(stream, wanted: Callable[[str], bool], where: str) -> dict:
    """The regular files `wanted` accepts, read from a tar stream in one pass."""
    files, taken = {}, 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for count, member in enumerate(tar, 1):
            if count > MAX_MEMBERS:
                raise ValueError(f"{where} holds more than {MAX_MEMBERS:,} entries; it is not the pinned package")
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts:
                raise ValueError(f"{where}: the entry {member.name!r} names a path outside the package; it is not "
                                 f"the pinned package")
            name = str(name)  # ("./usr/share/x" is "usr/share/x")
            if not (member.isfile() and wanted(name)):
                continue
            if name in files:
                raise ValueError(f"{where} holds {name} twice; it is not the pinned package")
            if member.size > MAX_FILE_BYTES or taken + member.size > MAX_TAKEN_BYTES:
                raise ValueError(f"{where}: {name} is {member.size:,} bytes, past the bounds of a corpus source "
                                 f"({MAX_FILE_BYTES:,} a file, {MAX_TAKEN_BYTES:,} in all)")
            files[name] = tar.extractfile(member).read()
            taken += member.size
    return files


class Bounded(io.RawIOBase):
    """A decompressed stream that ends in a ValueError once more than `limit` bytes came out of it: the
    decompressors read their input a block at a time, so memory and time stay bounded whatever the archive says."""

    def __init__(self, f, limit: int, where: str):
        self.f, self.limit, self.where, self.count = f, limit, where, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.f.readinto(b)
        self.count += n
        if self.count > self.limit:
            raise ValueError(f"{self.where} decompresses to more than {self.limit:,} bytes; it is not the pinned "
                             f"package")
        return n

