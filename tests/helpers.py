"""What several test modules share: a made-up text, a tiny training recipe, reading a run's log, running the
command (in this process or in a new one) and reading its one-line errors, optional modules, a browser."""

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from minigpt.cli import main

# flags of a tiny model that trains in a fraction of a second per step
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--eval-iters", "2", "--eval-interval", "10", "--warmup-iters", "2"]

# text with multi-byte characters, numbers, whitespace runs: what a byte-level tokenizer must get right
CORPUS = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "It's 1234 o'clock, naïve café! Ünïcödé, 日本語のテキスト, emoji 🚀🚀 and tabs\tand  spaces   end.\n"
) * 20


def make_text(path, seed, n_words=6000):
    """A deterministic made-up text: the same vocabulary of characters for every seed."""
    rng = np.random.default_rng(seed)
    words = ["the", "king", "queen", "of", "and", "to", "my", "lord", "thou", "art", "good", "night", "sweet",
             "prince", "what", "is", "love", "fair", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz,.;:!?'"]
    weights = rng.dirichlet(np.ones(len(words)) * 0.5)
    text = " ".join(rng.choice(words, size=n_words, p=weights))
    path.write_text("\n".join(text[i:i + 60] for i in range(0, len(text), 60)) + "\n")
    return path


def train(*args):
    """`minigpt train ARGS`, in this process; it must succeed."""
    assert main(["train", *args]) == 0


def read_log(out_dir):
    return [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]


def without_timing(records):
    return [{k: v for k, v in r.items() if k != "tokens_per_sec"} for r in records]


def minigpt(*args, fault=None, env=None, wait=True, cwd=None):
    """`minigpt ARGS` in a new process, as a user runs it; with fault, killed at that step of the checkpoint protocol
    (minigpt/checkpoint.py). wait=False: the Popen, its output piped."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})}
    env.pop("MINIGPT_FAULT", None)
    if fault is not None:
        env["MINIGPT_FAULT"] = fault
    command = [sys.executable, "-m", "minigpt.cli", *args]
    if not wait:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)


def cli(capsys, *args):
    """`minigpt ARGS` in this process: its exit status and what it wrote to stderr."""
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's usage errors (2) and --help (0)
        code = e.code
    return code, capsys.readouterr().err


def corpus_of(directory: Path, train: str, val: str) -> Path:
    """A built corpus (minigpt data build's layout) holding these texts: train.txt, val.txt and a manifest.json that
    lists their SHA-256s."""
    directory.mkdir(parents=True)
    files = {}
    for name, text in (("train.txt", train), ("val.txt", val)):
        (directory / name).write_bytes(text.encode("utf-8"))
        files[name] = {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    (directory / "manifest.json").write_text(json.dumps({"format": 1, "corpus": directory.name, "files": files}))
    return directory


def error_line(stderr: str, *fragments) -> str:
    """The one error line of a failed command's stderr (notices, which do not start with "minigpt", may come
    before it): never a traceback, never an internal error, and holding each of fragments."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.startswith("minigpt")]
    assert len(lines) == 1 and lines[0].startswith("minigpt: error: "), stderr
    assert "internal error" not in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def require(name: str, extra: str = "dev"):
    """The module `name`, or a skip where it is not installed; never a skip under CI, which installs it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"{name} is not installed: pip install -e '.[{extra}]'")


OUTPUT = Path(__file__).resolve().parent.parent / "test-output"  # screenshots for a person to look at (not in git)


@contextmanager
def chromium(*args):
    """A headless Chromium (Debian's package, driven by playwright, which downloads no browser of its own) started
    with these command-line switches, or a skip where there is none; never a skip under CI, whose .ci/run installs
    it."""
    playwright = require("playwright.sync_api")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("CI installs Debian's chromium (.ci/run); it is missing")
        pytest.skip("no chromium on this machine: apt-get install chromium")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox", *args])
        try:
            yield browser
        finally:
            browser.close()



def offline_page(browser) -> tuple:
    """A page of a new browser context with the network off, 1280 x 900, and what it reports: (page, errors, requests),
    the console's errors and the page's uncaught exceptions, and the URL of every request it makes."""
    page = browser.new_context(offline=True, viewport={"width": 1280, "height": 900}).new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    return page, errors, requests
