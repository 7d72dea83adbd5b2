"""Models named by their Hub id (minigpt/hub.py, through minigpt/load.py locate): read from a Hugging Face cache
laid out here as huggingface_hub lays one out, by `minigpt sample` and `minigpt train --init-from` run as a user runs
them, offline. No test reaches the network: the commands run with every socket refused (and say so if one was
asked for), or against a stand-in for the Hub on this machine that answers every request with one error."""

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from helpers import error_line
from minigpt import GPT, GPTConfig, checkpoint, hf, hub, load
from minigpt.data.chars import CharTokenizer

TEXT = "the king and the queen of hearts\n" * 40
REPO = "minigpt-tests/tiny"
COMMIT = "4f1c2d3e4b5a69788796a5b4c3d2e1f0a9b8c7d6"  # a commit's hash, as refs/main names it
ASKED = "test: the network was asked"

# `minigpt ARGS` in a new process whose sockets all refuse, and which says so on stderr if one was asked for
NO_NETWORK = f"""
import socket, sys
def refuse(*args, **kwargs):
    sys.stderr.write({ASKED!r} + "\\n")
    raise OSError("no network in tests")
socket.getaddrinfo = socket.create_connection = socket.socket.connect = socket.socket.connect_ex = refuse
from minigpt.cli import entry
entry()
"""


def export_tiny(directory: Path, seed: int) -> Path:
    """A tiny GPT-2 with its character tokenizer, written as `minigpt export --hf` writes one."""
    tokenizer = CharTokenizer.from_text(TEXT)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16), seed=seed)
    hf.save_pretrained(model.eval(), directory, tokenizer)
    return directory


