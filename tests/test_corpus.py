"""The corpus (minigpt/corpus/): each reader on packages made here, byte by byte as Debian lays them out (an ar archive
of a tar; a Sword zText module; an R lazy-load database; reStructuredText sources), damaged and hostile ones
refused in one line; the build, written once, found the second time, never over another corpus; the downloads, from
a server on this machine; the sample that ships, checked against its pins. Nothing here reaches the network but the
slow test, which builds the sample from Debian's archive and compares it with the one shipped."""

import gzip
import hashlib
import http.server
import io
import json
import shutil
import struct
import sys
import tarfile
import threading
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, error_line, require

from minigpt.corpus import SAMPLE, austen, build, deb, documents, fetch, osis, pydocs, sword
from minigpt.corpus.documents import Document
from minigpt.corpus.fetch import Package
from minigpt.corpus.sources import CORPORA, Corpus, Part, Reader, Source

SAMPLE_MAX_BYTES = 1 << 20  # the sample that ships: 1 MB at most, all its files together
HELD_OUT_RANGE = (0.015, 0.025)  # the share of 10,000 keys held out: 1 in 50, give or take sampling's noise


# --- packages made here: what Debian's tools write ------------------------------------------------------------

def ar(members: dict) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def deb_bytes(files: dict, compression: str = "xz", links: tuple = ()) -> bytes:
    """A .deb holding `files` (name -> bytes, installed under /) in data.tar.COMPRESSION; links: symbolic links."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode=f"w:{compression}" if compression in ("xz", "gz", "bz2") else "w") as tar:
        for name in ("./usr/", "./usr/share/"):
            tar.addfile(directory_entry(name))
        for name, content in files.items():
            info = tarfile.TarInfo(name if name.startswith("/") else "./" + name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in links:
            info = tarfile.TarInfo("./" + name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    suffix = f".{compression}" if compression else ""
    return ar({"debian-binary": b"2.0\n", "control.tar.xz": b"", f"data.tar{suffix}": data.getvalue()})


def directory_entry(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def package_of(path: Path, name: str) -> Package:
    raw = path.read_bytes()
    return Package(name, "1.0-1", f"debian/pool/main/t/{name}/{path.name}", len(raw), hashlib.sha256(raw).hexdigest(),
                   hashlib.sha1(raw).hexdigest())


def sword_files(blocks: list, conf: dict | None = None, testament: str = "ot") -> dict:
    """A sword-text package's files: its .conf and one testament of zText, each block a list of entries (an empty
    entry: a verse the module lacks). A size is recorded in 16 bits, as zText records it."""
    settings = {"DataPath": "./modules/texts/ztext/engtest/", "ModDrv": "zText", "CompressType": "ZIP",
                "SourceType": "OSIS", "Encoding": "UTF-8", **(conf or {})}
    files = {"usr/share/sword/mods.d/engtest.conf":
             ("[engTEST]\n" + "".join(f"{k}={v}\n" for k, v in settings.items())).encode()}
    bzs, bzv, bzz = b"", b"", b""
    for n, block in enumerate(blocks):
        raw = b""
        for entry in block:
            bzv += struct.pack("<IIH", n, len(raw), len(entry.encode()) % 65536)
            raw += entry.encode()
        compressed = zlib.compress(raw)
        bzs += struct.pack("<III", len(bzz), len(compressed), len(raw))
        bzz += compressed
    stem = f"usr/share/sword/modules/texts/ztext/engtest/{testament}"
    return {**files, f"{stem}.bzs": bzs, f"{stem}.bzv": bzv, f"{stem}.bzz": bzz}


def austen_files(novels: dict) -> dict:
    """janeaustenr's data/Rdata.rdx and .rdb, as R's lazy-load database lays them out, for novels: name -> lines."""
    rdata = require("rdata")

    def serialized(value) -> bytes:
        r = rdata.conversion.convert_python_to_r_data(value, file_type="rds")
        return rdata.unparser.unparse_data(r, file_format="xdr")

    rdb, variables = b"", {}
    for name, lines in novels.items():
        raw = serialized(np.array(lines))
        entry = struct.pack(">I", len(raw)) + zlib.compress(raw)
        variables[name] = np.array([len(rdb), len(entry)], dtype=np.int32)
        rdb += entry
    rdx = serialized({"variables": variables, "references": {}, "compressed": True})
    return {austen.DATA + ".rdx": gzip.compress(rdx), austen.DATA + ".rdb": rdb}


def chapters_entries(book: str, title: str, chapters: range) -> list:
    """The entries of a book in OSIS as the Sword modules hold it: its header, then per chapter a header and verses."""
    entries = [f'<div type="book" osisID="{book}" sID="b1"/><title type="main">{title}</title>']
    for c in chapters:
        entries.append(f'<chapter n="{c}" osisID="{book}.{c}" sID="{book}.{c}"/>')
        entries += [f'<w lemma="strong:H1">Verse</w> {v} of chapter {c}.' for v in (1, 2)]
    return entries


NOVEL_LINES = ["TITLE", "", "By Jane Austen", "", "Chapter 1", "", "It is a truth universally", "acknowledged.", "",
               "Second  paragraph.", "", "Chapter 2", "", "The end."]
EMMA_LINES = ["EMMA", "", "VOLUME I", "", "CHAPTER I", "", "Emma Woodhouse.", "", "VOLUME II", "", "CHAPTER I", "",
              "Emma and Harriet."]


# --- documents -----------------------------------------------------------------------------------------------

def test_documents_join_and_split_back(tmp_path):
    texts = ["one\n\ntwo", "thr\N{RIGHT SINGLE QUOTATION MARK}e", "four\nfive \N{ROCKET}"]
    joined = documents.join(texts)
    documents.write(tmp_path / "f.txt", texts)
    assert (tmp_path / "f.txt").read_bytes() == joined.encode("utf-8")
    assert documents.split(joined) == texts and joined.count(documents.SEPARATOR) == 2
    assert documents.words(joined) == 6 and documents.split(documents.join([])) == []
    with pytest.raises(ValueError, match="separator"):
        documents.join(["a <|endoftext|> b"])
    with pytest.raises(ValueError, match="document 1 holds the separator"):
        documents.write(tmp_path / "g.txt", ["a", "a <|endoftext|> b"])


def test_held_out_is_one_key_in_fifty_and_depends_on_the_key_alone():
    keys = [f"Book{b}.{c}" for b in range(100) for c in range(100)]
    share = sum(map(build.held_out, keys)) / len(keys)
    assert HELD_OUT_RANGE[0] < share < HELD_OUT_RANGE[1]
    assert [build.held_out(k) for k in keys[:500]] == [build.held_out(k) for k in keys[:500]]


# --- .deb ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["xz", "gz", "bz2", ""])
def test_a_deb_gives_the_files_asked_for(tmp_path, compression):
    files = {"usr/share/doc/x/copyright": b"public domain\n", "usr/share/x/a.txt": b"a" * 1001, "usr/bin/x": b"\0"}
    path = tmp_path / "x.deb"
    path.write_bytes(deb_bytes(files, compression, links=(("usr/share/x/link.txt", "a.txt"),)))
    got = deb.read_files(path, lambda name: name.startswith("usr/share/"))
    assert got == {name: data for name, data in files.items() if name.startswith("usr/share/")}


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[:len(raw) // 2], "cut short"),
    (lambda raw: b"PK\x03\x04" + raw[4:], "not a Debian package"),
    (lambda raw: raw.replace(b"2.0\n", b"3.0\n", 1), "format 2.0"),
    (lambda raw: raw.replace(b"data.tar.xz/", b"data.tar.zs/", 1), "compressed in a way"),
    (lambda raw: raw.replace(b"data.tar.xz/", b"data.tar.zst", 1), "zstd"),
    (lambda raw: raw[:-200] + bytes(200), "damaged"),
])
def test_a_damaged_deb_is_refused_in_one_line(tmp_path, damage, message):
    path = tmp_path / "x.deb"
    path.write_bytes(damage(deb_bytes({"usr/share/x/a.txt": np.random.default_rng(0).bytes(5000)})))
    with pytest.raises(ValueError, match=message):
        deb.read_files(path, lambda name: True)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/usr/share/x/abs.txt", "./usr/share/../../x.txt"])
def test_a_name_outside_the_package_is_refused(tmp_path, name):
    path = tmp_path / "x.deb"
    path.write_bytes(deb_bytes({"usr/share/x/a.txt": b"a", name: b"b"}))
    with pytest.raises(ValueError, match="outside the package"):
        deb.read_files(path, lambda n: True)


def test_a_deb_that_inflates_past_the_bound_is_stopped(tmp_path, monkeypatch):
    path = tmp_path / "bomb.deb"
    path.write_bytes(deb_bytes({"usr/share/x/zeros": bytes(4 << 20)}))  # 4 MB of zeros: a few kB of xz
    assert path.stat().st_size < 10_000
    monkeypatch.setattr(deb, "MAX_UNPACKED_BYTES", 1 << 20)
    with pytest.raises(ValueError, match="decompresses to more than 1,048,576 bytes"):
        deb.read_files(path, lambda n: False)
    monkeypatch.setattr(deb, "MAX_FILE_BYTES", 1 << 20)
    monkeypatch.setattr(deb, "MAX_UNPACKED_BYTES", 64 << 20)
    with pytest.raises(ValueError, match="past the bounds"):
        deb.read_files(path, lambda n: True)


# --- OSIS and Sword --------------------------------------------------------------------------------------------

def test_osis_keeps_what_a_printed_bible_shows():
    entries = [
        '<div type="front" sID="f"/><title>Preface</title><div type="x-p" sID="p"/>A word &amp; another.',
        *chapters_entries("Gen", "Genesis", range(1, 2)),
        '<div type="x-p" sID="p2"/>\N{PILCROW SIGN} In the beginning, God<note placement="foot">Or, '
        '<rdg>gods</rdg></note><w lemma="strong:H1">created</w>.',
        '<chapter osisID="Gen.2" sID="Gen.2"/><title type="psalm">A Psalm.</title>'
        '<lg sID="g"/><l sID="l1"/>The <divineName>Lord</divineName> is my shepherd;<l eID="l1"/><l sID="l2"/>'
        'I shall not want.<l eID="l2"/><lg eID="g"/>Then<note>a <note>nested</note> note</note>, prose.',
    ]
    got = osis.documents(entries)
    assert [d.key for d in got] == ["front", "Gen.1", "Gen.2"]
    assert got[0].text == "Preface\n\nA word & another."
    assert got[1].text == ("Genesis\n\nVerse 1 of chapter 1. Verse 2 of chapter 1.\n\n"
                           "In the beginning, God created.")
    assert got[2].text == "A Psalm.\n\nThe LORD is my shepherd;\nI shall not want.\n\nThen, prose."


def test_a_sword_module_gives_back_its_entries_and_chapters():
    blocks = [["", '<milestone type="x-importer"/>'], chapters_entries("Gen", "Genesis", range(1, 4)),
              chapters_entries("Exod", "Exodus", range(1, 3)) + ["", "<w>Last</w> verse."]]
    files = sword_files(blocks)
    stem = "usr/share/sword/modules/texts/ztext/engtest/ot"
    assert list(sword.entries(files, stem, "engTEST")) == [e for block in blocks for e in block if e]
    got = sword.documents(files)
    assert [d.key for d in got] == ["Gen.1", "Gen.2", "Gen.3", "Exod.1", "Exod.2"]
    assert got[3].text.startswith("Exodus\n\nVerse 1 of chapter 1.") and got[4].text.endswith("Last verse.")


def test_an_entry_of_64_kb_or_more_is_read_whole():
    # zText records sizes in 16 bits: 70,000 bytes are recorded as 4,464
    long_entry = "<w>word</w> " * 5834 + "end."
    assert len(long_entry.encode()) > 65536
    files = sword_files([["<chapter osisID='A.1' sID='A.1'/>", long_entry, "next."]])
    got = list(sword.entries(files, "usr/share/sword/modules/texts/ztext/engtest/ot", "engTEST"))
    assert got[1] == long_entry and got[2] == "next."


@pytest.mark.parametrize("conf, files_change, message", [
    ({"ModDrv": "RawText"}, None, "ModDrv=RawText"),
    ({"CompressType": "LZSS"}, None, "CompressType=LZSS"),
    ({"SourceType": "ThML"}, None, "SourceType=ThML"),
    ({"DataPath": "../../../etc/"}, None, "not a directory under"),
    ({}, lambda f: f.pop("usr/share/sword/modules/texts/ztext/engtest/ot.bzz"), "lacks"),
    ({}, lambda f: f.update({k: f[k][:-3] for k in f if k.endswith(".bzv")}), "whole number"),
    ({}, lambda f: f.update({k: struct.pack("<IIH", 7, 0, 5) for k in f if k.endswith(".bzv")}), "names block 7"),
    ({}, lambda f: f.update({k: struct.pack("<IIH", 0, 3, 900) for k in f if k.endswith(".bzv")}), "past the end"),
    ({}, lambda f: f.update({k: f[k][:-2] + b"\xff\xff" for k in f if k.endswith(".bzs")}), "more than"),
    ({}, lambda f: f.update({k: b"not zlib" + f[k] for k in f if k.endswith(".bzz")}), "not zlib data"),
])
def test_a_damaged_sword_module_is_refused_in_one_line(conf, files_change, message):
    files = sword_files([chapters_entries("Gen", "Genesis", range(1, 3))], conf)
    if files_change is not None:
        files_change(files)
    with pytest.raises(ValueError, match=message):
        sword.documents(files)


# --- Jane Austen's R data, the Python docs' sources ------------------------------------------------------------

def test_the_novels_come_out_chapter_by_chapter():
    novels = {name: [line.replace("TITLE", title) for line in NOVEL_LINES] for name, title in austen.NOVELS.items()}
    novels["emma"] = EMMA_LINES
    got = austen.documents(austen_files(novels))
    assert [d.key for d in got[:2]] == ["sensesensibility.1", "sensesensibility.2"]
    assert got[0].text == ("Sense and Sensibility\n\nBy Jane Austen\n\nChapter 1\n\n"
                           "It is a truth universally acknowledged.\n\nSecond paragraph.")
    emma = [d for d in got if d.key.startswith("emma.")]
    assert [d.text for d in emma] == ["EMMA\n\nVOLUME I\n\nCHAPTER I\n\nEmma Woodhouse.",
                                      "VOLUME II\n\nCHAPTER I\n\nEmma and Harriet."]
    assert len(got) == 2 * len(austen.NOVELS)


def test_damaged_r_data_is_refused_in_one_line():
    novels = {name: ["Chapter 1", "", "Text."] for name in austen.NOVELS}
    files = austen_files(novels)
    rdx, rdb = austen.DATA + ".rdx", austen.DATA + ".rdb"
    del novels["persuasion"]
    with pytest.raises(ValueError, match="lists no persuasion"):
        austen.documents(austen_files(novels))
    with pytest.raises(ValueError, match="claims 4,294,967,295 bytes"):
        austen.documents({**files, rdb: b"\xff\xff\xff\xff" + files[rdb][4:]})
    with pytest.raises(ValueError, match="not gzip data"):
        austen.documents({**files, rdx: b"R data" + files[rdx]})
    with pytest.raises(ValueError, match="past the end of Rdata.rdb"):
        austen.documents({**files, rdb: files[rdb][:100]})
    with pytest.raises(ValueError, match="lacks"):
        austen.documents({rdx: files[rdx]})


def test_without_rdata_the_reader_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdata", None)  # (any import of it now fails)
    with pytest.raises(ImportError, match=r'pip install "minigpt\[corpus\]"'):
        austen.documents({austen.DATA + ".rdx": b"", austen.DATA + ".rdb": b""})


def test_the_rst_sources_are_taken_lightly_cleaned():
    files = {pydocs.SOURCES + "tutorial/index.rst.txt": b"Tutorial\r\n========  \r\n\r\n\r\n\r\nText.\r\n\r\n",
             pydocs.SOURCES + "about.rst.txt": "About \u2014 these\n\n\n\n\n.. note::\n   Indented.\n".encode(),
             pydocs.SOURCES + "empty.rst.txt": b"\n\n", "usr/share/doc/python3.11/html/index.html": b"<html>"}
    got = pydocs.documents(files)
    assert got == [Document("about.rst", "About \u2014 these\n\n.. note::\n   Indented."),
                   Document("tutorial/index.rst", "Tutorial\n========\n\nText.")]
    with pytest.raises(ValueError, match="not UTF-8"):
        pydocs.documents({pydocs.SOURCES + "bad.rst.txt": b"caf\xe9"})


# --- locating and downloading the packages ---------------------------------------------------------------------

def test_a_missing_deb_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        fetch.locate(CORPORA["english"].packages, tmp_path, tmp_path / "cache", print)
    command = "apt-get download sword-text-web=426.0-1 r-cran-janeaustenr=1.0.0-1 python3.11-doc=3.11.2-6+deb12u9"
    assert command in str(e.value)
    assert "http://deb.debian.org/debian-security/pool/updates/main/p/python3.11/" in str(e.value)


def test_a_deb_that_is_not_the_pinned_one_is_refused(tmp_path):
    path = tmp_path / "x_1.0-1_all.deb"
    path.write_bytes(deb_bytes({"usr/share/doc/x/copyright": b"x"}))
    package = package_of(path, "x")
    fetch.check_pinned(path, package)
    path.write_bytes(path.read_bytes()[:-1] + b"!")  # (same size, one byte changed)
    with pytest.raises(ValueError, match="has SHA-256 .* the pinned x 1.0-1 has SHA-256"):
        fetch.check_pinned(path, package)
    path.write_bytes(path.read_bytes() + b"!")
    with pytest.raises(ValueError, match="bytes, the pinned x 1.0-1 has"):
        fetch.check_pinned(path, package)


@pytest.fixture
def server():
    """An HTTP server on this machine: path -> body (anything else: 404). Yields (base URL, routes)."""
    routes = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = routes.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", routes
    httpd.shutdown()


def test_a_download_falls_back_to_the_snapshot_and_is_checked(tmp_path, server, monkeypatch):
    base, routes = server
    monkeypatch.setattr(fetch, "ARCHIVE", base + "archive/")
    monkeypatch.setattr(fetch, "SNAPSHOT", base + "snapshot/")
    deb_path = tmp_path / "x_1.0-1_all.deb"
    deb_path.write_bytes(deb_bytes({"usr/share/doc/x/copyright": b"x"}))
    package, cache = package_of(deb_path, "x"), tmp_path / "cache"
    routes[f"/archive/{package.pool}"] = deb_path.read_bytes()[:-1] + b"?"  # (the archive serves other bytes)
    with pytest.raises(OSError, match="not the pinned file.*404.*apt-get download x=1.0-1"):
        fetch.locate([package], None, cache, print)
    assert not cache.exists() or not any(cache.iterdir())  # (nothing half-written, no temporary left)
    routes[f"/snapshot/{package.sha1}"] = deb_path.read_bytes()
    said = []
    assert fetch.locate([package], None, cache, said.append) == {"x": cache / package.filename}
    assert (cache / package.filename).read_bytes() == deb_path.read_bytes() and said == ["downloading x_1.0-1_all.deb "
                                                                                         "(0.0 MB)"]


# --- the build ---------------------------------------------------------------------------------------------------

@pytest.fixture
def tiny(tmp_path):
    """A corpus of three packages made here, as the real ones are made: a Bible, Austen's novels, docs pages."""
    debs = tmp_path / "debs"
    debs.mkdir()
    contents = {
        "sword-text-test": {**sword_files([chapters_entries("Gen", "Genesis", range(1, 61))]),
                            "usr/share/doc/sword-text-test/copyright": b"Bible: public domain\n"},
        "r-cran-test": {**austen_files({name: NOVEL_LINES for name in austen.NOVELS}),
                        "usr/share/doc/r-cran-test/copyright": b"License: MIT\n"},
        "python-doc-test": {**{f"{pydocs.SOURCES}page{i}.rst.txt": f"Page {i}\n=====\n".encode() for i in range(60)},
                            "usr/share/doc/python-doc-test/copyright": b"PSF License Agreement\n"},
    }
    readers = {"sword-text-test": Reader(sword.wanted, sword.documents),
               "r-cran-test": Reader(austen.wanted, austen.documents),
               "python-doc-test": Reader(pydocs.wanted, pydocs.documents)}
    parts = []
    for name, files in contents.items():
        path = debs / f"{name}_1.0-1_all.deb"
        path.write_bytes(deb_bytes(files))
        parts.append(Part(Source(f"the {name} text", package_of(path, name), f"{name}'s licence", "all of it",
                                 readers[name])))
    return Corpus("tiny", "a corpus made in a test", tuple(parts)), debs


