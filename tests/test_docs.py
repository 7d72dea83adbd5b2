"""The docs stay true to the code: snippets resolve, links resolve, every page is reachable from the
index, and every Python example runs."""

import functools
import http.server
import importlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
from helpers import OUTPUT, chromium, require

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs"))
import notebooks  # noqa: E402  docs/notebooks.py

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
SNIPPET = re.compile(r'^--8<-- "([^":]+):([\w-]+)"$', re.MULTILINE)
LINK = re.compile(r"\]\(([^)#\s]+)(#[\w-]+)?\)")
# a Python example, optionally followed by the output it prints, in an ```output block
# (indented, inside a collapsed block such as an exercise's solution, or not)
PYTHON_BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```(?:\n+\1```output\n(.*?)^\1```)?", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


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


def test_the_readme_examples_run_and_print_what_is_shown():
    namespace = {}  # the blocks run in order in one namespace, as a reader would type them
    for indent, block, shown in PYTHON_BLOCK.findall((ROOT / "README.md").read_text()):
        printed = StringIO()
        with redirect_stdout(printed):
            exec(compile(textwrap.dedent(block), "README.md", "exec"), namespace)
        if shown:
            assert printed.getvalue() == textwrap.dedent(shown), f"README.md: the example prints\n{printed.getvalue()}"


@pytest.fixture(scope="session")
def kernel(tmp_path_factory):
    """One Jupyter kernel (ipykernel, this interpreter) for the notebooks a test worker runs; each starts from an
    empty namespace in its own directory, as a freshly opened notebook would."""
    require("nbclient")
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    # IPC sockets of this kernel's own (by default they are kernel-ipc-N in the working directory, where kernels
    # started at the same moment by other processes could take the same N)
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path_factory.mktemp("kernel") / "ipc"))
    client = NotebookClient(nbformat.v4.new_notebook(), km=km, timeout=600)
    with client.setup_kernel():
        yield client
    km.shutdown_kernel(now=True)


def run_notebook(client, nb, directory) -> list[str]:
    """Execute every code cell of nb in the kernel, in order, after one that empties the namespace and enters
    directory: what each cell printed on stdout."""
    import nbformat

    start = nbformat.v4.new_code_cell(f"%reset -f\nimport os\nos.chdir({str(directory)!r})")
    client.nb = nbformat.v4.new_notebook(cells=[start, *nb.cells])  # nbclient writes each cell back at its index
    printed = []
    for i, cell in enumerate(client.nb.cells):
        if cell.cell_type == "code":
            client.execute_cell(cell, i)  # raises CellExecutionError, with the cell and its traceback
            printed.append("".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout"))
    return printed[1:]


@pytest.mark.parametrize("page", [p for p in PAGES if notebooks.runnable(p)], ids=lambda p: str(p.relative_to(DOCS)))
def test_every_page_with_code_runs_as_a_notebook_and_prints_what_the_page_shows(page, kernel, tmp_path):
    """Every ```python block of the page, exercise solutions included, is a code cell of its notebook (a solution's
    source hidden), and each prints in a Jupyter kernel what the page's ```output block shows."""
    nb = notebooks.notebook(page)
    blocks = [(textwrap.dedent(block).rstrip("\n"), textwrap.dedent(shown), bool(indent))
              for indent, block, shown in PYTHON_BLOCK.findall(page.read_text()) if not SNIPPET.search(block)]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.source for c in code] == [block for block, _, _ in blocks]
    for cell, (_, _, in_a_solution) in zip(code, blocks):
        assert cell.metadata.get("jupyter", {}).get("source_hidden", False) == in_a_solution
    printed = run_notebook(kernel, nb, tmp_path)
    for i, (out, (block, shown, _)) in enumerate(zip(printed, blocks)):
        if shown:
            assert out == shown, f"{page.name}, block {i + 1}:\n{block}\nprints\n{out}"


