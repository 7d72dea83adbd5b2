"""A named corpus, built once into the cache (or a directory given): its .deb files located and checked
(fetch.py), each source's documents read (sword.py, austen.py, pydocs.py), split into training and held-out text,
and written whole or not at all:

    CACHE/corpora/NAME/
        train.txt       the training documents, separated by <|endoftext|> lines (documents.py)
        val.txt         the held-out documents, which no training step sees: about 1 in 50 (HELD_OUT)
        NOTICE          every source: its package, version, SHA-256, licence, what was taken; their copyright files
        manifest.json   the SHA-256 of every .deb and of each file above; sizes and words per source and split

The split is by document: a document is held out when the SHA-256 of its key ("Gen.1", "emma.12",
"library/os.rst"), read as a number, is divisible by 50. It depends on nothing but the key, so it is the same in every
build, in every corpus, and in both Bibles (whose chapters share their keys).

The files are written into a temporary directory beside the corpus's and renamed into place (minigpt/files.py,
directory_write): a build that stops leaves nothing. A second build of the same corpus finds it (its manifest, its
files' SHA-256s) and says so; a directory holding anything else is refused, never overwritten. A build whose
train.txt or val.txt differs from the SHA-256s the corpus pins (sources.py) is refused too: the same packages read by
the same code give the same bytes, so a difference means the code changed.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, NamedTuple

from minigpt.corpus import deb, documents, fetch
from minigpt.corpus.sources import Corpus, Part
from minigpt.files import cache_dir, directory_write, sha256_of
from minigpt.validate import check_object, read_json

HELD_OUT = 50  # one document in HELD_OUT (in expectation) goes to val.txt
TRAIN, VAL, NOTICE, MANIFEST = "train.txt", "val.txt", "NOTICE", "manifest.json"
FORMAT = 1  # manifest.json's layout


class Built(NamedTuple):
    path: Path
    manifest: dict
    fresh: bool  # built now (False: found built before)


def corpus_dir(name: str) -> Path:
    """Where `minigpt data build NAME` writes the corpus: the cache's corpora/NAME."""
    return cache_dir() / "corpora" / name


