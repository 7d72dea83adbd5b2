"""mkdocs hooks: MathJax copied into the site (no CDN: the math renders offline), and the pages' source links.

The pages link to the source they explain (../minigpt/ops/layernorm.py, ...), outside docs/.
The site gets a copy of those files at the same place relative to its root as in the repository, and each such
link is rewritten relative to the page's own URL (a page's URL is not its file's path: index.md is the site's
root, training.md is training/), so that the links work on the site, under any sub-path, as in the repository."""

import logging
from importlib import metadata
import posixpath
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SOURCES = ("minigpt", "tests", "kernels", "benchmarks")
LINK = re.compile(r"\]\(((?:\.\./)+[^)#\s]+)(#[^)\s]*)?\)")
ANY_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")
log = logging.getLogger("mkdocs.hooks")  # a warning fails `mkdocs build --strict`


def on_page_markdown(markdown, page, **kwargs):
    source_dir = (DOCS / page.file.src_uri).parent  # where the page's relative links start in the repository
    # mkdocs reports a link to a missing file only as "info" here (the source links are not pages): check them all
    for target, _ in ANY_LINK.findall(markdown):
        if not target.startswith(("http://", "https://", "mailto:")) and not (source_dir / target).exists():
            log.warning(f"{page.file.src_uri}: the link {target} points to nothing")
    url_dir = posixpath.dirname(page.url.rstrip("/")) if page.url.endswith(".html") else page.url.rstrip("/")

    def rewrite(match):
        target = (source_dir / match.group(1)).resolve()
        try:
            in_repo = target.relative_to(ROOT).as_posix()
        except ValueError:
            return match.group(0)
        if in_repo.split("/")[0] not in SOURCES:
            return match.group(0)
        return f"]({posixpath.relpath(in_repo, url_dir or '.')}{match.group(2) or ''})"

    return LINK.sub(rewrite, markdown)


def on_post_build(config, **kwargs):
    site = Path(config["site_dir"])
    # MathJax, served from the site rather than a CDN, so that the pages render their math offline
    try:
        script = next(f for f in metadata.files("sphinx-mathjax-offline") if f.name == "tex-svg.js")
    except (metadata.PackageNotFoundError, StopIteration, TypeError):
        raise SystemExit("the docs need MathJax from the sphinx-mathjax-offline package: pip install -e '.[dev]'")
    shutil.copytree(Path(script.locate()).parent, site / "mathjax", dirs_exist_ok=True)
    for top in SOURCES:
        for f in (ROOT / top).rglob("*"):
            if f.suffix in (".py", ".c", ".h") and "__pycache__" not in f.parts:
                dest = site / f.relative_to(ROOT)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest)