def test_the_next_links_walk_the_navigation_from_start_here_to_the_end():
    """A reader who follows only the **Next:** link at the end of each page reads every page once, in the site's
    navigation order: from "Start here" through the ops and training to the last page."""
    nav = re.findall(r"^ *- .*?:? *([\w/]+\.md)$", (DOCS / "mkdocs" / "mkdocs.yml").read_text(), re.MULTILINE)
    assert nav[:2] == ["index.md", "backprop.md"] and sorted(DOCS / p for p in nav) == PAGES
    for page, following in zip(nav, nav[1:] + [None]):
        ends = re.findall(r"^\*\*Next:\*\* .*?\]\(([^)#]+)\)", (DOCS / page).read_text(), re.MULTILINE)
        if following is None:
            assert ends == [], f"{page} is the last page"
        elif page != "index.md":  # the overview sends the reader to "Start here" in its text
            assert [((DOCS / page).parent / e).resolve() for e in ends] == [DOCS / following], page


def test_the_data_flow_figure_is_the_one_the_code_draws():
    """docs/figures/data_flow.svg, with the shapes of a real forward's caches, is what docs/make_figures.py draws
    from the code as it is now (python docs/make_figures.py --no-run redraws it)."""
    import make_figures

    rows = make_figures.data_flow_rows()
    assert ("qkv = a @ c_attn.weight + bias", "(B, T, 3C)") == rows[4][:2]
    assert ("att = softmax(preatt)", "(B, nh, T, T)") == rows[7][:2]
    assert (DOCS / "figures" / "data_flow.svg").read_text() == make_figures.data_flow_svg(rows)


