"""The docs stay true to the code: snippets resolve, links resolve, every page is reachable from the
index, and every Python example runs."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
SNIPPET = re.compile(r'^--8<-- "([^":]+):([\w-]+)"$', re.MULTILINE)
LINK = re.compile(r"\]\(([^)#\s]+)(#[\w-]+)?\)")
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_there_are_pages():
    assert len(PAGES) >= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_snippets_name_existing_sections(page):
    for path, section in SNIPPET.findall(page.read_text()):
        source = (ROOT / path).read_text()
        start, end = f"--8<-- [start:{section}]", f"--8<-- [end:{section}]"
        assert start in source and end in source, f"{page.name}: no section {section!r} in {path}"
        assert source.index(start) < source.index(end)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_resolve(page):
    for target, anchor in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        resolved = (page.parent / target).resolve()
        assert resolved.exists(), f"{page.name}: broken link {target}"
        if anchor and resolved.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(), re.MULTILINE)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor[1:] in slugs, f"{page.name}: no heading for {target}{anchor}"


def test_every_page_is_reachable_from_the_index():
    seen, todo = set(), [DOCS / "index.md"]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for target, _ in LINK.findall(page.read_text()):
            linked = (page.parent / target).resolve()
            if linked.suffix == ".md" and DOCS in linked.parents:
                todo.append(linked)
    assert sorted(seen) == PAGES


@pytest.mark.parametrize("page", PAGES + [ROOT / "README.md"], ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(page):
    namespace = {}  # the blocks of a page run in order in one namespace, as a reader would type them
    for block in PYTHON_BLOCK.findall(page.read_text()):
        if SNIPPET.search(block):
            continue  # code included from the source, which the other tests run
        exec(compile(block, str(page), "exec"), namespace)
        for name, fn in list(namespace.items()):  # an example that defines a test also runs it
            if name.startswith("test_") and callable(fn):
                fn()


def test_every_op_has_a_page_and_every_page_names_its_code_and_test():
    ops = sorted(p.stem for p in (ROOT / "minigpt" / "ops").glob("*.py") if p.stem != "__init__")
    for op in ops:
        page = DOCS / "ops" / f"{op}.md"
        assert page.exists(), f"no docs/ops/{op}.md"
        text = page.read_text()
        assert f"minigpt/ops/{op}.py" in text and f"tests/ops/test_{op}.py" in text
        assert (ROOT / "tests" / "ops" / f"test_{op}.py").exists()
