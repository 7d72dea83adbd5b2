"""The applications' records, extracted from pinned Debian packages into the data that ships with minigpt:

    minigpt/applications/data/
        docstring-summary/{train,val,test}.jsonl   Python's docstrings: first paragraphs -> summary (docstrings.py)
        bible-translation/{train,val,test}.jsonl   Reina-Valera 1909 verse -> King James verse (bibles.py)
        wordnet-qa/{train,val,test}.jsonl          WordNet: "What does W mean in EXAMPLE?" -> definition (wordnet.py)
        wordnet-category/{train,val,test}.jsonl    WordNet: definition -> lexicographer file (wordnet.py)
        NOTICE          every source: its package, version, SHA-256, licence; the licence texts
        manifest.json   the SHA-256 of every .deb and of each file above; records per split

`minigpt data tasks` extracts them again (into the cache, or --out DIR: never over the installed package), and the
same packages give the same bytes: the records keep their reader's order until the split, which orders them by the
SHA-256 of "SEED:task:id" (a shuffle that depends on nothing but the id), then takes TEST, VAL and at most the
task's train records. A record longer than the bounds (inputs 400 characters, answers 200: prompt and answer fit
about 200 BPE tokens) is left out, and so is one whose input repeats an earlier record's (which could put the same
question in training and test). The .deb files are found and checked as `minigpt data build` finds them
(minigpt/corpus/fetch.py), and the files written all at once (minigpt/files.py, directory_write). When a reader
changes, the shipped data is refreshed the same way: extract into a new directory (--out DIR), copy its files over
minigpt/applications/data/, and extract again to see them reported identical.
"""

import hashlib
import json
from pathlib import Path
from typing import Callable, NamedTuple

from minigpt.applications import bibles, docstrings, wordnet
from minigpt.corpus import deb, fetch, sword
from minigpt.corpus.fetch import Package
from minigpt.corpus.sources import KJV_DEB
from minigpt.files import cache_dir, directory_write, sha256_of
from minigpt.validate import check_object, read_json

SHIPPED = Path(__file__).resolve().parent / "data"
SPLITS = ("train", "val", "test")
SEED = "minigpt-applications-1"
VAL, TEST = 250, 250
MAX_INPUT, MAX_ANSWER = 400, 200  # characters
CLASSES = 10  # wordnet-category: the largest lexicographer files
NOTICE, MANIFEST = "NOTICE", "manifest.json"
FORMAT = 1  # manifest.json's layout
PSF_LICENCE = "usr/lib/python3.11/LICENSE.txt"  # (the stdlib's copyright file is a link to libpython3.11-minimal's)

SPARV_DEB = Package("sword-text-sparv", "2.60-1", "debian/pool/main/s/sword-text-sparv/sword-text-sparv_2.60-1_all.deb",
                    2_722_332, "5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf",
                    "ed6bfcbf1e7e296b7db0109a85332ed6bb6d143d")
WORDNET_DEB = Package("wordnet-base", "1:3.0-37", "debian/pool/main/w/wordnet/wordnet-base_3.0-37_all.deb",
                      6_467_132, "61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752",
                      "78cc404951819f319f979e9b5d08db8304ce49b9")
STDLIB_DEB = Package("libpython3.11-stdlib", "3.11.2-6+deb12u9",  # (security updates: debian-security's pool)
                     "debian-security/pool/updates/main/p/python3.11/libpython3.11-stdlib_3.11.2-6+deb12u9_amd64.deb",
                     1_798_408, "10f13e000ee757f5f2d2d3569f9e30546214a0c850acd78695feae373bfa3e53",
                     "6478f2f894e217395545fef582422a0e6d62836c")
MINIMAL_DEB = Package("libpython3.11-minimal", "3.11.2-6+deb12u9",  # (os, re, collections, argparse: the core)
                      "debian-security/pool/updates/main/p/python3.11/libpython3.11-minimal_3.11.2-6+deb12u9_amd64.deb",
                      820_928, "69f41cfa3f4ba17284e538f843069d7529c53c207d2ae17a5b02785944870e33",
                      "0e640b66c2796b0243f44fdfdf912bfbbdec3c08")
