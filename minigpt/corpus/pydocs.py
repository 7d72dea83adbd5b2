"""The Python documentation's sources, from Debian's python3.11-doc: one document per file.

Sphinx copies each page's reStructuredText source beside the HTML it builds, as _sources/PAGE.rst.txt; the package
ships them (497 files: the tutorial, the library and language references, the HOWTOs, the FAQs, What's New). They
are taken as they stand, markup and all (a model that reads them learns what documentation looks like), lightly
cleaned: line endings made "\\n", trailing spaces removed, runs of blank lines made one. A document's key is the
page's path ("library/os.rst"), and the documents run in the order of their paths.
"""

from minigpt.corpus.documents import BLANK_LINES, Document

SOURCES = "usr/share/doc/python3.11/html/_sources/"
SUFFIX = ".rst.txt"


def wanted(name: str) -> bool:
    return name.startswith(SOURCES) and name.endswith(SUFFIX)


def documents(files: dict) -> list:
    found = []
    for name in sorted(n for n in files if wanted(n)):
        key = name[len(SOURCES):-len(".txt")]
        try:
            text = files[name].decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"/{name} is not UTF-8 (byte {e.start}: {e.reason}); the package is damaged") from None
        text = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))
        text = BLANK_LINES.sub("\n\n", text).strip("\n")
        if text.strip():
            found.append(Document(key, text))
    if not found:
        raise ValueError(f"the package holds no /{SOURCES}*{SUFFIX}; it is not python3.11-doc")
    return found
