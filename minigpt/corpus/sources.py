"""What the corpora are made of: the pinned Debian packages, what is taken from each and under what licence, and
the named corpora (`minigpt data build NAME`), each pinned to the SHA-256s of the files its build must give.

Which sources make the default corpus, `english`, and why:
    - the World English Bible (modern English, 4.9 MB): yes;
    - Jane Austen's six novels (4.0 MB): yes, narrative prose, public domain;
    - the Python documentation (11.0 MB, PSF licence): yes, modern expository English, the kind of text a model
      asked to summarise or answer questions will be given;
    - the King James Bible (4.2 MB): no. It is the same book as the WEB, verse for verse, in the English of 1611
      (1769's spelling): the two are near-duplicates, which teach a model the same content twice, would make the
      Bible nearly 40% of the corpus, and leak one translation's held-out chapters into the other's training text. The
      corpus `english-kjv` adds it for those who want it (both Bibles hold out the same chapters: the split is by
      the chapter's key, "Gen.1", the same in both).
"""

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from minigpt.corpus import austen, pydocs, sword
from minigpt.corpus.fetch import Package

WEB_DEB = Package("sword-text-web", "426.0-1", "debian/pool/main/s/sword-text-web/sword-text-web_426.0-1_all.deb",
                  3_956_428, "930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1",
                  "d9910dc8fe429d82aa7169560dbf436c71491dc5")
KJV_DEB = Package("sword-text-kjv", "14.3-1", "debian/pool/main/s/sword-text-kjv/sword-text-kjv_14.3-1_all.deb",
                  2_800_476, "9f463f28ce665f6f528fc723179722bced880a4c5485f7a41bf742838315de57",
                  "f1243f951811f073842b0d67fec8cddd90b40f2f")
AUSTEN_DEB = Package("r-cran-janeaustenr", "1.0.0-1",
                     "debian/pool/main/r/r-cran-janeaustenr/r-cran-janeaustenr_1.0.0-1_all.deb",
                     1_626_392, "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
                     "0526a5841219e475fbbf6e2d3bcd96e6fb0f479d")
PYDOCS_DEB = Package("python3.11-doc", "3.11.2-6+deb12u9",  # a security update: in debian-security's pool
                     "debian-security/pool/updates/main/p/python3.11/python3.11-doc_3.11.2-6+deb12u9_all.deb",
                     12_644_000, "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be",
                     "924896f88455aa449baeae5c3268c4672b95c9b8")


class Reader(NamedTuple):
    """How a source's text comes out of its package: which of its files to read, and the documents made of them."""
    wanted: Callable[[str], bool]  # a file's name in the package ("usr/share/...") -> whether the reader needs it
    documents: Callable[[dict], list]  # those files (name -> bytes) -> Documents, in order


@dataclass(frozen=True)
class Source:
    title: str
    package: Package
    licence: str
    taken: str
    reader: Reader

    @property
    def copyright(self) -> str:
        """The package's copyright file, which NOTICE quotes whole."""
        return f"usr/share/doc/{self.package.name}/copyright"


WEB = Source(
    "World English Bible (with the Deuterocanon; Sword module engWEB2015eb)", WEB_DEB,
    'public domain; "World English Bible" is a trademark of eBible.org, which asks that a changed text not be called '
    "the World English Bible: this text is the WEB's, its footnotes, cross-references and Strong's numbers left out",
    "every chapter of every book (but the Greek Daniel and Esther, which repeat the Hebrew ones), with the preface "
    "and the glossary; the OSIS markup made plain text",
    Reader(sword.wanted, sword.documents))
KJV = Source(
    "King James Version (1769 text; Sword module engKJV2006eb)", KJV_DEB,
    "public domain (outside the United Kingdom, where the Crown's letters patent restrict printing it)",
    "every chapter of every book; the OSIS markup made plain text, footnotes and Strong's numbers left out",
    Reader(sword.wanted, sword.documents))
AUSTEN = Source(
    "Jane Austen's six novels (Project Gutenberg's texts, as the R package janeaustenr 1.0.0 holds them)", AUSTEN_DEB,
    "the novels are in the public domain; the R package that holds them is under the MIT licence (Julia Silge)",
    "Sense and Sensibility, Pride and Prejudice, Mansfield Park, Emma, Northanger Abbey, Persuasion, chapter by "
    "chapter; lines joined into paragraphs",
    Reader(austen.wanted, austen.documents))
PYDOCS = Source(
    "The Python 3.11 documentation's reStructuredText sources", PYDOCS_DEB,
    "PSF License Agreement (Copyright 2001-2023 Python Software Foundation; its text is quoted below)",
    "every page's source (html/_sources/**/*.rst.txt, 497 files) as it stands, trailing spaces and runs of blank "
    "lines removed",
    Reader(pydocs.wanted, pydocs.documents))


class Part(NamedTuple):
    """A source's documents in a corpus: all of them but the books left out (by the part of their key before the
    "."), or (for a sample) a slice: from the document keyed `first` on, whole documents while they fit in `budget`
    bytes of UTF-8."""
    source: Source
    first: str | None = None
    budget: int | None = None
    leave_out: tuple = ()


# The WEB holds Daniel and Esther twice: as translated from the Hebrew (Dan, Esth) and again whole from the Greek,
# with the Greek additions (DanGr, EsthGr). The second copies would be near-duplicates under other keys, which the
# split could put on the other side of their twins: they are left out.
WEB_PART = Part(WEB, leave_out=("DanGr", "EsthGr"))


@dataclass(frozen=True)
class Corpus:
    name: str
    about: str
    parts: tuple
    pinned: dict = field(default_factory=dict)  # file -> the SHA-256 its build gives ("train.txt", "val.txt")

    @property
    def packages(self) -> list:
        return list({part.source.package: None for part in self.parts})  # (each once, in order)


CORPORA = {corpus.name: corpus for corpus in (
    Corpus("english", "modern English prose and documentation: the World English Bible, Jane Austen's novels, the "
                      "Python documentation", (WEB_PART, Part(AUSTEN), Part(PYDOCS)),
           {"train.txt": "90b80696b048bc140b53e926774d0f37b8d0baed752431b8ac93e46ad69bead0",
            "val.txt": "67b55321069c34fb16a8e779de9c46cc877b1e52fecf570847a1fd1f9309245d"}),
    Corpus("english-kjv", "the english corpus and the King James Bible",
           (WEB_PART, Part(KJV), Part(AUSTEN), Part(PYDOCS)),
           {"train.txt": "408e130e6c29f24ff5c285339294959d8eb71cbe47e78a3bc4cc97c6246bb22b",
            "val.txt": "ff7eeaa23ca8490d77a84900f6e19e485d1ca761f58ad3e2a8d660aa2938166b"}),
    # slices that each hold chapters of the held-out split, so that the sample's val.txt has all three sources
    Corpus("sample", "a public-domain sample that ships with minigpt (minigpt/corpus/sample/): Genesis (WEB), Luke "
                     "and John (KJV), the first half of Northanger Abbey",
           (Part(WEB, "Gen.1", 280_000), Part(KJV, "Luke.1", 280_000), Part(AUSTEN, "northangerabbey.1", 280_000)),
           {"train.txt": "ba5d4985b6e772af4151fb167044a6b952fd3acc9d1357ef9cf62400c034eabe",
            "val.txt": "a096f801f8fcc050e1dae7142bcbac99b374634774fb05e870d97c9472a71ff5"}),
)}
DEFAULT = "english"
