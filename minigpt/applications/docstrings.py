"""Python's standard library docstrings (Debian's libpython3.11-minimal and -stdlib) as summarisation pairs: a
docstring's first paragraphs -> its summary sentence.

The modules are parsed with `ast`, never imported or run. A pair comes from each module's docstring and from each
public function's, class's and method's (a name without a leading "_", or a special method's: __init__, __getitem__;
modules whose own names have one are read too, as concurrent.futures._base and _pyio hold documented API) when the
docstring opens with a summary sentence and goes on with prose:

    def dumps(obj, *, skipkeys=False, ...):
        \"\"\"Serialize ``obj`` to a JSON formatted ``str``.      <- the target

        If ``skipkeys`` is true then ``dict`` keys that are ...  <- the source, its whitespace made single spaces
        \"\"\"

(reStructuredText's ``literals``, :roles:`x` and `text` made the plain words they hold, and the `quotes' of older
docstrings plain quotes: "Serialize obj to a JSON formatted str."). The summary sentence is the first of these:
  - the first line, when it is a sentence (a capital first, a full stop last) followed by a blank line or by a line
    that starts a new sentence (a capital);
  - else the first sentence of the first paragraph, when that paragraph runs over more than one line and its
    first line does not end with a full stop ("Do x." over a line "and y.": refused);
  - else the first line alone in its paragraph, when it is a title of three words or more without its full stop
    ("Return first matching header value for 'name'"), and not a call signature ("execvp(file, args)").
The source is the rest of the docstring up to its first paragraph of markup (a doctest, a reStructuredText directive,
field or literal block, a table: MARKUP), which no summary could be written from (and without the paragraph that
introduces it, "Example:"); a docstring with no prose before its markup is left out. A source over `limit`
characters is cut at its last sentence end within the limit (". ", "? " or "! " before a capital, or the end of a
paragraph that ends a sentence; never after "e.g." or an initial), so that a long docstring gives its first
paragraphs; one with no sentence end within the limit is left out. Left out as well: the tests, idlelib, lib2to3
and the other packages in SKIPPED, scripts (__main__) and the build's generated modules (_sysconfigdata).
"""

import ast
import re

ROOT = "usr/lib/python3.11/"
SKIPPED = {"test", "idlelib", "lib2to3", "pydoc_data", "turtledemo", "ensurepip", "__phello__", "__hello__",
           "_distutils_system_mod"}  # (the last: Debian's own addition, not the PSF's)
