"""The run directory, piece by piece: safetensors files, the manifest, leftovers of a crash, the log, a diverged run,
what a resumed run may change, and one clear line for every damaged file. Crashes themselves: tests/test_faults.py."""

import hashlib
import json
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.numpy import load_file, save_file

from minigpt import settings as run_settings
from minigpt import GPT, GPTConfig, checkpoint, interrupt, load, weights
from minigpt.config import TrainConfig
from minigpt.distributed import Distributed
from minigpt.run import open_run
from helpers import TINY, cli, error_line, make_text, minigpt, read_log, train


@pytest.fixture
def text(tmp_path):
    return make_text(tmp_path / "text.txt", seed=0)


@pytest.fixture
def run(text, tmp_path):
    """A run of 10 steps with checkpoints at 5 and 10."""
    out = tmp_path / "run"
    train("--data", str(text), "--out-dir", str(out), "--max-iters", "10", "--eval-interval", "5", *TINY)
    return out


def files_of(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def rewrite(ckpt, name, content: bytes):
    """Replace a checkpoint's file and record it in the manifest, as a tool that edits checkpoints would: what is
    left to catch a bad file is its schema."""
    (ckpt / name).write_bytes(content)
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["files"][name] = {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


# --- safetensors files ------------------------------------------------------------------------------------------

ARRAYS = st.dictionaries(
    st.text("abcdefgh._", min_size=1, max_size=12),
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64, np.uint8]), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
    max_size=5,
)


@settings(max_examples=40)
@given(arrays=ARRAYS)
def test_safetensors_files_written_here_read_the_same_in_the_library_and_back(tmp_path_factory, arrays):
    path = tmp_path_factory.mktemp("st") / "a.safetensors"
    weights.write(path, arrays, metadata={"format": "pt"}, fsync=True)
    for read in (load_file, weights.read):
        back = read(str(path))
        assert set(back) == set(arrays)
        for name, a in arrays.items():
            assert back[name].dtype == a.dtype and back[name].shape == a.shape
            np.testing.assert_array_equal(back[name], a)
    save_file(arrays, str(path))  # and the library's own files read here
    for name, a in weights.read(path).items():
        np.testing.assert_array_equal(a, arrays[name])


@settings(max_examples=60)
@given(cut=st.integers(0, 400), flip=st.tuples(st.integers(0, 400), st.integers(1, 255)))
def test_a_damaged_safetensors_file_is_named_or_read_in_full(tmp_path_factory, cut, flip):
    path = tmp_path_factory.mktemp("st") / "model.safetensors"
    original = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(3)}
    weights.write(path, original)
    data = bytearray(path.read_bytes())
    if flip[0] < len(data):
        data[flip[0]] ^= flip[1]
    path.write_bytes(bytes(data[:cut]) if cut < len(data) else bytes(data))
    try:
        back = weights.read(path)
    except ValueError as e:
        assert str(path) in str(e) and "damaged or truncated" in str(e)
    else:
        # a flip in the data, or one that leaves the header well-formed (a name 'w' -> 'v', a dtype F32 -> I32): the
        # format cannot tell, and the file is read whole, every tensor exactly filling its bytes. (A checkpoint's
        # manifest of SHA-256s catches such flips: test_every_file_of_a_checkpoint_is_checked_against_its_manifest.)
        assert len(back) == len(original)
        assert sorted(a.nbytes for a in back.values()) == sorted(a.nbytes for a in original.values())


# --- the directory ----------------------------------------------------------------------------------------------

READERS = {"model.safetensors": load.read, "config.json": load.read, "tokenizer.json": load.read,
           "state.json": checkpoint.read_state, "train_config.json": checkpoint.read_train_config,
           "optimizer.safetensors": checkpoint.read_optimizer}


def test_every_file_of_a_checkpoint_is_checked_against_its_manifest(run):
    ckpt = run / "ckpt-000010"
    assert set(READERS) == set(checkpoint.FILES)
    for name, read in READERS.items():
        read(ckpt)
        original = (ckpt / name).read_bytes()
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 1  # one flipped bit
        (ckpt / name).write_bytes(bytes(damaged))
        with pytest.raises(ValueError, match=f"{name} does not match the SHA-256 in its manifest.json"):
            read(ckpt)
        (ckpt / name).write_bytes(original[:-1])
        with pytest.raises(ValueError, match=f"{name} does not match the SHA-256 in its manifest.json"):
            read(ckpt)
        (ckpt / name).unlink()
        with pytest.raises(ValueError, match=f"{name} is missing; the checkpoint is incomplete"):
            read(ckpt)
        (ckpt / name).write_bytes(original)


