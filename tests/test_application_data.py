"""The applications' shipped records (minigpt/applications/data/): their files are the ones the manifest pins, their
records the contract's (keys, bounds, sizes, disjoint splits); the readers that extract them (docstrings, Bibles,
WordNet) give what they should on tiny inputs made here; the .deb checks fail with one clear line; and (slow) the
extraction from the pinned packages in the cache gives the shipped bytes again."""

import ast
import gzip
import hashlib
import json
import shutil

import pytest
from helpers import cli, error_line
from test_corpus import deb_bytes, sword_files

from minigpt.applications import bibles, docstrings, extract, wordnet
from minigpt.corpus import deb, sword
from minigpt.files import cache_dir

FIELDS = {"docstring-summary": ["id", "source", "target"], "bible-translation": ["id", "source", "target"],
          "wordnet-qa": ["id", "context", "question", "answer"], "wordnet-category": ["id", "text", "label"]}
MAX_SHIPPED_BYTES = 3_000_000
USER_DEBS = cache_dir() / "debs"  # (read at import: the tests then run with a cache private to the session)


def shipped(task: str, split: str) -> list:
    lines = (extract.SHIPPED / task / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# --- the shipped files ------------------------------------------------------------------------------------------

def test_the_shipped_files_are_the_ones_the_manifest_pins_and_stay_small():
    manifest = json.loads((extract.SHIPPED / extract.MANIFEST).read_text())
    expected = {f"{task}/{split}.jsonl" for task in FIELDS for split in extract.SPLITS} | {extract.NOTICE}
    assert set(manifest["files"]) == expected
    for name, record in manifest["files"].items():
        raw = (extract.SHIPPED / name).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == record["sha256"] and len(raw) == record["bytes"], name
    assert {p["name"]: p["sha256"] for p in manifest["packages"]} == {p.name: p.sha256 for p in extract.PACKAGES}
    assert sum(p.stat().st_size for p in extract.SHIPPED.rglob("*") if p.is_file()) < MAX_SHIPPED_BYTES


def test_a_changed_file_fails_the_check_with_one_line(tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(extract.SHIPPED, copy)
    assert extract.check(copy)["files"] == extract.check(extract.SHIPPED)["files"]
    with (copy / "wordnet-qa" / "test.jsonl").open("a") as f:
        f.write("\n")
    with pytest.raises(ValueError, match=r"wordnet-qa/test.jsonl is missing or not the file"):
        extract.check(copy)


@pytest.mark.parametrize("task", list(FIELDS))
def test_records_follow_the_contract(task):
    splits = {split: shipped(task, split) for split in extract.SPLITS}
    manifest = json.loads((extract.SHIPPED / extract.MANIFEST).read_text())
    assert len(splits["val"]) == extract.VAL and len(splits["test"]) == extract.TEST
    assert 0 < len(splits["train"]) <= min(extract.TASKS[task].train, 4000)
    for split, records in splits.items():
        assert manifest["files"][f"{task}/{split}.jsonl"]["records"] == len(records)
        for r in records:
            assert list(r) == FIELDS[task] and all(isinstance(v, str) and v == v.strip() and v for v in r.values())
            assert all(len(r[f]) <= extract.MAX_INPUT for f in FIELDS[task][1:-1]), r
            assert len(r[FIELDS[task][-1]]) <= extract.MAX_ANSWER, r
    ids = [set(r["id"] for r in records) for records in splits.values()]
    assert sum(map(len, ids)) == sum(map(len, splits.values()))  # (unique within each split)
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])  # and across them


def test_the_category_task_has_the_ten_largest_lexicographer_files_and_the_qa_context_holds_its_word():
    labels = {r["label"] for split in extract.SPLITS for r in shipped("wordnet-category", split)}
    assert len(labels) == extract.CLASSES and {"noun.artifact", "noun.person", "adj.all"} <= labels
    for r in shipped("wordnet-qa", "test"):
        word = r["question"].split('"')[1]
        assert word.lower() in r["context"].lower() and r["question"].endswith(f'"{r["context"]}"?')


