"""Hostile and odd files, and the bounds of generation. A safetensors header that lies, a manifest that names paths
outside its checkpoint, a symlink out of a run directory, a data file that is a directory, a FIFO, a device, binary
or empty: each is refused in one line before anything large is allocated, and nothing outside the directory given is
opened. A generation too large for memory is refused before it starts. docs/runs.md lists them."""

import json
import os
import shutil
import struct
import sys
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minigpt import load, weights
from minigpt.cli import main
from minigpt.checkpoint import FILES, verified
from helpers import TINY, cli, error_line, make_text, minigpt, train

# --- what is opened: Python's audit hook sees every open() and os.open() of this process ------------------------

_opened = None  # a list of paths while recording()


def _audit(event, args):
    if _opened is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(Path(os.fsdecode(args[0])).resolve())


sys.addaudithook(_audit)  # (for the life of this process: it does nothing unless recording)


@contextmanager
def recording():
    """The paths opened inside the block."""
    global _opened
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None


@contextmanager
def peak_allocation():
    """The most memory Python and NumPy held at once inside the block, in bytes, above what they held before it."""
    tracemalloc.start()
    peak = [0]
    try:
        yield peak
    finally:
        peak[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


# --- safetensors headers that lie ---------------------------------------------------------------------------------

ARRAYS = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.linspace(0, 1, 4), "c": np.arange(5, dtype=np.int64)}
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1}

MUTATIONS = st.one_of(
    st.tuples(st.just("length"), st.sampled_from([2**64 - 1, 2**63, 2**40, weights.MAX_HEADER + 1])
              | st.integers(-64, 64).filter(bool)),  # absolute, or relative to the true length
    st.tuples(st.just("shift"), st.sampled_from("abc"), st.integers(-40, 40).filter(bool)),  # overlap, gap, outside
    st.tuples(st.just("end"), st.sampled_from("abc"), st.integers(-40, 40).filter(bool)),
    st.tuples(st.just("offsets"), st.sampled_from("abc"), st.sampled_from([[0], [0, 8, 16], ["0", 24], [True, 24],
                                                                            None, [-24, 0], [0, 2**70]])),
    st.tuples(st.just("dtype"), st.sampled_from("abc"), st.sampled_from([*ITEMSIZE, "X9", 5, None])),
    st.tuples(st.just("shape"), st.sampled_from("abc"), st.lists(st.integers(-2, 10**12), max_size=3) | st.just("3")),
    st.tuples(st.just("nest"), st.sampled_from("abc"), st.integers(1, 100_000)),  # [[[...]]], deep
    st.tuples(st.just("body"), st.integers(-40, 40).filter(bool)),  # the data cut short, or bytes added after it
    st.tuples(st.just("metadata"), st.sampled_from([5, [1], {"a": 1}, {"a": {"b": "c"}}, {"format": "pt"}])),
)