def test_leftovers_of_a_crash_are_removed_at_the_start_and_never_reused(run, capsys):
    (run / "ckpt-000015").mkdir()  # renamed, never committed
    (run / "ckpt-000015" / "model.safetensors").write_bytes(b"from a killed run")
    (run / "ckpt-000020.tmp-99999").mkdir()  # half written
    (run / "checkpoints.json.tmp-99999").write_text("{")
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "15")
    assert code == 0
    assert f"removing {run / 'ckpt-000015'}, left by a run that stopped before it was committed" in err
    assert f"removing {run / 'ckpt-000020.tmp-99999'}, left by a run that stopped while writing it" in err
    pointer = json.loads((run / "checkpoints.json").read_text())
    assert pointer["latest"] == "ckpt-000015"
    assert sorted(p.name for p in run.iterdir()) == sorted({"checkpoints.json", "log.jsonl", *pointer.values()})
    assert (run / "ckpt-000015" / "model.safetensors").read_bytes() != b"from a killed run"


def test_a_fresh_run_never_appends_to_an_old_log(text, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_text('{"iter": 1, "loss": 9.0}\n' * 7)  # a run killed before its first checkpoint
    code, err = cli(capsys, "train", "--data", str(text), "--out-dir", str(out), "--max-iters", "3", *TINY)
    assert code == 0 and "left by a run that stopped before its first checkpoint" in err
    assert [r["iter"] for r in read_log(out)] == [1, 2, 3]


def test_a_torn_last_line_is_repaired_with_a_notice_and_other_damage_is_named(run, capsys):
    log = run / "log.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines) + '\n{"iter": 11, "loss": 3.')  # killed while writing step 11's line
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "12")
    assert code == 0 and "dropping its last line, torn by a crash while it was written" in err
    assert [r["iter"] for r in read_log(run)] == list(range(1, 13))
    log.write_text("\n".join(lines[:3] + ["{not json"] + lines[3:]) + "\n")
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "12")
    assert code == 1
    error_line(err, f"{log} line 4 is not a JSON record with an 'iter'; the log is damaged")


@pytest.mark.parametrize("learning_rate", ["1e38", "1e6"])
def test_a_diverged_run_saves_nothing_and_its_last_good_checkpoint_resumes(run, capsys, learning_rate):
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "20", "--learning-rate",
                    learning_rate, "--warmup-iters", "0", "--eval-interval", "1")
    assert code == 1
    latest = run / json.loads((run / "checkpoints.json").read_text())["latest"]
    line = error_line(err, "the run diverged at iter", f"the last good checkpoint, {latest}, stays the latest",
                      "--resume and a lower --learning-rate")
    assert " is nan" in line or " is inf" in line or "not finite" in line
    diverged_at = int(line.split("diverged at iter ")[1].split(":")[0])
    assert int(latest.name[5:]) == diverged_at - 1  # every step before it was finite, and evaluated, and saved
    params = load.read(latest).weights
    assert all(np.isfinite(p).all() for p in params.values())
    assert all(np.isfinite(m).all() for m in checkpoint.read_optimizer(latest).values())
    assert np.isfinite(checkpoint.read_state(latest)["best_val_loss"])
    for record in read_log(run):  # strict JSON, and every number finite
        assert all(np.isfinite(v) for v in record.values() if isinstance(v, float))
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", str(diverged_at + 2),
                    "--learning-rate", "1e-3", "--eval-interval", "5")
    if learning_rate == "1e38":  # diverged at its first step: the checkpoint it resumes from is the good one of before
        assert code == 0
    else:  # steps at 1e6 that stayed finite were saved, and may be too far gone to recover: it resumes, and says so
        assert code == 0 or "the run diverged at iter" in error_line(err)
    assert cli(capsys, "sample", "--out-dir", str(run), "--checkpoint", "latest", "--max-new-tokens", "5")[0] == 0


def test_a_run_that_diverges_before_any_checkpoint_says_so(text, tmp_path, capsys):
    code, err = cli(capsys, "train", "--data", str(text), "--out-dir", str(tmp_path / "run"), "--max-iters", "5",
                    "--learning-rate", "1e38", "--warmup-iters", "0", *TINY)
    assert code == 1
    error_line(err, "the run diverged at iter", "no checkpoint was saved before it: start again with a lower --learning-rate")
    assert not (tmp_path / "run" / "checkpoints.json").exists()


