"""The pinned .deb files of a corpus: found in the user's directory (--debs), else in the cache, else downloaded from
Debian's archive (or, for a version the archive has dropped, from snapshot.debian.org, which keeps every file Debian
ever published), and each checked against its pinned size and SHA-256 before anything reads it.

Debian's archive is reached over plain HTTP, as apt reaches it: the pinned SHA-256, not the transport, is what makes
a file the one the corpus was built from.
"""

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minigpt.files import atomic_write, sha256_of

ARCHIVE = "http://deb.debian.org/"
SNAPSHOT = "https://snapshot.debian.org/file/"  # + a file's SHA-1: every file Debian published, by content
TIMEOUT = 60  # seconds without a byte before a download is given up
MAX_SECONDS = 1800  # a whole download, at most (12.6 MB: 20 minutes at 10 kB/s)


@dataclass(frozen=True)
class Package:
    """A Debian package, pinned: what `apt-get download NAME=VERSION` fetches, and the bytes it must have."""
    name: str
    version: str
    pool: str  # its path in the archive: "debian/pool/main/s/sword-text-web/sword-text-web_426.0-1_all.deb"
    size: int
    sha256: str
    sha1: str  # (snapshot.debian.org's name for the file; the check is by SHA-256)

    @property
    def filename(self) -> str:
        return self.pool.rsplit("/", 1)[1]

    @property
    def filenames(self) -> tuple:
        """The names a downloaded copy may have: the archive's, and apt-get download's, which keeps a version's epoch
        ("1:" of wordnet-base 1:3.0-37, which the archive's name leaves out) as "1%3a"."""
        epoch, colon, upstream = self.version.partition(":")
        if not colon:
            return (self.filename,)
        return self.filename, self.filename.replace(f"_{upstream}_", f"_{epoch}%3a{upstream}_", 1)

    @property
    def pinned(self) -> str:
        return f"{self.name}={self.version}"


def locate(packages: list, debs: Path | None, cache: Path, say: Callable[[str], None]) -> dict:
    """Each package's checked .deb: name -> path. debs: the user's directory (no download then); cache: where a
    download is kept for the next build."""
    found = {}
    for package in packages:
        if debs is not None:
            path = next((debs / name for name in package.filenames if (debs / name).is_file()), None)
            if path is None:
                missing = [p for p in packages if not any((debs / name).is_file() for name in p.filenames)]
                raise FileNotFoundError(
                    f"{debs} lacks {', '.join(p.filename for p in missing)}; download them there (on Debian 12, "
                    f"`cd {debs} && apt-get download {' '.join(p.pinned for p in missing)}`; anywhere, from "
                    f"{', '.join(ARCHIVE + p.pool for p in missing)}), or leave out --debs to have them downloaded")
        else:
            path = cache / package.filename
            if not path.is_file():
                say(f"downloading {package.filename} ({package.size / 1e6:.1f} MB)")
                download(package, path)
        check_pinned(path, package)
        found[package.name] = path
    return found


def check_pinned(path: Path, package: Package) -> None:
    """The file is the pinned package: its size (checked first, before any byte is read), then its SHA-256."""
    size = path.stat().st_size
    digest = sha256_of(path) if size == package.size else None
    if digest != package.sha256:
        got = f"SHA-256 {digest}" if digest else f"{size:,} bytes"
        expected = f"SHA-256 {package.sha256}" if digest else f"{package.size:,}"
        raise ValueError(f"{path} has {got}, the pinned {package.name} {package.version} has {expected}: it is "
                         f"another version, or damaged; remove it and download it again ({ARCHIVE}{package.pool})")


def download(package: Package, dest: Path) -> None:
    """The package into `dest` (whole and checked, or not at all): from Debian's archive, else from the snapshot."""
    failures = []
    for url in (ARCHIVE + package.pool, SNAPSHOT + package.sha1):
        try:
            body = fetch(url, package)
        except (OSError, ValueError) as e:
            failures.append(f"{url}: {e}")
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(dest, "wb") as f:
            f.write(body)
        return
    raise OSError(f"cannot download {package.filename} ({'; '.join(failures)}); on a machine with network, run "
                  f"`apt-get download {package.pinned}` (Debian 12) or save {ARCHIVE}{package.pool}, then give "
                  f"the directory with --debs DIR")


def fetch(url: str, package: Package) -> bytes:
    """url's body, if it is the pinned file: read up to the pinned size (a larger body is not the package), within
    MAX_SECONDS, its SHA-256 checked."""
    import urllib.request  # here, not at the top: 25 ms of every `minigpt train`'s start, for a download done once

    start, chunks, received = time.monotonic(), [], 0
    request = urllib.request.Request(url, headers={"User-Agent": "minigpt"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        while chunk := response.read(1 << 20):
            received += len(chunk)
            if received > package.size:
                raise ValueError(f"the server sent more than the {package.size:,} bytes of the pinned file")
            if time.monotonic() - start > MAX_SECONDS:
                raise TimeoutError(f"the download took more than {MAX_SECONDS} s")
            chunks.append(chunk)
    body = b"".join(chunks)
    if hashlib.sha256(body).hexdigest() != package.sha256:
        raise ValueError(f"what the server sent ({len(body):,} bytes) is not the pinned file (SHA-256 "
                         f"{hashlib.sha256(body).hexdigest()}, pinned {package.sha256})")
    return body