def cache(hf_home: Path, repo_id: str, files: Path, commit: str = COMMIT) -> Path:
    """The files of `files` laid out as huggingface_hub's cache holds a model downloaded at `commit`: in
    HF_HOME/hub/models--owner--name, each file once in blobs/ named by its hash (the SHA-256 of a file stored in LFS,
    the git blob SHA-1 of another), snapshots/<commit>/<file> a relative link to it, refs/main naming the commit."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    for path in sorted(files.iterdir()):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest() if path.suffix == ".safetensors" else \
            hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (repo / "blobs").mkdir(parents=True, exist_ok=True)
        (repo / "blobs" / digest).write_bytes(data)
        link = repo / "snapshots" / commit / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("..", "..", "blobs", digest))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)  # (no newline: huggingface_hub writes none)
    return repo / "snapshots" / commit


def run(*args, hf_home: Path, offline: bool = True, endpoint: str | None = None, cwd=None):
    """`minigpt ARGS` with HF_HOME, as a user runs it, its network refused unless a stand-in Hub (`endpoint`) is
    given."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))
           and key.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(PYTHONPATH=os.pathsep.join(sys.path), HF_HOME=str(hf_home))
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    if endpoint is not None:
        env["HF_ENDPOINT"] = endpoint
        command = [sys.executable, "-m", "minigpt.cli", *args]
    else:
        command = [sys.executable, "-c", NO_NETWORK, *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """(HF_HOME holding REPO, the directory it was exported to)."""
    root = tmp_path_factory.mktemp("hub")
    exported = export_tiny(root / "exported", seed=1)
    cache(root / "hf-home", REPO, exported)
    return root / "hf-home", exported


def test_the_cache_laid_out_here_is_one_huggingface_hub_reads(cached):
    from huggingface_hub import scan_cache_dir, snapshot_download

    hf_home, exported = cached
    (repo,) = scan_cache_dir(hf_home / "hub").repos
    (revision,) = repo.revisions
    assert (repo.repo_id, repo.repo_type, revision.commit_hash, set(revision.refs)) == (REPO, "model", COMMIT, {"main"})
    assert sorted(f.file_name for f in revision.files) == sorted(p.name for p in exported.iterdir())
    found = snapshot_download(REPO, cache_dir=hf_home / "hub", local_files_only=True)
    assert Path(found) == hf_home / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT


def test_sample_reads_a_hub_id_from_the_cache_offline_as_the_directory_it_was_exported_to(cached, tmp_path):
    hf_home, exported = cached
    flags = ["--prompt", "the ", "--max-new-tokens", "12", "--seed", "7", "--backend", "numpy"]
    by_id = run("sample", "--init-from", REPO, *flags, hf_home=hf_home, cwd=tmp_path)
    by_path = run("sample", "--init-from", str(exported), *flags, hf_home=tmp_path / "empty", cwd=tmp_path)
    assert by_id.returncode == 0 and by_path.returncode == 0, by_id.stderr + by_path.stderr
    assert by_id.stdout == by_path.stdout and by_id.stdout.startswith("the ")
    assert ASKED not in by_id.stderr


def test_train_init_from_a_hub_id_fine_tunes_the_cached_model_offline(cached, tmp_path):
    hf_home, exported = cached
    (tmp_path / "text.txt").write_text(TEXT)
    out = tmp_path / "run"
    result = run("train", "--init-from", REPO, "--data", str(tmp_path / "text.txt"), "--out-dir", str(out),
                 "--max-iters", "2", "--eval-interval", "2", "--eval-iters", "1", "--batch-size", "2",
                 "--backend", "numpy", hf_home=hf_home, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ASKED not in result.stderr
    ckpt = out / checkpoint.read_pointer(out)["latest"]
    assert checkpoint.read_train_config(ckpt).init_from == REPO
    fine_tuned, cached_model = load.read(ckpt), load.read(exported)
    assert fine_tuned.config == cached_model.config  # the cached model's shape
    assert fine_tuned.tokenizer == cached_model.tokenizer


@pytest.mark.parametrize("name", ["openai-community/gpt2", "gpt2"])
def test_an_uncached_id_offline_is_one_line_without_the_network(cached, tmp_path, name):
    hf_home, _ = cached
    result = run("sample", "--init-from", name, "--max-new-tokens", "2", hf_home=hf_home, cwd=tmp_path)
    assert result.returncode == 1
    assert ASKED not in result.stderr and "Traceback" not in result.stderr
    error_line(result.stderr, f"{name} is no directory", str(hf_home / "hub"), "HF_HUB_OFFLINE",
               "run once without HF_HUB_OFFLINE")


def test_an_uncached_id_with_the_hub_out_of_reach_is_one_line(cached, tmp_path):
    hf_home, _ = cached
    result = run("sample", "--init-from", "openai-community/gpt2", hf_home=hf_home, offline=False, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ASKED in result.stderr  # (it did try: not offline)
    error_line(result.stderr, "openai-community/gpt2 is no directory", "cannot be reached", "check the connection")


class StandIn(http.server.BaseHTTPRequestHandler):
    """A stand-in for the Hub: every request answered with the status and X-Error-Code the server sets, as the Hub
    answers for a model it does not have (404, RepoNotFound) or one behind its terms (403, GatedRepo)."""

    def do_GET(self):
        status, code = self.server.answer
        body = json.dumps({"error": code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def stand_in():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    server.answer = (404, "RepoNotFound")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("answer, fragments", [
    ((404, "RepoNotFound"), ["nobody/nothing is no directory", "the Hugging Face Hub has no model nobody/nothing",
                             "HF_TOKEN"]),
    ((403, "GatedRepo"), ["nobody/nothing is a gated model", "{endpoint}/nobody/nothing", "hf auth login"]),
])
def test_a_model_the_hub_does_not_have_or_gates_is_one_line(stand_in, tmp_path, answer, fragments):
    stand_in.answer = answer
    endpoint = f"http://127.0.0.1:{stand_in.server_address[1]}"
    result = run("sample", "--init-from", "nobody/nothing", hf_home=tmp_path / "hf-home", offline=False,
                 endpoint=endpoint, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error_line(result.stderr, *(fragment.format(endpoint=endpoint) for fragment in fragments))


def test_a_directory_of_the_name_wins_over_the_id(cached, tmp_path, monkeypatch):
    # as in transformers: `gpt2/` in the working directory is that directory, wherever the cache is
    monkeypatch.chdir(tmp_path)
    local = export_tiny(tmp_path / REPO, seed=2)
    assert load.locate(REPO) == Path(REPO)
    hf_home, _ = cached
    flags = ["--prompt", "the ", "--max-new-tokens", "12", "--greedy", "--backend", "numpy"]
    here = run("sample", "--init-from", REPO, *flags, hf_home=hf_home, cwd=tmp_path)
    there = run("sample", "--init-from", str(local.resolve()), *flags, hf_home=tmp_path / "empty", cwd=tmp_path)
    assert here.returncode == 0 and here.stdout == there.stdout, here.stderr


@pytest.mark.parametrize("files, fragment", [
    ({"README.md": "# a dataset card"}, "has no config.json: it is not a model minigpt reads"),
    ({"config.json": "{}", "pytorch_model.bin": "pickle"}, "has no model.safetensors"),
])
def test_a_cached_repository_that_is_no_model_minigpt_reads_is_one_line(tmp_path, files, fragment):
    (tmp_path / "files").mkdir()
    for name, text in files.items():
        (tmp_path / "files" / name).write_text(text)
    cache(tmp_path / "hf-home", "someone/not-a-model", tmp_path / "files")
    result = run("sample", "--init-from", "someone/not-a-model", hf_home=tmp_path / "hf-home", cwd=tmp_path)
    assert result.returncode == 1 and ASKED not in result.stderr
    error_line(result.stderr, "someone/not-a-model on the Hugging Face Hub", fragment)


def test_only_the_files_minigpt_reads_are_downloaded():
    # huggingface_hub's own matching of the patterns, on the files of typical model repositories
    from huggingface_hub.utils import filter_repo_objects

    read = ["config.json", "model.safetensors", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
            "vocab.json", "merges.txt"]
    unread = [".gitattributes", "README.md", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "rust_model.ot",
              "onnx/model.onnx", "onnx/model.safetensors", "original/consolidated.00.pth",
              "consolidated.safetensors", "64-8bits.tflite", "model.gguf", "runs/events.out.tfevents"]
    assert sorted(filter_repo_objects(read + unread, allow_patterns=list(hub.FILES))) == sorted(read)


class Asked(Exception):
    """What the stand-in for snapshot_download raises, with the name it was asked for."""


SEGMENT = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,20}[A-Za-z0-9])?", fullmatch=True).filter(
    lambda s: ".." not in s and "--" not in s)
IDS = st.one_of(SEGMENT, st.builds(lambda owner, name: f"{owner}/{name}", SEGMENT, SEGMENT))
PATHS = st.one_of(st.builds(lambda prefix, rest: prefix + rest, st.sampled_from(["./", "../", "/", "~/", "~"]), IDS),
                  st.builds(lambda a, b, c: f"{a}/{b}/{c}", SEGMENT, SEGMENT, SEGMENT))


@given(name=IDS)
def test_a_name_that_is_no_directory_and_reads_as_an_id_goes_to_the_hub(empty_directory, name):
    import huggingface_hub

    def asked(repo_id, **kwargs):
        raise Asked(repo_id, kwargs["allow_patterns"])

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(empty_directory)
        patch.setattr(huggingface_hub, "snapshot_download", asked)
        with pytest.raises(Asked) as e:
            load.locate(name)
    assert e.value.args == (name, list(hub.FILES))


@given(name=PATHS)
def test_a_name_written_as_a_path_never_goes_to_the_hub(empty_directory, name):
    import huggingface_hub

    def asked(repo_id, **kwargs):
        raise Asked(repo_id)

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(empty_directory)
        assume(not Path(name).exists())  # (/bin, say)
        patch.setattr(huggingface_hub, "snapshot_download", asked)
        with pytest.raises(FileNotFoundError, match="does not exist; give a run directory"):
            load.locate(name)


@pytest.fixture(scope="module")
def empty_directory(tmp_path_factory):
    return tmp_path_factory.mktemp("empty")


def test_a_file_or_a_missing_path_is_refused_in_one_line(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    for name, fragment in [(str(tmp_path / "model.safetensors"), "is a file"),
                           (str(tmp_path / "missing"), "does not exist"), ("./missing", "does not exist")]:
        result = run("sample", "--init-from", name, hf_home=tmp_path / "hf-home", cwd=tmp_path)
        assert result.returncode == 1 and ASKED not in result.stderr
        error_line(result.stderr, fragment, "give a run directory")