# --- the readers on tiny inputs ----------------------------------------------------------------------------------

LEXNAMES_PAGE = ".TH LEXNAMES 5WN\n.nf\n00\tadj.all\tall adjective clusters\n03\tnoun.Tops\tunique beginners\n" \
                "01\tadj.pert\trelational adjectives\n02\tadv.all\tall adverbs\n"
DATA_NOUN = ("  1 This software and database is being provided to you, the LICENSEE, by\n"
             "00000100 03 n 02 crock 0 earthenware_jar 0 000 | an earthen jar (made of baked clay)\n"
             "00000200 03 n 01 crock 0 001 @ 00000100 n 0000 | nonsense; foolish talk; \"that's a crock\"; "
             "\"a crock of lies\"\n"
             "00000300 03 n 02 big_deal 0 fuss 0 000 | a matter of importance; \"it was a Big Deal to him\"\n")
INDEX_NOUN = "  1 licence\ncrock n 2 1 @ 2 0 00000200 00000100\nbig_deal n 1 0 1 0 00000300\nfuss n 1 0 1 0 00000300\n"


def wordnet_files(data_noun: str = DATA_NOUN) -> dict:
    files = {wordnet.LEXNAMES_PAGE: gzip.compress(LEXNAMES_PAGE.encode())}
    for part in wordnet.PARTS:
        files[f"{wordnet.ROOT}data.{part}"] = (data_noun if part == "noun" else "").encode()
        files[f"{wordnet.ROOT}index.{part}"] = (INDEX_NOUN if part == "noun" else "").encode()
    return files


def test_wordnet_lines_become_questions_and_categories():
    found, numbers = wordnet.read(wordnet_files())
    assert [s.words for s in found] == [("crock", "earthenware_jar"), ("crock",), ("big_deal", "fuss")]
    assert found[1].definition == "nonsense; foolish talk" and found[1].examples == ("that's a crock", "a crock of lies")
    assert wordnet.question_records(found, numbers) == [
        {"id": "crock.n.01", "context": "that's a crock", "question": 'What does "crock" mean in "that\'s a crock"?',
         "answer": "nonsense; foolish talk"},
        {"id": "big_deal.n.01", "context": "it was a Big Deal to him",  # (any case; underscores as spaces)
         "question": 'What does "big deal" mean in "it was a Big Deal to him"?', "answer": "a matter of importance"}]
    assert [(r["id"], r["label"]) for r in wordnet.category_records(found, numbers, 1)] == [
        ("crock.n.02", "noun.Tops"), ("crock.n.01", "noun.Tops"), ("big_deal.n.01", "noun.Tops")]


def test_a_damaged_wordnet_line_is_named():
    with pytest.raises(ValueError, match=r"data.noun, line 2: not a WordNet synset"):
        wordnet.read(wordnet_files("  licence\n00000100 99 n 01 crock 0 000 | a jar\n"))


MODULE = '''"""A module."""

def dumps(obj):
    """Serialize ``obj`` to a JSON formatted ``str``.

    If ``skipkeys`` is true then keys
    that are not basic types are skipped.
    """

def _private():
    """Hidden.

    Never taken."""

class Codec:
    """Encode and decode.

    >>> Codec().encode("x")
    """

    def encode(self, text):
        """Return the bytes of text.

        The text is UTF-8 encoded."""

    def decode(self, raw):
        """Return the text
        of raw, on two lines."""

def f():
    """no capital, no body"""
'''


