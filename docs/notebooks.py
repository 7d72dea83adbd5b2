"""Every page of docs/ with code to run, as a Jupyter notebook generated from the page (never edited by hand).

    python docs/notebooks.py            # writes notebooks/ beside docs/, one .ipynb per page with code
    jupyter lab notebooks/              # (pip install jupyterlab)

A page becomes cells in its own order: its ```python blocks are code cells, each holding as its output what the
page's ```output block shows; the prose between them is markdown. An exercise's collapsed solution is a code
cell whose source is hidden until clicked. Code the page includes from the source (--8<--) is shown as text,
not run: it is minigpt's own, which the notebook imports. notebooks/ mirrors docs/, so the links to the source
(../../minigpt/ops/layernorm.py) work unchanged; links to other pages go to their notebooks, or to the page in
docs/ when it has no code. tests/test_docs.py executes every notebook in a Jupyter kernel.
"""

import re
import sys
import textwrap
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
PAGES = sorted(p for p in DOCS.rglob("*.md") if p.parent.name != "mkdocs")

# a fenced block, at any indentation, with the output block that may follow it
FENCE = re.compile(r"^( *)```(\w+)\n(.*?)^\1```\n(?:\n*\1```output\n(.*?)^\1```\n)?", re.DOTALL | re.MULTILINE)
SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"$')
ADMONITION = re.compile(r'^( *)(?:!!!|\?\?\?\+?) *(\w+)(?: +"([^"]*)")?$')
LINK = re.compile(r"(\]\()([^)#\s]+\.(?:md|png|svg))([#)])")


def runnable(page: Path) -> bool:
    """A page with at least one ```python block that is not included source."""
    return any(lang == "python" and not SNIPPET.match(code.strip()) for _, lang, code, _ in FENCE.findall(page.read_text()))


def snippet(path: str, section: str | None) -> str:
    """The text between `--8<-- [start:section]` and `--8<-- [end:section]` of a repository file, dedented."""
    lines = (ROOT / path).read_text().splitlines(keepends=True)
    if section:  # the lines between the marker lines (# --8<-- ... in Python, /* --8<-- ... */ in C)
        start = next(i for i, line in enumerate(lines) if f"--8<-- [start:{section}]" in line)
        end = next(i for i, line in enumerate(lines) if f"--8<-- [end:{section}]" in line)
        lines = lines[start + 1:end]
    return textwrap.dedent("".join(lines))


def collapsed(before: str, indent: int) -> bool:
    """Whether a block indented by `indent`, after the text `before`, is in the body of a collapsed (???) block."""
    for line in reversed(before.split("\n")):
        m = ADMONITION.match(line)
        if m and len(m.group(1)) < indent:
            return line.lstrip().startswith("???")
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            return False  # a line left of the block, not an admonition: the block is in no admonition
    return False


def markdown(text: str, page: Path) -> str:
    """Prose for a markdown cell: admonitions as a bold title over their dedented body, links rewritten."""
    lines, body_indent = [], None
    for line in text.split("\n"):
        if body_indent is not None and line.strip() and not line.startswith(" " * body_indent):
            body_indent = None  # the admonition's body has ended
        m = ADMONITION.match(line)
        if m:
            indent, kind, title = m.groups()
            lines.append(f"{indent}**{title or kind.capitalize()}**")
            body_indent = len(indent) + 4
        elif body_indent is not None and line.startswith(" " * body_indent):
            lines.append(line[4:])
        else:
            lines.append(line)

    def relink(m):
        target = (page.parent / m.group(2)).resolve()
        if target.suffix == ".md" and runnable(target):  # its notebook, at the same place under notebooks/
            return f"{m.group(1)}{m.group(2)[:-len('.md')]}.ipynb{m.group(3)}"
        # a page without code, or a figure: where it sits in docs/, seen from the same place under notebooks/
        in_docs = target.relative_to(DOCS).as_posix()
        up = "../" * len(page.relative_to(DOCS).parts)
        return f"{m.group(1)}{up}docs/{in_docs}{m.group(3)}"

    return LINK.sub(relink, "\n".join(lines)).strip("\n")


def notebook(page: Path):
    """The page as an nbformat notebook (not executed: its outputs are the ones the page shows)."""
    from nbformat import v4

    page = page.resolve()
    text, cells, at = page.read_text(), [], 0

    def prose(part):
        if part.strip():
            cells.append(v4.new_markdown_cell(markdown(part, page)))

    for m in FENCE.finditer(text):
        indent, lang, code, shown = m.group(1), m.group(2), textwrap.dedent(m.group(3)), m.group(4)
        included = SNIPPET.match(code.strip())
        if lang != "python" or included:
            if included:  # the included source, shown as the page shows it
                prose(text[at:m.start()])
                source = snippet(*included.groups())
                cells.append(v4.new_markdown_cell(f"From `{included.group(1)}`:\n\n```{lang}\n{source}```"))
                at = m.end()
            continue  # any other block (a shell command, some text) stays in the prose
        prose(text[at:m.start()])
        cell = v4.new_code_cell(code.rstrip("\n"))
        if shown:
            cell.outputs = [v4.new_output("stream", name="stdout", text=textwrap.dedent(shown))]
        if collapsed(text[:m.start()], len(indent)):
            cell.metadata["jupyter"] = {"source_hidden": True}  # a solution: click to show
            cell.metadata["tags"] = ["solution"]
        cells.append(cell)
        at = m.end()
    prose(text[at:])
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["minigpt"] = {"generated_from": page.relative_to(ROOT).as_posix()}
    return nb


def write_all(out: Path) -> list[Path]:
    """out/<page>.ipynb for every page with code, mirroring docs/."""
    import nbformat

    written = []
    for page in PAGES:
        if runnable(page):
            path = out / page.relative_to(DOCS).with_suffix(".ipynb")
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook(page), path)
            written.append(path)
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "notebooks"
    for path in write_all(out):
        print(path)