PACKAGES = (MINIMAL_DEB, STDLIB_DEB, SPARV_DEB, KJV_DEB, WORDNET_DEB)
# what is read of each package: its reader's files, and the file NOTICE quotes for its licence
LICENCE_FILES = {package.name: f"usr/share/doc/{package.name}/copyright" for package in (SPARV_DEB, KJV_DEB, WORDNET_DEB)}
LICENCE_FILES[STDLIB_DEB.name] = PSF_LICENCE
WANTED = {MINIMAL_DEB.name: docstrings.wanted, STDLIB_DEB.name: docstrings.wanted, SPARV_DEB.name: sword.wanted,
          KJV_DEB.name: sword.wanted, WORDNET_DEB.name: wordnet.wanted}


class Task(NamedTuple):
    name: str
    about: str  # the source, for NOTICE
    licence: str
    packages: tuple  # the names of the packages it is made of
    fields: tuple  # a record's keys, in order; the first is "id", the last the answer
    train: int  # at most this many training records (the shipped data stays under 3 MB)
    records: Callable[[dict], list]  # package name -> its files (name -> bytes)  ->  records, in the reader's order


def wordnet_records(files: dict, kind: str) -> list:
    found, numbers = wordnet.read(files[WORDNET_DEB.name])
    return wordnet.question_records(found, numbers) if kind == "qa" else \
        wordnet.category_records(found, numbers, CLASSES)


TASKS = {task.name: task for task in (
    Task("docstring-summary", "Python 3.11's standard library, the docstrings of its modules and of their public "
                              "functions, classes and methods (first paragraphs -> summary sentence), parsed "
                              "with ast",
         "PSF License Agreement (Copyright 2001-2023 Python Software Foundation; quoted below)",
         (MINIMAL_DEB.name, STDLIB_DEB.name), ("id", "source", "target"), 4000,
         lambda files: docstrings.records({**files[MINIMAL_DEB.name], **files[STDLIB_DEB.name]},
                                         MAX_INPUT)),
    Task("bible-translation", "the Reina-Valera 1909 (Spanish; Sword module spaRV1909eb) and the King James Version "
                              "(Sword module engKJV2006eb), aligned verse by verse, their markup made plain text",
         "public domain, both (the King James Version outside the United Kingdom, where the Crown's letters patent "
         "restrict printing it)", (SPARV_DEB.name, KJV_DEB.name), ("id", "source", "target"), 3000,
         lambda files: bibles.pairs(files[SPARV_DEB.name], files[KJV_DEB.name])),
    Task("wordnet-qa", "WordNet 3.0: a synset's example sentence that holds one of its words, the question what "
                       "that word means there, its definition the answer",
         "the WordNet 3.0 licence (Princeton University; quoted whole below)", (WORDNET_DEB.name,),
         ("id", "context", "question", "answer"), 3000, lambda files: wordnet_records(files, "qa")),
    Task("wordnet-category", f"WordNet 3.0: a synset's definition and its lexicographer file, for the {CLASSES} "
                             f"largest files", "the WordNet 3.0 licence (Princeton University; quoted whole below)",
         (WORDNET_DEB.name,), ("id", "text", "label"), 4000, lambda files: wordnet_records(files, "category")),
)}


def bounded(task: Task, records: list) -> list:
    """The records within the bounds, each input's first occurrence only."""
    inputs, answer = task.fields[1:-1], task.fields[-1]
    seen, kept = set(), []
    for record in records:
        key = tuple(record[f] for f in inputs)
        if key in seen or any(len(record[f]) > MAX_INPUT for f in inputs) or len(record[answer]) > MAX_ANSWER:
            continue
        seen.add(key)
        kept.append(record)
    return kept


def split(task: Task, records: list) -> dict:
    """split -> its records: a shuffle seeded by SEED (each record's place: the SHA-256 of "SEED:task:id"), then
    TEST, VAL and at most task.train records."""
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the records of {task.name} share an id; the reader must keep ids unique")
    order = sorted(records, key=lambda r: hashlib.sha256(f"{SEED}:{task.name}:{r['id']}".encode()).hexdigest())
    return {"test": order[:TEST], "val": order[TEST:TEST + VAL], "train": order[TEST + VAL:TEST + VAL + task.train]}


