"""WordNet 3.0's database (Debian's wordnet-base) read into the records of two tasks: question answering with a
context (wordnet-qa) and classification (wordnet-category).

A line of data.noun, data.verb, data.adj, data.adv (wndb(5WN); the licence header's lines begin with two spaces):

    03133415 06 n 02 crock 0 earthenware_jar 0 002 @ 03593526 n 0000 + 01535020 v 0101 | an earthen jar ...
    offset   lex_filenum ss_type w_cnt (hex) word lex_id ...  p_cnt (pointers) [frames] | gloss

The gloss is the definition, then its quoted examples: `nonsense; foolish talk; "that's a crock"`. A line of
index.noun (and the others) lists a lemma's synsets in sense order, the last synset_cnt fields:

    crock n 3 2 @ + 3 0 14793533 06608525 03133415

so the synset 06608525 is the lemma's second sense, "crock.n.02" (the name NLTK gives it). The lexicographer files'
names (lex_filenum 06 is noun.artifact) come from the table of lexnames(5WN), whose man page the package ships.
"""

import gzip
import io
import re
from typing import NamedTuple

ROOT = "usr/share/wordnet/"
PARTS = ("noun", "verb", "adj", "adv")  # data.PART and index.PART
LEXNAMES_PAGE = "usr/share/man/man5/lexnames.5WN.gz"
LEXNAME_ROW = re.compile(r"^(\d\d)\t([a-z]+\.[A-Za-z]+)\s*\t", re.MULTILINE)  # "06\tnoun.artifact\tnouns ..."
EXAMPLE_START = re.compile(r";\s*(?=\")")  # where an example begins: a ";" followed by a quote
MAX_PAGE_BYTES = 1 << 20  # lexnames(5WN), decompressed: 5 KB
ADJECTIVE_MARKER = re.compile(r"\((?:a|p|ip)\)$")  # outback(a): where an adjective may stand, not part of the word


class Synset(NamedTuple):
    offset: str  # its byte offset in data.PART, 8 digits: with its part of speech, its identity
    lexname: str  # its lexicographer file, "noun.artifact"
    pos: str  # n, v, a, s (an adjective satellite), r
    words: tuple  # its lemmas as written, underscores for spaces: ("crock", "earthenware_jar")
    definition: str  # "nonsense; foolish talk"
    examples: tuple  # ("that's a crock",)


def wanted(name: str) -> bool:
    return name == LEXNAMES_PAGE or name in {f"{ROOT}{kind}.{part}" for kind in ("data", "index") for part in PARTS}


def lexnames(page: bytes) -> dict:
    """lex_filenum -> name, from lexnames(5WN)'s man page (gzip), its table's rows "NN<TAB>name<TAB>about"."""
    try:
        text = gzip.GzipFile(fileobj=io.BytesIO(page)).read(MAX_PAGE_BYTES + 1).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ValueError(f"/{LEXNAMES_PAGE} is no readable gzip text ({e}); the package is damaged") from None
    names = {int(number): name for number, name in LEXNAME_ROW.findall(text[:MAX_PAGE_BYTES])}
    if len(names) < 2 or sorted(names) != list(range(len(names))):
        raise ValueError(f"/{LEXNAMES_PAGE} lists no table of lexicographer files numbered 00, 01, ...; damaged")
    return names


def synsets(data: str, names: dict, where: str) -> list:
    """The synsets of one data file's text, in the file's order."""
    found = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip() or line.startswith("  "):  # (the licence's header lines)
            continue
        head, bar, gloss = line.partition(" | ")
        fields = head.split()
        try:
            count = int(fields[3], 16)
            words = tuple(ADJECTIVE_MARKER.sub("", w) for w in fields[4:4 + 2 * count:2])
            lexname = names[int(fields[1])]
        except (IndexError, ValueError, KeyError):
            raise ValueError(f"{where}, line {number}: not a WordNet synset (offset lex_filenum ss_type w_cnt word "
                             f"lex_id ... | gloss); the package is damaged") from None
        if not bar or len(words) != count:
            raise ValueError(f"{where}, line {number}: its synset has no gloss or fewer words than it counts; damaged")
        definition, *examples = EXAMPLE_START.split(gloss.strip())
        examples = tuple(e[1:e.rindex('"')].strip() for e in examples if e.count('"') >= 2)
        found.append(Synset(fields[0], lexname, fields[2], words, " ".join(definition.split()).strip("; "),
                            tuple(" ".join(e.split()) for e in examples if e)))
    return found


def senses(index: str) -> dict:
    """(lemma, synset offset) -> its sense number, from one index file's text (its order is WordNet's sense order)."""
    numbers = {}
    for line in index.splitlines():
        if not line.strip() or line.startswith("  "):
            continue
        fields = line.split()
        count = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0
        for sense, offset in enumerate(fields[len(fields) - count:], 1):
            numbers[(fields[0], offset)] = sense
    return numbers


def name(lemma: str, synset: Synset, numbers: dict) -> str:
    """The synset named by one of its lemmas and its sense of that lemma, as NLTK names it: "crock.n.02"."""
    return f"{lemma.lower()}.{synset.pos}.{numbers.get((lemma.lower(), synset.offset), 0):02d}"


def read(files: dict) -> tuple:
    """(synsets of every part of speech, in order, and the sense numbers of all their lemmas) from the package's
    files (name -> bytes)."""
    names = lexnames(files[LEXNAMES_PAGE])
    found, numbers = [], {}
    for part in PARTS:
        for kind in ("data", "index"):
            path = f"{ROOT}{kind}.{part}"
            if path not in files:
                raise ValueError(f"the package lacks /{path}; it is not wordnet-base")
        text = {kind: files[f"{ROOT}{kind}.{part}"].decode("utf-8", "replace") for kind in ("data", "index")}
        found += synsets(text["data"], names, f"/{ROOT}data.{part}")
        numbers.update(senses(text["index"]))
    return found, numbers


def question_records(found: list, numbers: dict) -> list:
    """One record per synset with an example that holds one of its words (underscores as spaces, whole words, any
    case): the first such example and word, the question about that word in it, the definition its answer."""
    records = []
    for synset in found:
        for example in synset.examples if synset.definition else ():
            word = next((w.replace("_", " ") for w in synset.words
                         if re.search(rf"(?<!\w){re.escape(w.replace('_', ' '))}(?!\w)", example, re.IGNORECASE)), None)
            if word is not None:
                records.append({"id": name(word.replace(" ", "_"), synset, numbers), "context": example,
                                "question": f'What does "{word}" mean in "{example}"?', "answer": synset.definition})
                break
    return records


def category_records(found: list, numbers: dict, classes: int) -> list:
    """definition -> lexicographer file, for the synsets of the `classes` largest files (ties by name)."""
    counts = {}
    for synset in found:
        counts[synset.lexname] = counts.get(synset.lexname, 0) + 1
    largest = set(sorted(counts, key=lambda n: (-counts[n], n))[:classes])
    return [{"id": name(synset.words[0], synset, numbers), "text": synset.definition, "label": synset.lexname}
            for synset in found if synset.lexname in largest and synset.definition]