# --- resume: a setting is applied or refused ----------------------------------------------------------------------

def test_resume_applies_dropout_and_the_other_settings(run):
    given = run_settings.given({"resume": True, "out_dir": str(run), "dropout": 0.5, "batch_size": 3, "learning_rate": 2e-3})
    resumed = open_run(given, Distributed(), say=lambda msg: None)
    try:
        assert resumed.model.config.dropout == 0.5 and resumed.cfg.batch_size == 3 and resumed.it == 10
        assert resumed.cfg.model.n_layer == 1 and resumed.cfg.max_iters == 10  # the rest: the run's own saved settings
        saved = load.build_model(load.read(run / "ckpt-000010"))  # and the weights are the checkpoint's
        for name, p in saved.params.items():
            np.testing.assert_array_equal(resumed.model.params[name], p)
    finally:
        resumed.close()
    losses = {}
    for p in ("0.5", "0.0"):  # from the same checkpoint, two steps with and without dropout
        copy = run.parent / f"dropout-{p}"
        shutil.copytree(run, copy)
        train("--resume", "--out-dir", str(copy), "--max-iters", "12", "--dropout", p)
        assert json.loads((copy / "ckpt-000012" / "train_config.json").read_text())["dropout"] == float(p)
        losses[p] = read_log(copy)[10]["loss"]
    assert losses["0.5"] > losses["0.0"] + 0.01  # half the activations dropped: a worse fit on the same batch


@pytest.mark.parametrize("flag, value", [("--seed", "7"), ("--n-layer", "2"), ("--dtype", "float64"),
                                         ("--tokenizer", "bpe"), ("--bias", None), ("--block-size", "32"),
                                         ("--n-embd", "32"), ("--n-head", "4"), ("--arch", "llama"), ("--lora-rank", "2")])
def test_resume_refuses_what_the_checkpoint_was_made_with(run, capsys, flag, value):
    before = files_of(run)
    args = [flag] if value is None else [flag, value]
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), *(["--no-bias"] if flag == "--bias" else args))
    assert code == 1
    error_line(err, "when resuming", "start a new run in another --out-dir")
    assert files_of(run) == before


def test_resume_names_every_setting_it_changes(run, capsys):
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "12", "--batch-size", "3",
                    "--backend", "numpy", "--dropout", "0.1", "--learning-rate", "2e-3", "--eval-iters", "3")
    assert code == 0, err
    notice = next(line for line in err.splitlines() if line.startswith("resuming"))
    assert notice == (f"resuming {run} at iter 10, with backend 'numpy' (was 'auto'), batch_size 3 (was 4), dropout 0.1 "
                      f"(was 0.0), eval_iters 3 (was 2), learning_rate 0.002 (was 0.001), max_iters 12 (was 10)")
    saved = json.loads((run / "ckpt-000012" / "train_config.json").read_text())
    assert (saved["batch_size"], saved["backend"], saved["dropout"], saved["eval_iters"]) == (3, "numpy", 0.1, 3)
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "12")
    assert [line for line in err.splitlines() if line.startswith("resuming")] == [f"resuming {run} at iter 12"]


def test_resume_refuses_another_text_unless_asked(run, tmp_path, capsys):
    other = make_text(tmp_path / "other.txt", seed=5)
    before = files_of(run)
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--data", str(other), "--max-iters", "12")
    assert code == 1
    error_line(err, "the data is not the text this run was trained on", "--allow-data-change")
    assert files_of(run) == before
    moved = tmp_path / "moved.txt"  # the same text elsewhere is the same data
    moved.write_bytes((tmp_path / "text.txt").read_bytes())
    assert cli(capsys, "train", "--resume", "--out-dir", str(run), "--data", str(moved), "--max-iters", "11")[0] == 0
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--data", str(other), "--max-iters", "12",
                    "--allow-data-change")
    assert code == 0 and "continuing on another text" in err
    state = json.loads((run / "ckpt-000012" / "state.json").read_text())
    assert state["data"]["sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()


# --- sizes, interrupts, the API ------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [("--n-layer", "1000000000"), ("--block-size", "1000000000000"),
                                         ("--gradient-accumulation-steps", "1000000000"), ("--n-embd", "4000000"),
                                         ("--batch-size", "10000000000")])
def test_sizes_that_do_not_fit_in_memory_are_refused_before_anything_is_allocated(text, tmp_path, capsys, flag, value):
    started = time.perf_counter()
    code, err = cli(capsys, "train", "--data", str(text), "--out-dir", str(tmp_path / "run"), flag, value,
                    *(["--n-head", "1"] if flag == "--n-embd" else []))
    assert code == 1
    error_line(err, "would need about", "of memory and this machine has", "available")
    assert time.perf_counter() - started < 10
    assert not (tmp_path / "run").exists()