def test_docstrings_give_body_to_first_line_pairs_of_public_definitions_only():
    root = docstrings.ROOT
    files = {f"{root}json/__init__.py": MODULE.encode(), f"{root}test/test_json.py": b"x = (",
             f"{root}idlelib/editor.py": MODULE.encode(), f"{root}json/__main__.py": MODULE.encode()}
    assert not docstrings.wanted(f"{root}test/test_json.py") and docstrings.wanted(f"{root}_pyio.py")
    got = docstrings.records({n: b for n, b in files.items() if docstrings.wanted(n)}, extract.MAX_INPUT)
    assert got == [{"id": "json.dumps", "source": "If skipkeys is true then keys that are not basic types are skipped.",
                    "target": "Serialize obj to a JSON formatted str."},
                   {"id": "json.Codec.encode", "source": "The text is UTF-8 encoded.",
                    "target": "Return the bytes of text."}]
    ast.parse(MODULE)  # (the module is valid Python: what was left out was left out by the rules)


CUT_LIMIT = 40  # characters: each source below is longer, or only just shorter
CUT_MODULE = '''"""Tools for cutting.

A module's docstring is a pair too.
"""

def long(x):
    """Return x, cut short.

    First here. Then more. Then, e.g. Foo, a sentence that runs past the bound.
    """

def paragraphs(x):
    """Return x, cut at a paragraph.

    A paragraph ends here.

    A second paragraph that runs well past the bound
    """

def endless(x):
    """Return x, never cut.

    one clause running on and on with no full stop before the bound at all.
    """

def bare(x):
    """Return x.
    The next line starts a new sentence.
    """

def continued(x):
    """Return x.
    and so on.

    A body.
    """

def wrapped(x):
    """Return the value of x, in a summary that
    runs over two lines. Then a body sentence.
    """

def titled(x):
    """Return the first value for `name'

    A ``body``.
    """

def signature(x):
    """Signature(x) -> y

    A body.
    """

def example(x):
    """Show how it works.

    Prose first.

    Example:

    >>> example(1)
    """
'''


def test_long_docstrings_are_cut_at_their_last_sentence_end_and_wrapped_summaries_are_read():
    got = docstrings.records({f"{docstrings.ROOT}cutting.py": CUT_MODULE.encode()}, CUT_LIMIT)
    assert [(r["id"], r["source"], r["target"]) for r in got] == [
        ("cutting", "A module's docstring is a pair too.", "Tools for cutting."),
        ("cutting.long", "First here. Then more.", "Return x, cut short."),  # (never after "e.g.")
        ("cutting.paragraphs", "A paragraph ends here.", "Return x, cut at a paragraph."),
        ("cutting.bare", "The next line starts a new sentence.", "Return x."),
        ("cutting.wrapped", "Then a body sentence.", "Return the value of x, in a summary that runs over two lines."),
        ("cutting.titled", "A body.", "Return the first value for 'name'"),
        ("cutting.example", "Prose first.", "Show how it works.")]  # (up to the doctest and what introduces it)
    assert all(len(r["source"]) <= CUT_LIMIT for r in got)
    whole = docstrings.records({f"{docstrings.ROOT}cutting.py": CUT_MODULE.encode()}, 1000)
    assert {r["id"]: r["source"] for r in whole}["cutting.long"] == \
        "First here. Then more. Then, e.g. Foo, a sentence that runs past the bound."
    ast.parse(CUT_MODULE)


def bible(verses: list, versification: str = "KJV") -> dict:
    """A Sword module's files holding one book of two chapters; `verses`: chapter -> its verses' OSIS."""
    entries = ['<div type="book" osisID="John" sID="b1"/><title type="main">JOHN</title>']
    for number, chapter in enumerate(verses, 1):
        entries.append(f'<chapter n="{number}" osisID="John.{number}" sID="John.{number}"/>')
        entries += chapter
    return sword_files([entries], {"Versification": versification}, "nt")


def test_two_bibles_align_by_verse_number_their_markup_made_plain():
    spanish = bible([['<w lemma="strong:G1">EN el</w> principio', ""], ["Porque de tal manera", "Amén."]])
    english = bible([['<title type="x-heading">Heading</title>In the <w lemma="strong:G1">beginning</w>',
                      "was the Word"], ['For <note type="x">a note</note>God  so', ""]])
    assert bibles.verses(english) == {"John 1:1": "In the beginning", "John 1:2": "was the Word",
                                      "John 2:1": "For God so"}
    assert bibles.pairs(spanish, english) == [{"id": "John 1:1", "source": "EN el principio", "target": "In the beginning"},
                                              {"id": "John 2:1", "source": "Porque de tal manera",
                                               "target": "For God so"}]
    with pytest.raises(ValueError, match="different versifications"):
        bibles.pairs(bible([["x"]], "Vulg"), english)


