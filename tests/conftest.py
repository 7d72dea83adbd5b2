import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from helpers import require
from minigpt import runtime
from minigpt.files import cache_dir

# The tests start about a hundred `minigpt` processes: with Python's bytecode cache off (PYTHONDONTWRITEBYTECODE, set
# on some machines), each would compile minigpt's modules again, 15 s of a run on 2 cores. Cache it (in __pycache__/,
# which git ignores), here and in every process the tests start.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# No test asks the network for a model: a name that is no directory is looked up in huggingface_hub's cache only
# (minigpt/hub.py), here and in every process the tests start. tests/test_hub.py lays out caches of its own.
os.environ["HF_HUB_OFFLINE"] = "1"

# Under pytest-xdist (the default: -n 2 in pyproject.toml) the workers share the cores: one thread each, also in the
# processes they start. Tests of threading ask for their threads explicitly.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("MINIGPT_THREADS", "1")
# the settings the `minigpt` command applies (threads, memory), through the same explicit call
runtime.configure()

# Under CI every run explores the same examples (derandomize), so a failure is reproducible from the log.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")


@pytest.fixture(scope="session")
def torch():
    torch = require("torch")
    torch.manual_seed(0)
    return torch


@pytest.fixture(scope="session")
def transformers(torch):
    transformers = require("transformers")
    transformers.logging.set_verbosity_error()
    return transformers


@pytest.fixture(scope="session")
def tiktoken():
    return require("tiktoken")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    """A cache directory private to the test session, for prepared datasets, except that the compiled kernels
    (numba's and the C ones, keyed by their sources) are the user's: compiling them again each session is slow."""
    user_cache = cache_dir()
    session = tmp_path_factory.getbasetemp() / "minigpt-cache"
    session.mkdir(exist_ok=True)
    for compiled in ("numba", "kernels"):
        (user_cache / compiled).mkdir(parents=True, exist_ok=True)
        if not (session / compiled).exists():
            (session / compiled).symlink_to(user_cache / compiled, target_is_directory=True)
    return session


@pytest.fixture(autouse=True)
def isolated_cache(session_cache, monkeypatch):
    """Prepared datasets go to a cache private to the test session, never to the user's."""
    monkeypatch.setenv("MINIGPT_CACHE", str(session_cache))


@pytest.fixture(scope="session")
def shakespeare():
    """Tiny Shakespeare: $MINIGPT_DATA, or ../shared/data beside the repository (where CI puts it)."""
    path = Path(os.environ.get("MINIGPT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt")
    if not path.is_file():
        if os.environ.get("CI") == "true":
            raise FileNotFoundError(f"Tiny Shakespeare is not at {path}; CI expects it there")
        pytest.skip(f"Tiny Shakespeare not found at {path}; set MINIGPT_DATA")
    return path


def pytest_collection_modifyitems(config, items):
    """The two tests that take longest (a real browser each, 8 and 23 s in a run of the suite) start first: begun
    last, as the order of the files had them, the longer kept one worker busy for 12 s after the other had nothing
    left to do (measured: 78 s for the suite, 67 s with them first). The others keep their order."""
    first = ("test_the_site_builds_strictly_and_every_page_renders_in_a_real_browser_offline",
             "test_the_page_in_a_real_browser_offline")
    items.sort(key=lambda item: item.name not in first)