def mutated(path: Path, mutation) -> bool:
    """Rewrite the safetensors file at path by `mutation`; whether the result is still a valid file."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header, body = json.loads(raw[8:8 + n]), raw[8 + n:]
    kind, *what = mutation
    length, valid = None, False
    if kind == "length":  # absolute, or relative (below): the header cut short, or the data's first bytes read as its
        length = what[0]
    elif kind in ("shift", "end"):
        name, d = what
        start, end = header[name]["data_offsets"]
        header[name]["data_offsets"] = [start + d, end + d] if kind == "shift" else [start, end + d]
    elif kind == "offsets":
        header[what[0]]["data_offsets"] = what[1]
    elif kind == "dtype":
        name, dtype = what
        valid = ITEMSIZE.get(dtype) == ITEMSIZE[header[name]["dtype"]]  # (the format cannot tell F32 from I32)
        header[name]["dtype"] = dtype
    elif kind == "shape":
        name, shape = what
        start, end = header[name]["data_offsets"]
        valid = (isinstance(shape, list) and all(d >= 0 for d in shape)
                 and int(np.prod(shape, dtype=object)) * ITEMSIZE[header[name]["dtype"]] == end - start)
        header[name]["shape"] = shape
    elif kind == "nest":
        name, depth = what
        header[name] = "NEST"
    elif kind == "body":
        body = body[:what[0]] if what[0] < 0 else body + b"\0" * what[0]
    elif kind == "metadata":
        valid = isinstance(what[0], dict) and all(isinstance(v, str) for v in what[0].values())
        header["__metadata__"] = what[0]
    text = json.dumps(header).encode()
    if kind == "nest":
        text = text.replace(b'"NEST"', b"[" * depth + b"]" * depth)
    if kind == "length" and abs(length) <= 64:
        length = max(len(text) + length, 0)
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + body)
    return valid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=MUTATIONS)
def test_a_safetensors_file_whose_header_lies_is_refused_before_anything_larger_than_it_is_allocated(tmp_path, mutation):
    path = tmp_path / "model.safetensors"
    weights.write(path, ARRAYS)
    valid = mutated(path, mutation)
    size = path.stat().st_size
    with recording() as opened, peak_allocation() as peak:
        try:
            back = weights.read(path)
        except ValueError as e:
            assert not valid, e
            assert str(path) in str(e) and "damaged or truncated" in str(e), e
        else:
            assert valid, mutation
            assert set(back) == set(ARRAYS)
    # nothing near a size the header claims (up to 2**64 bytes): at most the parsed header's objects, a list of a few
    # dozen bytes for each two bytes of a nested one, and the first call's one-time allocations
    assert peak[0] <= 64 * size + 1_000_000, (peak[0], size)
    assert set(opened) <= {path.resolve()}


def test_a_header_length_past_the_librarys_limit_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "model.safetensors"
    with open(path, "wb") as f:  # 101 MB, sparse: the header length says it is all header
        f.write(struct.pack("<Q", weights.MAX_HEADER + 1))
        f.truncate(weights.MAX_HEADER + 9)
    with peak_allocation() as peak, pytest.raises(ValueError, match=f"a header of {weights.MAX_HEADER + 1} bytes"):
        weights.read(path)
    assert peak[0] < 1_000_000


@pytest.mark.parametrize("special", ["directory", "fifo", "missing"])
def test_a_safetensors_path_that_is_not_a_file_is_named(tmp_path, special):
    path = tmp_path / "model.safetensors"
    if special == "directory":
        path.mkdir()
    elif special == "fifo":
        os.mkfifo(path)
    with pytest.raises((ValueError, OSError), match={"directory": "is a directory", "fifo": "is a FIFO",
                                                     "missing": "does not exist"}[special]):
        weights.read(path)


# --- checkpoints that point out of themselves ---------------------------------------------------------------------

@pytest.fixture
def run(tmp_path):
    text = make_text(tmp_path / "text.txt", seed=0)
    out = tmp_path / "run"
    train("--data", str(text), "--out-dir", str(out), "--max-iters", "10", "--eval-interval", "5", *TINY)
    return out


def outside_of(run: Path) -> list:
    """Every path under the run's parent (the test's directory) that is not in the run directory."""
    return [p for p in run.parent.rglob("*") if run not in p.parents and p != run]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["../secret.txt", "../../secret.txt", "/etc/hostname", "ckpt/../../secret.txt", "..", "",
                             "model.safetensors/..", "./model.safetensors", "model.safetensors\0"]) | st.text(max_size=30))
def test_a_manifest_that_names_a_path_outside_its_checkpoint_is_refused(run, name):
    ckpt = run / "ckpt-000010"
    (run.parent / "secret.txt").write_text("not a checkpoint's")
    manifest_path = ckpt / "manifest.json"
    original = manifest_path.read_bytes()
    manifest = json.loads(original)
    manifest["files"][name] = {"size": 18, "sha256": "0" * 64}
    manifest_path.write_text(json.dumps(manifest))
    try:
        with recording() as opened:
            if name in FILES:  # (its entry replaced: the file no longer matches it)
                with pytest.raises(ValueError, match="does not match the SHA-256"):
                    load.read(ckpt)
            else:
                with pytest.raises(ValueError, match="which is not a file of a checkpoint"):
                    verified(ckpt, "model.safetensors")
        assert all(ckpt in p.parents for p in opened if run.parent in p.parents), opened
    finally:
        manifest_path.write_bytes(original)


def test_a_symlink_in_a_checkpoint_or_a_run_directory_is_refused_and_nothing_outside_is_read(run, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ckpt = run / "ckpt-000010"
    # a weights file that is a link out of the checkpoint (to a copy of the same bytes: only the link is wrong)
    shutil.copy(ckpt / "model.safetensors", elsewhere / "model.safetensors")
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors").symlink_to(elsewhere / "model.safetensors")
    with recording() as opened:
        code, err = cli(capsys, "sample", "--out-dir", str(run), "--max-new-tokens", "3")
    assert code == 1
    error_line(err, "model.safetensors is a symbolic link", "replace the link by the file")
    assert (elsewhere / "model.safetensors").resolve() not in opened
    # the checkpoint directory itself a link
    shutil.move(ckpt, elsewhere / "ckpt")
    ckpt.symlink_to(elsewhere / "ckpt")
    code, err = cli(capsys, "sample", "--out-dir", str(run), "--max-new-tokens", "3")
    assert code == 1
    error_line(err, "ckpt-000010 is a symbolic link")


@pytest.mark.parametrize("name", ["log.jsonl", "checkpoints.json"])
def test_a_run_never_writes_through_a_symlink_out_of_its_directory(run, tmp_path, capsys, name):
    victim = tmp_path / "victim.txt"
    shutil.copy(run / name, victim)
    before = victim.read_bytes()
    (run / name).unlink()
    (run / name).symlink_to(victim)
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "12")
    assert code == 1
    error_line(err, f"{name} is a symbolic link")
    assert victim.read_bytes() == before


def test_leftovers_that_are_symlinks_are_removed_as_links_never_followed(run, tmp_path, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    (run / "ckpt-000099").symlink_to(precious)  # a checkpoint the pointer does not name, and a temporary
    (run / "ckpt-000012.tmp-5").symlink_to(precious)
    assert cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "11")[0] == 0
    assert not (run / "ckpt-000099").is_symlink() and not (run / "ckpt-000012.tmp-5").is_symlink()
    assert (precious / "keep.txt").read_text() == "keep"


# --- data files that are not text ----------------------------------------------------------------------------------

ODD = {
    "empty": (lambda p: p.write_bytes(b""), "is empty"),
    "whitespace": (lambda p: p.write_text(" \n\n\t"), "is only whitespace"),
    "binary": (lambda p: p.write_bytes(b"abc\0def" * 50), "is binary, not text (a NUL byte at byte 3)"),
    "latin-1": (lambda p: p.write_bytes("naïve café ".encode("latin-1") * 50), "is not UTF-8 text (byte 2)"),
    "directory": (lambda p: p.mkdir(), "is a directory, not a file"),
    "missing": (lambda p: None, "does not exist"),
    "dangling symlink": (lambda p: p.symlink_to(p.parent / "nowhere"), "does not exist"),
    "device": (lambda p: p.symlink_to("/dev/zero"), "is a device, not a regular file"),
}


TRAIN, TOKENIZER = ["train", "--max-iters", "1", *TINY], ["tokenizer", "train", "--vocab-size", "300"]


@pytest.mark.parametrize("odd", sorted(ODD))
@pytest.mark.parametrize("command, suffix", [(TRAIN, ".txt"), (TRAIN, ".jsonl"), (TOKENIZER, ".txt")])
def test_a_data_file_that_is_not_text_is_one_line(tmp_path, capsys, command, odd, suffix):
    make, message = ODD[odd]
    if suffix == ".jsonl" and odd in ("empty", "whitespace"):
        message = "holds no records"
    path = tmp_path / f"data{suffix}"
    make(path)
    out = ["--out-dir", str(tmp_path / "run")] if command[0] == "train" else ["--out", str(tmp_path / "tok")]
    code, err = cli(capsys, *command, "--data", str(path), *out)
    assert code == 1
    error_line(err, "data file", message)
    assert not (tmp_path / "run").exists() and not (tmp_path / "tok").exists()


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_a_data_file_that_is_a_fifo_is_one_line_and_no_hang(tmp_path, suffix):
    fifo = tmp_path / f"data{suffix}"
    os.mkfifo(fifo)  # a read would wait for a writer for ever (a new process, with a timeout, in case it does)
    process = minigpt("train", "--data", str(fifo), "--out-dir", str(tmp_path / "run"), *TINY, wait=False)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    error_line(stderr, "is a FIFO, not a regular file")


# --- bounds on generation ------------------------------------------------------------------------------------------

def test_too_many_samples_at_once_are_refused_before_anything_is_allocated(run, capsys):
    with peak_allocation() as peak:
        code, err = cli(capsys, "sample", "--out-dir", str(run), "--num-samples", str(10**9))
    assert code == 1
    error_line(err, "generating 1,000,000,000 sequences at once would need about", "--num-samples")
    assert peak[0] < 50_000_000


def test_zero_new_tokens_prints_the_prompt_and_a_prompt_longer_than_the_context_is_one_line(run, capsys):
    capsys.readouterr()
    assert main(["sample", "--out-dir", str(run), "--prompt", "the king", "--max-new-tokens", "0"]) == 0
    assert capsys.readouterr().out == "the king\n"
    code, err = cli(capsys, "sample", "--out-dir", str(run), "--prompt", "the king " * 10)
    assert code == 1
    error_line(err, "the prompt has 90 tokens but the model's context (block_size) is 16")


def test_several_samples_past_the_context_are_each_printed_whole(run, capsys):
    # generated together, the window sliding past block_size; each sample's text is kept as pieces, joined at the end
    capsys.readouterr()
    assert main(["sample", "--out-dir", str(run), "--num-samples", "3", "--max-new-tokens", "400", "--seed", "1",
                 "--prompt", "the"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n")
    samples = out[:-1].split("\n" + "-" * 40 + "\n")  # (print's newline after each, a rule between them)
    assert len(samples) == 3
    assert all(sample.startswith("the") and len(sample) == 3 + 400 for sample in samples), samples