def test_ctrl_c_during_start_up_ends_in_one_line(text, tmp_path):
    # in the imports, in building the run. Before minigpt runs a line (the interpreter's own start-up, compiling the
    # main module) a Ctrl-C is Python's, so each delay counts from the moment NumPy's extension is mapped: minigpt's
    # handler is in place by then (minigpt/cli.py main) and its imports are under way. (On a fast machine the last
    # delay may reach the loop, whose Ctrl-C saves a checkpoint: each delay has a run directory of its own.)
    for delay in (0.0, 0.15, 0.3):
        process = minigpt("train", "--data", str(text), "--out-dir", str(tmp_path / f"run-{delay}"), "--max-iters",
                          "100000", *TINY, wait=False)
        maps = Path(f"/proc/{process.pid}/maps")
        deadline = time.monotonic() + 60
        while "_multiarray_umath" not in maps.read_text() and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate()
        assert process.returncode == 130, stderr
        assert stderr.strip().splitlines()[-1].startswith("minigpt: interrupted"), stderr
        assert "Traceback" not in stderr


@pytest.mark.parametrize("stop, status, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_sigterm_and_sighup_during_start_up_end_in_one_line_with_their_status(text, tmp_path, stop, status, name):
    process = minigpt("train", "--data", str(text), "--out-dir", str(tmp_path / "run"), "--max-iters", "100000",
                      *TINY, wait=False)
    maps = Path(f"/proc/{process.pid}/maps")
    deadline = time.monotonic() + 60
    while "_multiarray_umath" not in maps.read_text() and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(stop)
    _, stderr = process.communicate()
    assert process.returncode == status, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("minigpt: interrupted") and name in last and "Traceback" not in stderr, stderr


def test_a_ctrl_c_that_an_import_swallowed_still_stops_the_run(text, tmp_path):
    # a KeyboardInterrupt raised inside a library's import can be caught by its bare `except:`; the command's
    # handler has seen the Ctrl-C all the same, and the loop must not start
    from minigpt.train import train

    cfg = run_settings.given(dict(data=str(text), out_dir=str(tmp_path / "run"), max_iters=5, n_layer=1, n_head=2,
                              n_embd=16, block_size=16, batch_size=4, eval_iters=2))
    before = signal.getsignal(signal.SIGINT)
    with interrupt.handled():
        try:  # the Ctrl-C, as the signal calls the command's handler; a bare `except:` swallows its KeyboardInterrupt
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        except KeyboardInterrupt:
            pass
        assert interrupt.requested()
        with pytest.raises(KeyboardInterrupt):
            train(cfg, progress=False)
    assert signal.getsignal(signal.SIGINT) is before
    assert not (tmp_path / "run" / "checkpoints.json").exists()


def test_a_ctrl_c_in_a_callback_python_cannot_raise_from_ends_in_one_line(text, tmp_path, capsys, monkeypatch):
    # a Ctrl-C that lands in a weakref callback (the import lock's) or a __del__ cannot be raised: the interpreter
    # prints "Exception ignored ... Traceback" and goes on. The command says one line and stops all the same.
    from minigpt import runtime

    class Finalised:
        def __del__(self):
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # the command's handler, called as the signal would

    def configure():
        Finalised()  # dropped at once: its __del__ is where the Ctrl-C lands

    monkeypatch.setattr(runtime, "configure", configure)
    monkeypatch.setattr("sys.unraisablehook", sys.__unraisablehook__)  # the interpreter's, not pytest's
    code, err = cli(capsys, "train", "--data", str(text), "--out-dir", str(tmp_path / "run"), *TINY)
    assert code == 130
    assert err.strip() == "minigpt: interrupted"
    assert not (tmp_path / "run").exists()


def test_the_python_api_names_bad_arguments():
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got 'bogus'"):
        GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=4), dtype="bogus")
    with pytest.raises(MemoryError, match="would need about"):
        GPT(GPTConfig(n_layer=10**9))
    with pytest.raises(ValueError, match="learning_rate must be a finite number, got nan"):
        TrainConfig(learning_rate=float("nan"))
    with pytest.raises(ValueError, match="weight_decay must be a finite number, got inf"):
        TrainConfig(weight_decay=float("inf"))


# --- every file minigpt reads: one line naming it --------------------------------------------------------------

