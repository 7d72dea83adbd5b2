"""mkdocs hook: copy the source files the pages link to (../minigpt/ops/layernorm.py, ...) into the built
site at the same place relative to the pages, so that those links work on the site as they do in the
repository."""

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("minigpt", "tests", "kernels", "benchmarks")


def on_post_build(config, **kwargs):
    site = Path(config["site_dir"])
    for top in SOURCES:
        for f in (ROOT / top).rglob("*"):
            if f.suffix in (".py", ".c", ".h") and "__pycache__" not in f.parts:
                dest = site / f.relative_to(ROOT)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest)
