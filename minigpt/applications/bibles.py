"""Two Bibles aligned verse by verse (translation: the Reina-Valera 1909 in Spanish -> the King James Version), each
read from its Sword module (minigpt/corpus/sword.py) and its OSIS made plain text (minigpt/corpus/osis.py).

Both modules follow the same versification (their .conf's Versification, KJV), so the verse index of each testament
lists the same verses in the same order: entry n of one is entry n of the other. An entry is a verse, or a header:
a book's (it opens a <div type="book">), a chapter's (it holds <chapter osisID="John.3" sID=...>). Verse v of a
chapter is the v-th entry after its header, so "John 3:16" is the 16th entry after the header of John.3. A verse
empty in either Bible (one translation lacks it) is left out.

Headings (<title>: Psalm 119's "ALEPH") are left out of the verses: they are paratext, which the two Bibles place
and word differently. A psalm's own title ("A Psalm of David", <title canonical="true">) is part of its first verse,
as the Spanish prints it.
"""

import re

from minigpt.corpus import osis, sword

CHAPTER = re.compile(r"<chapter\b(?![^>]*\beID=)[^>]*\bosisID=\"([^\"]+)\"")  # a chapter's start (not its end)
BOOK = re.compile(r"<div\b(?![^>]*\beID=)[^>]*\btype=\"book\"")
TITLE = re.compile(r"<title\b(?![^>]*\bcanonical=\"true\")[^>]*>.*?</title>", re.DOTALL)  # (not a psalm's own)


def verses(files: dict) -> dict:
    """The module's verses: "John 3:16" -> its plain text (whitespace made single spaces), in the Bible's order."""
    where, stems = sword.testaments(files)
    found = {}
    for stem in stems:
        chapter, header = None, 0  # the chapter the entries are in, and its header's number
        for number, entry in sword.numbered_entries(files, stem, where):
            start, book = CHAPTER.search(entry), BOOK.search(entry)
            if start is not None:
                chapter, header = start.group(1), number
            elif book is not None:
                chapter = None  # (a book's header: no verse until its first chapter begins)
            elif chapter is not None:
                text = " ".join(d.text for d in osis.documents([TITLE.sub("", entry)]))
                book_name, _, chapter_number = chapter.rpartition(".")  # "John.3" -> "John", "3"
                found[f"{book_name} {chapter_number}:{number - header}"] = " ".join(text.split())
    return found


def versification(files: dict) -> str:
    """The module's versification, as its .conf names it (Sword's default: KJV)."""
    return sword.module_conf(files)[1].get("Versification", "KJV")


def pairs(source_files: dict, target_files: dict) -> list:
    """{"id", "source", "target"} for each verse both Bibles hold, in the target's order."""
    if versification(source_files) != versification(target_files):
        raise ValueError(f"the two Sword modules follow different versifications ({versification(source_files)}, "
                         f"{versification(target_files)}): their verses cannot be aligned by number")
    source, target = verses(source_files), verses(target_files)
    return [{"id": key, "source": source[key], "target": text} for key, text in target.items()
            if text and source.get(key)]