def test_bounds_and_repeated_inputs_are_left_out_and_the_split_is_seeded_by_id():
    task = extract.TASKS["docstring-summary"]
    records = [{"id": f"m.f{i}", "source": f"body {i % 600}", "target": "Do it."} for i in range(700)]
    records.append({"id": "m.long", "source": "x" * (extract.MAX_INPUT + 1), "target": "Do it."})
    kept = extract.bounded(task, records)
    assert [r["id"] for r in kept] == [f"m.f{i}" for i in range(600)]
    splits = extract.split(task, kept)
    assert [len(splits[s]) for s in ("test", "val", "train")] == [extract.TEST, extract.VAL, 600 - 500]
    again = extract.split(task, list(reversed(kept)))  # (the order depends on the ids, not on the input's order)
    assert again == splits and splits["test"] != kept[:extract.TEST]


# --- the .deb files ---------------------------------------------------------------------------------------------

def test_a_missing_or_wrong_deb_gives_one_line(tmp_path, capsys):
    code, err = cli(capsys, "data", "tasks", "--debs", str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 1
    error_line(err, "lacks", "wordnet-base_3.0-37_all.deb", "apt-get download", "wordnet-base=1:3.0-37")
    for package in extract.PACKAGES:  # (wordnet-base under apt-get download's name, its epoch as "1%3a")
        (tmp_path / package.filenames[-1]).write_bytes(deb_bytes({"usr/share/doc/x/copyright": b"x"}))
    assert "wordnet-base_1%3a3.0-37_all.deb" in extract.WORDNET_DEB.filenames
    code, err = cli(capsys, "data", "tasks", "--debs", str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 1 and not (tmp_path / "out").exists()
    error_line(err, extract.PACKAGES[0].filename, "bytes", "the pinned libpython3.11-minimal", "download it again")
    first = extract.PACKAGES[0]  # the pinned size, other bytes: its SHA-256 tells
    (tmp_path / first.filename).write_bytes(bytes(first.size))
    code, err = cli(capsys, "data", "tasks", "--debs", str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 1 and not (tmp_path / "out").exists()
    error_line(err, f"SHA-256 {hashlib.sha256(bytes(first.size)).hexdigest()}", f"SHA-256 {first.sha256}")


# --- the extraction from the pinned packages -------------------------------------------------------------------

@pytest.mark.slow
def test_extracting_again_from_the_cached_debs_gives_the_shipped_bytes(tmp_path, capsys):
    debs = USER_DEBS
    missing = [p.filename for p in extract.PACKAGES if not (debs / p.filename).is_file()]
    if missing:
        pytest.skip(f"{debs} lacks {', '.join(missing)} (minigpt data tasks downloads them there)")
    code, err = cli(capsys, "data", "tasks", "--debs", str(debs), "--out", str(tmp_path / "out"))
    assert code == 0, err
    for path in sorted(p for p in extract.SHIPPED.rglob("*") if p.is_file()):
        assert (tmp_path / "out" / path.relative_to(extract.SHIPPED)).read_bytes() == path.read_bytes(), path
    kjv = bibles.verses(deb.read_files(debs / extract.KJV_DEB.filename, sword.wanted))
    spanish = bibles.verses(deb.read_files(debs / extract.SPARV_DEB.filename, sword.wanted))
    assert kjv["Gen 1:1"] == "In the beginning God created the heaven and the earth."
    assert kjv["John 3:16"].startswith("For God so loved") and spanish["John 3:16"].startswith("Porque de tal manera")
    assert kjv["Rev 22:21"].startswith("The grace") and spanish["Rev 22:21"].startswith("La gracia")