def test_the_build_writes_the_split_once_and_finds_it_the_second_time(tmp_path, tiny):
    corpus, debs = tiny
    out = tmp_path / "corpora" / "tiny"
    said = []
    built = build.build(corpus, out, debs, said.append)
    assert built.fresh and sorted(p.name for p in out.iterdir()) == ["NOTICE", "manifest.json", "train.txt", "val.txt"]
    every = [d for part in corpus.parts for d in part.source.reader.documents(
        deb.read_files(debs / part.source.package.filename, part.source.reader.wanted))]
    val = [d.text for d in every if build.held_out(d.key)]
    assert 0 < len(val) < len(every) / 10  # (the made-up keys hold some out, as real ones do)
    assert documents.split((out / "val.txt").read_text()) == val
    assert documents.split((out / "train.txt").read_text()) == [d.text for d in every if not build.held_out(d.key)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == built.manifest and manifest["corpus"] == "tiny"
    for name, record in manifest["files"].items():
        assert record["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert [s["sha256"] for s in manifest["sources"]] == [p.source.package.sha256 for p in corpus.parts]
    notice = (out / "NOTICE").read_text()
    for part in corpus.parts:
        package = part.source.package
        assert f"{package.name} {package.version}" in notice and package.sha256 in notice
        assert part.source.licence in notice
    assert "PSF License Agreement" in notice and "License: MIT" in notice  # (the copyright files, quoted)
    stamp = (out / "train.txt").stat().st_mtime_ns
    again = build.build(corpus, out, debs, said.append)
    assert not again.fresh and again.manifest == manifest and (out / "train.txt").stat().st_mtime_ns == stamp
    assert not list(out.parent.glob("tiny.tmp-*"))


def test_the_build_never_writes_over_something_else(tmp_path, tiny):
    corpus, debs = tiny
    out = tmp_path / "tiny"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no corpus"):
        build.build(corpus, out, debs, print)
    shutil.rmtree(out)
    build.build(corpus, out, debs, print)
    other = Corpus("other", corpus.about, corpus.parts)
    with pytest.raises(ValueError, match="holds a different corpus"):
        build.build(other, out, debs, print)
    (out / "val.txt").write_text("changed")
    with pytest.raises(ValueError, match="val.txt is missing or not the file its manifest lists"):
        build.build(corpus, out, debs, print)


def test_a_build_that_differs_from_its_pin_leaves_nothing(tmp_path, tiny):
    corpus, debs = tiny
    pinned = Corpus(corpus.name, corpus.about, corpus.parts, {"train.txt": "0" * 64})
    out = tmp_path / "tiny"
    with pytest.raises(ValueError, match="not the pinned 0000"):
        build.build(pinned, out, debs, print)
    assert not out.exists() and not list(tmp_path.glob("tiny.tmp-*"))


def test_a_slice_takes_whole_documents_from_its_first_key(tmp_path, tiny):
    corpus, debs = tiny
    bible = corpus.parts[0].source
    found = bible.reader.documents(deb.read_files(debs / bible.package.filename, bible.reader.wanted))
    budget = sum(len(d.text.encode()) for d in found[10:15])
    taken = build.select(Part(bible, "Gen.11", budget), found)
    assert taken == found[10:15]
    assert build.select(Part(bible, leave_out=("Gen",)), found) == []
    with pytest.raises(ValueError, match="no document 'Exod.1'"):
        build.select(Part(bible, "Exod.1", budget), found)


# --- the command, the sample that ships --------------------------------------------------------------------------

def test_the_command_says_what_to_download(tmp_path, capsys):
    code, err = cli(capsys, "data", "build", "--debs", str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 1
    error_line(err, "apt-get download sword-text-web=426.0-1 r-cran-janeaustenr=1.0.0-1 "
                    "python3.11-doc=3.11.2-6+deb12u9")
    assert not (tmp_path / "out").exists()


def test_the_command_finds_the_sample_built(tmp_path, capsys):
    shutil.copytree(SAMPLE, tmp_path / "sample")
    code, err = cli(capsys, "data", "build", "sample", "--out", str(tmp_path / "sample"))
    assert code == 0, err
    code, err = cli(capsys, "data", "build", "english", "--out", str(tmp_path / "sample"))
    error_line(err, "holds a different corpus")


def test_the_shipped_sample_is_its_pinned_build():
    pinned = CORPORA["sample"].pinned
    for name in ("train.txt", "val.txt"):
        assert hashlib.sha256((SAMPLE / name).read_bytes()).hexdigest() == pinned[name]
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    for name, record in manifest["files"].items():
        assert hashlib.sha256((SAMPLE / name).read_bytes()).hexdigest() == record["sha256"]
    assert sum(p.stat().st_size for p in SAMPLE.iterdir()) <= SAMPLE_MAX_BYTES
    assert all(s["train"]["documents"] and s["val"]["documents"] for s in manifest["sources"])
    assert all(build.held_out(key) for s in manifest["sources"] for key in s["val"]["keys"])
    assert [s["sha256"] for s in manifest["sources"]] == [p.source.package.sha256 for p in CORPORA["sample"].parts]
    text = (SAMPLE / "train.txt").read_text() + (SAMPLE / "val.txt").read_text()
    assert "<w" not in text and "<note" not in text and "&amp;" not in text and "\N{PILCROW SIGN}" not in text


def reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_the_sample_builds_from_debians_archive_as_shipped(tmp_path, monkeypatch):
    sample = CORPORA["sample"]
    if not reachable(fetch.ARCHIVE + sample.packages[0].pool):
        pytest.skip(f"{fetch.ARCHIVE} cannot be reached")
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path / "cache"))
    built = build.build(sample, tmp_path / "sample", None, print)  # (which checks the pins)
    assert built.fresh
    for name in ("train.txt", "val.txt", "NOTICE"):
        assert (tmp_path / "sample" / name).read_bytes() == (SAMPLE / name).read_bytes()