def with_key(content: bytes, key: str, value) -> bytes:
    """A JSON file's bytes with one key set to value."""
    return json.dumps({**json.loads(content), key: value}).encode()


@pytest.mark.parametrize("name, content, message", [
    ("tokenizer.json", b"[]", "tokenizer.json must hold a JSON object, not list"),
    ("tokenizer.json", b'{"type": "char", "chars": 5}', "'chars' must be a string"),
    ("state.json", b"{}", "state.json has no 'iter'"),
    ("state.json", lambda state: with_key(state, "iter", -1), "'iter' must be zero or positive, got -1"),
    ("state.json", lambda state: with_key(state, "iter", "10"), "'iter' must be an integer, got '10'"),
    ("train_config.json", b"[]", "train_config.json must hold a JSON object, not list"),
    ("train_config.json", b'{"learning_rate": "fast"}', "learning_rate must be a positive number"),
    ("config.json", b"null", "config.json must hold a JSON object, not NoneType"),
    ("config.json", b"\xff\xfe", "config.json is not UTF-8 text"),
    ("config.json", lambda c: with_key(c, "n_layer", 10**9), "config.json says n_layer 1000000000 but the weights hold 1"),
    ("config.json", lambda c: with_key(c, "vocab_size", 10**12), "but config.json describes (1000000000000, 16)"),
    ("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00[1,2,3] ", "model.safetensors is damaged or truncated"),
    ("optimizer.safetensors", b"", "optimizer.safetensors is damaged or truncated"),
])
def test_a_damaged_file_of_a_checkpoint_is_named_in_one_line(run, capsys, name, content, message):
    ckpt = run / "ckpt-000010"
    rewrite(ckpt, name, content((ckpt / name).read_bytes()) if callable(content) else content)
    before = files_of(run)
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "12")
    assert code == 1
    error_line(err, message)
    assert files_of(run) == before


@pytest.mark.parametrize("content, message", [
    (b'{"latest": 5}', "'latest' must be a string"),
    (b'{"latest": "ckpt-000010", "best": "../../etc"}', "'best' must name a checkpoint directory"),
    (b'{"latest": "ckpt-000099", "best": "ckpt-000010"}', "names ckpt-000099 as latest, which does not exist"),
    (b"[", "checkpoints.json is not valid JSON"),
])
def test_a_damaged_pointer_is_named_in_one_line(run, capsys, content, message):
    (run / "checkpoints.json").write_bytes(content)
    for command in (["train", "--resume", "--out-dir", str(run)], ["sample", "--out-dir", str(run)],
                    ["train", "--out-dir", str(run)]):
        code, err = cli(capsys, *command)
        assert code == 1
        error_line(err, message)


# --- readers beside a writer ----------------------------------------------------------------------------------------

def test_readers_beside_a_training_run_read_a_whole_checkpoint_or_say_none_is_ready(text, tmp_path, capsys):
    # a checkpoint every 2 steps, each replacing the one before: between reading the pointer and reading the
    # checkpoint it names, a reader often finds that checkpoint removed. It reads the newer one instead.
    out = tmp_path / "run"
    writer = minigpt("train", "--data", str(text), "--out-dir", str(out), "--max-iters", "300", *TINY,
                     "--eval-interval", "2", "--eval-iters", "1", wait=False)
    seen, reads, commands = set(), 0, 0
    deadline = time.monotonic() + 60
    while writer.poll() is None and reads < 3000 and time.monotonic() < deadline:  # bounded in count and in time
        if reads % 40 == 39:  # and now and then a command that reads the run as a user runs it
            commands += 1
            args = (["sample", "--max-new-tokens", "3"] if commands % 2 else ["export", "--hf", str(tmp_path / f"x{commands}")])
            code, err = cli(capsys, *args, "--out-dir", str(out), "--checkpoint", "latest")
            assert code == 0, err
        try:
            pretrained = load.read(out, "latest")
            model, ckpt, saved = load.build_model(pretrained), pretrained.path, pretrained.train
        except FileNotFoundError as e:  # before the first checkpoint, and only then
            assert not seen and ("does not exist" in str(e) or "checkpoint in" in str(e) and " yet" in str(e)), e
            continue
        reads += 1
        seen.add(ckpt.name)
        assert saved.max_iters == 300 and model.config.n_embd == 16
    _, stderr = writer.communicate(timeout=120)
    assert writer.returncode == 0, stderr
    assert len(seen) >= 5 and commands >= 2, (len(seen), commands)
