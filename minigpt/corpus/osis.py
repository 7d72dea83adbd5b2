"""OSIS markup (the XML of the Sword Bible modules) to plain text, one document per chapter.

What a reader of a printed Bible sees is kept; what a printed Bible puts in the margin or leaves out is dropped:

    <w lemma="strong:H0430">God</w>              God (words keep their text; the Strong's numbers go)
    <note ...>Or, ...</note>                    (dropped: footnotes and cross-references, whatever they hold)
    <divineName>Lord</divineName>               LORD (as the KJV prints the name, in capitals)
    <title>BOOK 1</title>                       a paragraph of its own (book titles, psalm titles, headings)
    <div type="x-p"/>, <lg/>, <list>, <p>       a paragraph break: a blank line
    <l/>, <lb/>, <item>, <speaker>              a line break (verse, lists)
    <chapter sID="Gen.2" osisID="Gen.2"/>       a new document, keyed "Gen.2"
    <div type="book" osisID="Exod"/>            a new document; its title and introduction open its first chapter
    ¶, <milestone/>, any other tag              (dropped; the text inside a tag is kept)

A document's key is the chapter's osisID ("Gen.1", "Ps.23"), the same in every translation that follows OSIS, so
the held-out split (minigpt/corpus/build.py) takes the same chapters from the WEB and the KJV. Matter outside any
chapter (the WEB's preface and glossary) is keyed by its division's type ("front", "glossary").
"""

import html
import re
from typing import Iterable

from minigpt.corpus.documents import Document

DIVISIONS = {"book", "front", "back", "glossary", "bookGroup"}  # a div of these types starts a new document
PARAGRAPH_BREAKS = {"lg", "list", "p", "title", "head"}
LINE_BREAKS = {"l", "item", "speaker"}
MEANINGFUL = ("note", "chapter", "div", "lb", "divineName", *PARAGRAPH_BREAKS, *LINE_BREAKS)
# every other tag (<w>, <transChange>, <q>, <milestone>, ...), removed in one pass before the rest is read: most of
# the markup is <w> around each word, and a pass in C is 10 times faster than looking at each tag in Python
OTHER_TAG = re.compile(rf"<(?!\s*/?\s*(?:{'|'.join(MEANINGFUL)})[\s/>])[^<>]*>")
TAG = re.compile(r"<\s*(/?)\s*([A-Za-z][\w:.-]*)([^<>]*)>")
UNCLOSED = re.compile(r"<[^<>]*\Z")
ATTRIBUTE = re.compile(r'([\w:.-]+)\s*=\s*(["\'])(.*?)\2')  # name="value", or name='value'
PILCROW = "\N{PILCROW SIGN}"  # the KJV's paragraph mark; the markup's paragraphs say the same


def documents(entries: Iterable[str]) -> list:
    """The documents of a module's OSIS text, given as its entries (verses and headers) in order."""
    # an entry is a verse: the next begins a new word, even where the markup leaves no space; a tag that an entry
    # leaves unclosed (the WEB's Daniel 6:23 ends in "<d", where its block ends) is dropped, not read as text
    markup = " ".join(OTHER_TAG.sub("", UNCLOSED.sub("", entry)) for entry in entries)
    text, at = Text(), 0
    for tag in TAG.finditer(markup):
        text.add(markup[at:tag.start()])
        text.tag(tag.group(1) == "/", tag.group(2), tag.group(3))
        at = tag.end()
    text.add(markup[at:])
    return text.finish()


class Text:
    """Plain text built from OSIS, event by event: text, tags. Holds the document, paragraph and line being made."""

    def __init__(self):
        self.done = []  # Documents
        self.key, self.in_chapter = "text", False  # the document's key; whether it has begun a chapter
        self.paragraphs, self.lines, self.chunks = [], [], []  # the document's paragraphs, the paragraph's lines,
        # and the line's text so far
        self.in_note = 0  # depth of <note> elements: their text is dropped
        self.divine_name = 0  # depth of <divineName> elements: their text is capitalised
        self.after_note = False  # a note was just dropped: the next word may need the space the note stood in for

    def add(self, chunk: str) -> None:
        if self.in_note or not chunk:
            return
        chunk = html.unescape(chunk).replace(PILCROW, " ") if "&" in chunk or PILCROW in chunk else chunk
        if self.divine_name:
            chunk = chunk.upper()
        # "God<note>...</note><w>created</w>": the note stood between two words, which now need a space
        if self.after_note and chunk[0].isalnum() and self.chunks and not self.chunks[-1][-1:].isspace():
            chunk = " " + chunk
        self.after_note = False
        self.chunks.append(chunk)

    def tag(self, closing: bool, name: str, rest: str) -> None:
        """A tag: </name rest> if closing, else <name rest> (rest: its attributes, and a "/" if it is empty)."""
        empty = rest.rstrip().endswith("/")
        if name == "note":
            if not empty:
                self.in_note = max(0, self.in_note + (-1 if closing else 1))
                self.after_note = self.in_note == 0
            return
        if self.in_note:
            return
        attributes = {name: value for name, _, value in ATTRIBUTE.findall(rest)}
        starts = not closing and "eID" not in attributes  # a start tag, or a milestone that marks a start
        if name == "chapter" and starts and "osisID" in attributes:
            self.chapter(attributes["osisID"])
        elif name == "div" and attributes.get("type") in DIVISIONS:
            if starts:
                self.division(attributes.get("osisID") or attributes["type"])
        elif name == "div" and attributes.get("type") != "x-milestone":
            self.end_paragraph()
        elif name in PARAGRAPH_BREAKS or (name == "lb" and attributes.get("type") == "x-p"):
            self.end_paragraph()
        elif name in LINE_BREAKS or name == "lb":
            self.end_line()
        elif name == "divineName" and not empty:
            self.divine_name = max(0, self.divine_name + (-1 if closing else 1))

    def chapter(self, key: str) -> None:
        """A chapter begins: a new document, unless this one holds only its book's title and introduction."""
        if self.in_chapter:
            self.end_document()
        self.key, self.in_chapter = key, True

    def division(self, key: str) -> None:
        self.end_document()
        self.key, self.in_chapter = key, False

    def end_line(self) -> None:
        line = " ".join("".join(self.chunks).split())
        if line:
            self.lines.append(line)
        self.chunks = []

    def end_paragraph(self) -> None:
        self.end_line()
        if self.lines:
            self.paragraphs.append("\n".join(self.lines))
        self.lines = []

    def end_document(self) -> None:
        self.end_paragraph()
        if self.paragraphs:
            self.done.append(Document(self.key, "\n\n".join(self.paragraphs)))
        self.paragraphs = []

    def finish(self) -> list:
        self.end_document()
        return self.done