def held_out(key: str) -> bool:
    """Whether the document keyed `key` is held out (val.txt)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % HELD_OUT == 0


def build(corpus: Corpus, out: Path, debs: Path | None, say: Callable[[str], None]) -> Built:
    """The corpus in `out`: found there, built before, or built now from the .deb files in `debs` (None: the
    cache's, downloaded if missing)."""
    found = existing(corpus, out)
    if found is not None:
        return Built(out, found, False)
    remove_stale(out)
    paths = fetch.locate(corpus.packages, debs, cache_dir() / "debs", say)
    train, val, sources, copyrights = [], [], [], {}
    for part in corpus.parts:
        source = part.source
        say(f"reading {source.title} from {source.package.filename}")
        files = deb.read_files(paths[source.package.name], lambda n: source.reader.wanted(n) or n == source.copyright)
        if source.copyright not in files:
            raise ValueError(f"{paths[source.package.name]} lacks /{source.copyright}; it is not the pinned package")
        copyrights[source.package.name] = files[source.copyright].decode("utf-8", "replace")
        taken = select(part, source.reader.documents(files))
        kept, held = [d for d in taken if not held_out(d.key)], [d for d in taken if held_out(d.key)]
        train += [d.text for d in kept]
        val += [d.text for d in held]
        sources.append(source_record(part, kept, held))
        say(f"  {len(taken):,} documents, {sum(len(d.text.encode()) for d in taken) / 1e6:.2f} MB "
            f"({len(held):,} held out)")
    with directory_write(out) as tmp:
        files = {}
        for name, texts in ((TRAIN, train), (VAL, val)):
            documents.write(tmp / name, texts)
            files[name] = file_record(tmp / name, texts)
        text = notice(corpus, copyrights)
        (tmp / NOTICE).write_bytes(text.encode("utf-8"))  # (bytes: "\n" on every OS)
        files[NOTICE] = {k: v for k, v in file_record(tmp / NOTICE, [text]).items() if k != "documents"}
        manifest = {"format": FORMAT, "corpus": corpus.name, "command": f"minigpt data build {corpus.name}",
                    "separator": documents.SEPARATOR.strip("\n"), "held_out": f"1 document in {HELD_OUT}",
                    "sources": sources, "files": files}
        check_pins(corpus, manifest)  # (an error here leaves nothing in place)
        (tmp / MANIFEST).write_bytes((json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return Built(out, manifest, True)


def select(part: Part, found: list) -> list:
    """The documents of a part: all but those left out, or from the one keyed part.first on, while they fit in
    part.budget bytes."""
    found = [d for d in found if d.key.split(".")[0] not in part.leave_out]
    keys = [d.key for d in found]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{part.source.title}: two documents share a key; the reader must keep keys unique")
    if part.first is None:
        return found
    if part.first not in keys:
        raise ValueError(f"{part.source.title} has no document {part.first!r}")
    taken, size = [], 0
    for d in found[keys.index(part.first):]:
        size += len(d.text.encode("utf-8"))
        if part.budget is not None and size > part.budget:
            break
        taken.append(d)
    return taken


def source_record(part: Part, train: list, val: list) -> dict:
    package = part.source.package
    record = {"title": part.source.title, "package": package.name, "version": package.version,
              "deb": package.filename, "sha256": package.sha256, "licence": part.source.licence,
              "taken": part.source.taken}
    if part.first is not None:
        record["slice"] = {"first": part.first, "budget_bytes": part.budget}
    if part.leave_out:
        record["left_out"] = list(part.leave_out)
    for split, chosen in (("train", train), ("val", val)):
        record[split] = {"documents": len(chosen), "bytes": sum(len(d.text.encode("utf-8")) for d in chosen),
                         "words": sum(documents.words(d.text) for d in chosen)}
    record["val"]["keys"] = [d.key for d in val]  # (which chapters, pages are held out: a few dozen)
    return record


def file_record(path: Path, texts: list) -> dict:
    """A written file's SHA-256 and size, and the words and documents of the texts it holds."""
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size, "words": sum(map(documents.words, texts)),
            "documents": len(texts)}


def notice(corpus: Corpus, copyrights: dict) -> str:
    lines = [f'The corpus "{corpus.name}": {corpus.about}.',
             f"Built by `minigpt data build {corpus.name}` from the Debian packages below, each checked against its "
             f"pinned SHA-256. train.txt and val.txt are the sources' texts, documents separated by "
             f"{documents.SEPARATOR.strip()} lines; val.txt holds 1 document in {HELD_OUT}, chosen by its key.", ""]
    for part in corpus.parts:
        package = part.source.package
        taken = part.source.taken if part.first is None else \
            f"a slice: whole documents from {part.first} on, at most {part.budget:,} bytes, of {part.source.taken}"
        lines += [part.source.title,
                  f"  package:  {package.name} {package.version} ({package.filename}, SHA-256 {package.sha256})",
                  f"  licence:  {part.source.licence}", f"  taken:    {taken}", ""]
    lines.append("The packages' copyright files follow, as Debian ships them.")
    for name, text in copyrights.items():
        lines += ["", f"==== {name}: /usr/share/doc/{name}/copyright ====", text.rstrip("\n")]
    return "\n".join(lines) + "\n"


def check_pins(corpus: Corpus, manifest: dict) -> None:
    for name, pinned in corpus.pinned.items():
        got = manifest["files"][name]["sha256"]
        if got != pinned:
            raise ValueError(f"the build of {corpus.name} gives a {name} with SHA-256 {got}, not the pinned {pinned}: "
                             f"the code that reads the packages changed since the pin; if on purpose, pin the new "
                             f"SHA-256s in minigpt/corpus/sources.py")


def existing(corpus: Corpus, out: Path) -> dict | None:
    """The manifest of the corpus already built in `out`; None if `out` is missing or empty. A directory holding
    anything else (another corpus, a damaged one, other files) is refused: it is never overwritten."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if not (out / MANIFEST).is_file():
        raise ValueError(f"{out} exists and holds no corpus (no {MANIFEST}); remove it, or build elsewhere (--out)")
    manifest = check_object(read_json(out / MANIFEST), out / MANIFEST,
                            {"format": int, "corpus": str, "sources": list, "files": dict})
    sources = [check_object(s, out / MANIFEST, {"package": str, "sha256": str}) for s in manifest["sources"]]
    files = {name: check_object(record, out / MANIFEST, {"sha256": str}) for name, record in manifest["files"].items()}
    same = (manifest["format"] == FORMAT and manifest["corpus"] == corpus.name
            and [(s["package"], s["sha256"]) for s in sources] == [(p.source.package.name, p.source.package.sha256)
                                                                   for p in corpus.parts]
            and all(name in files and files[name]["sha256"] == pinned for name, pinned in corpus.pinned.items()))
    if not same:
        raise ValueError(f"{out} holds a different corpus ({manifest['corpus']!r}, built from other packages or by "
                         f"other code); remove it to build {corpus.name} there, or build elsewhere (--out)")
    for name, record in files.items():
        path = out / name
        if path.parent != out or not path.is_file() or sha256_of(path) != record["sha256"]:
            raise ValueError(f"{path} is missing or not the file its manifest lists (SHA-256); the corpus is "
                             f"damaged: remove {out} and build it again")
    return manifest


def remove_stale(out: Path) -> None:
    """The temporaries of builds of this corpus that were killed (out.tmp-PID, whose process is gone)."""
    for tmp in out.parent.glob(f"{out.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[1]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # (signal 0: nothing sent, only asked whether the process exists)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