MARKUP = (">>>", "::", ":param", ":type", ":return", ":rtype", ":raises", ".. ", "--", "==", "|", "`")
PLAIN = (  # reStructuredText's inline markup -> the words it holds, in this order
    (re.compile(r"``([^`]+)``"), r"\1"),  # ``obj`` -> obj (a literal)
    (re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`<]+)`"), r"\1"),  # :func:`~os.path.join` -> os.path.join (a role)
    (re.compile(r"`([^`'\n]+)'"), r"'\1'"),  # `name' -> 'name' (the quotes of Python's older docstrings)
    (re.compile(r"`([^`]+)`"), r"\1"),  # `spec` -> spec (interpreted text)
)
SUMMARY = re.compile(r"^[A-Z][^\n]*[.]$")  # a sentence: a capital first, a full stop last
TITLE = re.compile(r"^[A-Z][^\n]*[A-Za-z0-9)'\"]$")  # a summary line without its full stop
SIGNATURE = re.compile(r"^[\w.]+\(")  # "execvp(file, args)", "Sniffer(...) -> ...": not a summary
SENTENCE_END = re.compile(r"[.?!][)\"']?(?= [A-Z(\"'])")  # the end of a sentence that another follows
NOT_AN_END = re.compile(r"(?:\b(?:e\.g|i\.e|etc|cf|vs|viz|resp|Mr|Mrs|Dr|No)|\b[A-Za-z])[.]$")  # "e.g.", "J."
ENDED = re.compile(r"[.?!][)\"']?$")  # a paragraph that ends a sentence


def wanted(name: str) -> bool:
    if not (name.startswith(ROOT) and name.endswith(".py")):
        return False
    parts = name[len(ROOT):-len(".py")].split("/")
    return parts[0] not in SKIPPED and parts[-1] != "__main__" and not parts[-1].startswith("_sysconfigdata")


def module_name(name: str) -> str:
    """usr/lib/python3.11/json/__init__.py -> "json"; .../asyncio/events.py -> "asyncio.events"."""
    parts = name[len(ROOT):-len(".py")].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def records(files: dict, limit: int) -> list:
    """One record per documented module and public definition of the modules in `files` (name -> bytes), in the
    order of the modules' names, then of the definitions in each; sources cut to `limit` characters."""
    found = []
    for path in sorted(n for n in files if wanted(n)):
        try:
            tree = ast.parse(files[path], filename=f"/{path}")
        except (SyntaxError, ValueError) as e:
            raise ValueError(f"/{path} is not Python 3.11 ({e}); the package is damaged") from None
        module = module_name(path)
        for qualname, node in [("", tree)] + definitions(tree):
            pair = summary_pair(ast.get_docstring(node, clean=True), limit)
            if pair is not None:
                found.append({"id": f"{module}.{qualname}" if qualname else module,
                              "source": pair[0], "target": pair[1]})
    return found


def definitions(tree: ast.Module) -> list:
    """(qualified name, node) of the module's public functions and classes, and of its public classes' public
    methods and classes."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    found = []
    for node in tree.body:
        if isinstance(node, kinds) and public(node.name):
            found.append((node.name, node))
            if isinstance(node, ast.ClassDef):
                found += [(f"{node.name}.{inner.name}", inner) for inner in node.body
                          if isinstance(inner, kinds) and public(inner.name)]
    return found


def public(name: str) -> bool:
    """A name without a leading "_", or a special method's (__init__, __getitem__: documented as the class's
    interface)."""
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__") and len(name) > 4)


def summary_pair(docstring: str | None, limit: int) -> tuple | None:
    """(source, summary) of a docstring that opens with a summary sentence and goes on with prose, the source cut
    to `limit` characters; None for any other (the rules: the module's docstring)."""
    if not docstring:
        return None
    for pattern, words in PLAIN:
        docstring = pattern.sub(words, docstring)
    paragraphs = [p.strip().split("\n") for p in re.split(r"\n[ \t]*\n", docstring.strip())]
    first = [line.strip() for line in paragraphs[0]]
    joined = " ".join(" ".join(first).split())
    end = (sentence_ends(joined) + [len(joined)])[0]  # of the first paragraph's first sentence
    if SUMMARY.match(first[0]) and (len(first) == 1 or first[1][:1].isupper()):
        summary, rest = first[0], [first[1:]] + paragraphs[1:]
    elif len(first) > 1 and not first[0].endswith(".") and SUMMARY.match(joined[:end]):  # (not "Do x.\nand y.")
        summary, rest = joined[:end], [[joined[end:]]] + paragraphs[1:]
    elif len(first) == 1 and TITLE.match(first[0]) and len(first[0].split()) >= 3 and not SIGNATURE.match(first[0]):
        summary, rest = first[0], paragraphs[1:]
    else:
        return None
    prose = []
    for lines in rest:
        paragraph = " ".join(" ".join(lines).split())
        if any(m in paragraph for m in MARKUP):
            prose = prose[:-1] if prose and prose[-1].endswith(":") else prose  # (it introduced the markup)
            break  # (and what follows explains it)
        if paragraph:
            prose.append(paragraph)
    source = cut(prose, limit)
    if any(m in summary for m in MARKUP) or not source:
        return None
    return source, " ".join(summary.split())


def sentence_ends(text: str) -> list:
    """The offsets just past each sentence end in `text` that another sentence follows ("e.g." is none)."""
    return [m.end() for m in SENTENCE_END.finditer(text) if not NOT_AN_END.search(text[:m.start() + 1])]


def cut(paragraphs: list, limit: int) -> str:
    """The paragraphs joined by spaces, cut at the last sentence end within `limit` characters if longer; "" when
    there is none."""
    text = " ".join(paragraphs)
    if len(text) <= limit:
        return text
    ends, start = [], 0
    for paragraph in paragraphs:
        ends += [start + end for end in sentence_ends(paragraph)]
        start += len(paragraph)
        if ENDED.search(paragraph):
            ends.append(start)
        start += 1  # (the space that joins it to the next)
    within = [end for end in ends if end <= limit]
    return text[:within[-1]] if within else ""