def resolve(dotted: str):
    """minigpt.gradcheck.check_op -> the object, importing the longest module prefix."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


OPS = {p.stem for p in (ROOT / "minigpt" / "ops").glob("*.py")} - {"__init__", "reference"}


def check_reference(span: str, model, llama) -> None:
    """Resolve a code reference of the docs, or fail: minigpt.x.y, GPT.x / model.x, config.x, optim.x,
    an op module's function (layernorm.backward), a family module's (llama.block_forward), or a parameter name of
    GPT-2 (transformer.h.{l}.ln_1.weight) or of Llama and Qwen 3 (model.layers.{l}.self_attn.q_norm.weight)."""
    name = span.removesuffix("()")
    head, _, rest = name.partition(".")
    pattern = re.escape(name).replace(r"\{l\}", r"\d+")
    if head == "minigpt":
        resolve(name)
    elif head == "model" and rest.split(".")[0] in ("layers", "embed_tokens", "norm"):
        assert any(re.fullmatch(pattern, p) for p in llama.params), f"no Llama or Qwen 3 parameter matches {name!r}"
    elif head in ("GPT", "model"):
        assert hasattr(model, rest), f"GPT has no attribute {rest!r}"
    elif head == "config":
        assert hasattr(model.config, rest), f"GPTConfig has no attribute {rest!r}"
    elif head in ("optim", "muon", "checkpoint", "generate", "gradcheck", "gpt2", "llama", "hf"):
        resolve(f"minigpt.{name}")
    elif head in OPS:
        resolve(f"minigpt.ops.{name}")
    elif head in ("transformer", "lm_head"):
        params = model.params if head == "transformer" else llama.params
        assert any(re.fullmatch(pattern, p) for p in params), f"no parameter matches {name!r}"
    elif head in ("attn", "mlp", "ln_1", "ln_2", "ln_f", "wte", "wpe", "self_attn"):
        assert any(f".{name}" in p for p in (*model.params, *llama.params)), f"no parameter contains {name!r}"


@pytest.mark.parametrize("page", PAGES + [ROOT / "README.md"], ids=lambda p: str(p.relative_to(ROOT)))
def test_code_references_resolve(page):
    """Code named in backticks exists: minigpt's modules, functions, attributes and parameter names,
    and files of the repository (minigpt/..., tests/..., kernels/..., benchmarks/..., docs/...)."""
    from minigpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=2, n_head=1, n_embd=4))
    llama = GPT(GPTConfig(arch="qwen3", vocab_size=5, block_size=4, n_layer=2, n_head=2, n_embd=4))  # its own head
    for span in INLINE_CODE.findall(page.read_text()):
        if re.search(r"\.(json|jsonl|safetensors|toml|txt|png|bin|so)$", span):
            continue  # a file name (model.safetensors), not code
        if re.fullmatch(r"[A-Za-z_]\w*(\.\w+)+(\(\))?", span):
            check_reference(span, model, llama)
        elif re.fullmatch(r"[\w./-]+\.(py|c|h|toml|md|png)", span) and "/" in span:
            if span.startswith(("minigpt/", "tests/", "kernels/", "benchmarks/", "docs/", ".ci/")):
                assert (ROOT / span).exists(), f"{page.name}: `{span}` does not exist"
            elif span.startswith("figures/"):
                assert (DOCS / span).exists(), f"{page.name}: `{span}` does not exist"


def build_damaged_copy(tmp_path, damage) -> subprocess.CompletedProcess:
    """mkdocs build --strict of a copy of the docs (the sources beside it, linked), after damage(docs_copy)."""
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs", ignore=shutil.ignore_patterns("figures"))
    (copy / "docs" / "figures").symlink_to(DOCS / "figures")
    for top in ("minigpt", "tests", "kernels", "benchmarks"):
        (copy / top).symlink_to(ROOT / top)
    damage(copy / "docs")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(copy / "docs" / "mkdocs" / "mkdocs.yml"),
         "-d", str(tmp_path / "site")], capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_strict_build_fails_on_a_broken_link_or_a_page_out_of_the_navigation(tmp_path):
    """One damaged copy (one build: strict mode reports every warning before it aborts), three damages, each of
    which must be reported: a link to a missing page, a link to a missing source file, a page not in the nav."""
    require("mkdocs")

    def damage(docs):
        training = docs / "training.md"
        training.write_text(training.read_text() + "\n[gone](nowhere.md) [gone too](../minigpt/gone.py)\n")
        (docs / "orphan.md").write_text("# An orphan\n")

    result = build_damaged_copy(tmp_path, damage)
    assert result.returncode != 0
    for message in ("the link nowhere.md points to nothing", "the link ../minigpt/gone.py points to nothing",
                    "orphan.md"):
        assert message in result.stderr, message


def test_every_op_has_a_page_and_every_page_names_its_code_and_test():
    # (reference.py: the ops' default table of kernels, docs/kernels.md; no op)
    ops = sorted(p.stem for p in (ROOT / "minigpt" / "ops").glob("*.py") if p.stem not in ("__init__", "reference"))
    for op in ops:
        page = DOCS / "ops" / f"{op}.md"
        assert page.exists(), f"no docs/ops/{op}.md"
        text = page.read_text()
        assert f"minigpt/ops/{op}.py" in text and f"tests/ops/test_{op}.py" in text
        assert (ROOT / "tests" / "ops" / f"test_{op}.py").exists()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site, served over HTTP on this machine's loopback only, as `mkdocs serve` would: (root, base URL)."""
    require("mkdocs")
    root = tmp_path_factory.mktemp("docs") / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(DOCS / "mkdocs" / "mkdocs.yml"), "-d", str(root)],
        capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr

    searched = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        """Files the browser may keep for ten minutes, as a static host lets it, except the search worker: the theme
        starts it on every page, and it builds the whole site's index, the same each time (a third of the page
        test's time). The first page gets it; every later one an empty worker (204), which the theme takes in
        silence: no console error, which the page test checks."""

        def log_message(self, *args):
            pass

        def do_GET(self):
            if "/workers/search." in self.path:
                if searched:
                    self.send_response(204)
                    self.end_headers()
                    return
                searched.append(self.path)
            super().do_GET()

        def end_headers(self):
            self.send_header("Cache-Control", "no-store" if "/workers/" in self.path else "max-age=600")
            super().end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