def jsonl(records: list) -> bytes:
    """One JSON object a line, UTF-8 as it is (no \\u escapes), "\\n" on every OS."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


class Extracted(NamedTuple):
    manifest: dict
    fresh: bool  # extracted now (False: found extracted before, its files checked)


def extract(out: Path, debs: Path | None, say: Callable[[str], None]) -> Extracted:
    """The data in `out`: found there, extracted before (its files checked against its manifest), or extracted now
    from the .deb files in `debs` (None: the cache's, downloaded if missing). A directory holding anything else is
    refused, never written into."""
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise ValueError(f"{out} exists and holds no extracted records (no {MANIFEST}); extract into a new "
                             f"directory (--out DIR), or remove it")
        return Extracted(check(out), False)
    paths = fetch.locate(list(PACKAGES), debs, cache_dir() / "debs", say)
    files, licences = {}, {}
    for package in PACKAGES:
        say(f"reading {paths[package.name].name}")
        licence = LICENCE_FILES.get(package.name)
        files[package.name] = deb.read_files(paths[package.name],
                                             lambda n: WANTED[package.name](n) or n == licence)
        if licence is not None:
            if licence not in files[package.name]:
                raise ValueError(f"{paths[package.name]} lacks /{licence}; it is not the pinned {package.name}")
            licences[package.name] = files[package.name][licence].decode("utf-8", "replace")
    with directory_write(out) as tmp:
        written, tasks = {}, {}
        for task in TASKS.values():
            records = bounded(task, task.records(files))
            splits = split(task, records)
            (tmp / task.name).mkdir()
            for name in SPLITS:
                raw = jsonl(splits[name])
                (tmp / task.name / f"{name}.jsonl").write_bytes(raw)
                written[f"{task.name}/{name}.jsonl"] = {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw),
                                                        "records": len(splits[name])}
            tasks[task.name] = {"packages": list(task.packages), "fields": list(task.fields),
                                "candidates": len(records)}
            say(f"  {task.name}: {len(records):,} records, " + ", ".join(f"{n} {len(splits[n]):,}" for n in SPLITS))
        (tmp / NOTICE).write_bytes(notice(licences).encode("utf-8"))
        written[NOTICE] = {"sha256": sha256_of(tmp / NOTICE), "bytes": (tmp / NOTICE).stat().st_size}
        manifest = {"format": FORMAT, "command": "minigpt data tasks",
                    "split": f"ordered by the SHA-256 of '{SEED}:TASK:ID'; test the first {TEST}, val the next {VAL}, "
                             f"train at most the task's limit of the rest",
                    "bounds": {"input_characters": MAX_INPUT, "answer_characters": MAX_ANSWER},
                    "packages": [{"name": p.name, "version": p.version, "deb": p.filename, "sha256": p.sha256}
                                 for p in PACKAGES],
                    "tasks": tasks, "files": written}
        (tmp / MANIFEST).write_bytes((json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return Extracted(manifest, True)


def notice(licences: dict) -> str:
    packages = {p.name: p for p in PACKAGES}
    lines = ["The records of minigpt's four applications, extracted by `minigpt data tasks` "
             "(minigpt/applications/extract.py) from the Debian packages below, each checked against its pinned "
             "SHA-256. The records are excerpts of the sources, their markup removed and whitespace normalised.", ""]
    for task in TASKS.values():
        lines += [f"{task.name}: {task.about}", f"  licence:  {task.licence}"]
        lines += [f"  package:  {p.name} {p.version} ({p.filename}, SHA-256 {p.sha256})"
                  for p in (packages[name] for name in task.packages)]
        lines.append("")
    lines.append("The licence texts follow, as the packages ship them.")
    for name, text in licences.items():
        lines += ["", f"==== {name}: /{LICENCE_FILES[name]} ====", text.rstrip("\n")]
    return "\n".join(lines) + "\n"


def check(directory: Path) -> dict:
    """The manifest of extracted data in `directory`, each file it lists checked against its SHA-256; one clear
    ValueError for a file missing or changed."""
    manifest = check_object(read_json(directory / MANIFEST), directory / MANIFEST, {"format": int, "files": dict})
    for name, record in manifest["files"].items():
        path = directory / name
        check_object(record, directory / MANIFEST, {"sha256": str})
        if not path.is_file() or sha256_of(path) != record["sha256"]:
            raise ValueError(f"{path} is missing or not the file {directory / MANIFEST} lists (SHA-256); extract the "
                             f"data again with minigpt data tasks --out DIR")
    return manifest


def differences(extracted: dict, shipped: dict) -> list:
    """The files whose SHA-256 differs between two manifests (or that only one lists)."""
    names = sorted(set(extracted["files"]) | set(shipped["files"]))
    return [n for n in names if extracted["files"].get(n, {}).get("sha256") != shipped["files"].get(n, {}).get("sha256")]