# JavaScript run in each page: what a reader would see wrong
CHECKS = """() => {
    const article = document.querySelector('article'), right = article.getBoundingClientRect().right;
    const text = document.body.cloneNode(true);  // the navigation and contents too, without code and typeset math
    text.querySelectorAll('pre, code, script, mjx-container').forEach(e => e.remove());
    return {
        math: document.querySelectorAll('.arithmatex').length,
        typeset: document.querySelectorAll('.arithmatex mjx-container').length,
        errors: document.querySelectorAll('[data-mml-node=merror], mjx-merror').length,
        unrendered: ['\\\\(', '\\\\[', '$$', '\\\\frac', '\\\\partial'].filter(s => text.textContent.includes(s)),
        overflowing: [...article.querySelectorAll('div.arithmatex, table, img')]
            .filter(e => e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > right + 1)
            .map(e => e.tagName + ': ' + e.textContent.slice(0, 60)),
        page_fits: document.documentElement.scrollWidth <= document.documentElement.clientWidth,
        images: [...article.querySelectorAll('img')].map(e => [e.src, e.complete && e.naturalWidth > 0]),
        links: [...document.querySelectorAll('a[href]')].map(e => e.href),
    };
}"""


def test_the_site_builds_strictly_and_every_page_renders_in_a_real_browser_offline(site):
    """The site as CI builds it (mkdocs build --strict), then every page of it in headless Chromium at a laptop's
    size, with no name outside the site resolving and no request outside it made: all math typeset by MathJax
    (served by the site), no math error, no TeX left raw, every internal link and image found, nothing wider than
    the text column, no console error; screenshots of three pages in test-output/."""
    root, base = site  # built with --strict: a missing snippet, a broken link or a page out of the navigation fails
    assert (root / "minigpt" / "ops" / "layernorm.py").is_file()  # linked source, copied in
    assert (root / "mathjax" / "tex-svg.js").is_file()  # MathJax, served by the site itself
    assert 'href="minigpt/model.py"' in (root / "index.html").read_text()  # climbs no higher than the site's root
    pages = sorted(str(p.relative_to(root).parent) for p in root.rglob("index.html")
                   if not {"mathjax", "minigpt", "tests", "kernels", "benchmarks"} & set(p.relative_to(root).parts))
    assert len(pages) >= 20
    # every name but the loopback's resolves to nothing: the pages are offline, and any request they make outside the
    # site is recorded (an address by number too). No route: intercepting requests turns the browser's cache off,
    # and every page would load MathJax and the theme anew.
    with chromium("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1") as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        outside, errors = [], []
        page.on("request", lambda r: None if r.url.startswith(base) else outside.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        for name in pages:
            page.goto(base + ("" if name == "." else name + "/"))
            page.evaluate("MathJax.startup.promise")
            found = page.evaluate(CHECKS)  # every check of the page in one call
            assert found["typeset"] == found["math"], f"{name}: {found['typeset']} of {found['math']} formulas typeset"
            assert found["errors"] == 0, name
            assert found["unrendered"] == [], name
            assert found["overflowing"] == [] and found["page_fits"], (name, found["overflowing"])
            assert all(ok for _, ok in found["images"]), (name, found["images"])
            for href in found["links"]:
                if href.startswith(base):
                    target = root / href[len(base):].split("#")[0].split("?")[0]
                    assert target.is_file() or (target / "index.html").is_file(), (name, href)
            if name in (".", "ops/attention", "inspect"):
                OUTPUT.mkdir(exist_ok=True)
                page.screenshot(path=str(OUTPUT / f"docs-{'index' if name == '.' else name.replace('/', '-')}.png"))
        assert outside == [] and errors == []
