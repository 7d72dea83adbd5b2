"""Crash safety, proven by faults: a run killed at each step of the checkpoint protocol, or by kill -9 at random
instants, then resumed, ends exactly (bit for bit) as an uninterrupted run; a full disk costs nothing but the step
being saved; two runs on one directory cannot both train. The protocol: minigpt/checkpoint.py, docs/runs.md."""

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from minigpt import load
from minigpt.data import load_tokenizer
from minigpt.cli import main
from helpers import TINY, error_line, make_text, minigpt

# a tiny run with dropout (its generator must survive too), a checkpoint every 5 steps, one thread: deterministic
RUN = [*TINY, "--eval-interval", "5", "--dropout", "0.1", "--backend", "numpy", "--threads", "1"]
POINTS = ("save.begin", "save.files", "save.manifest", "save.intent", "save.renamed", "save.pointer", "save.committed",
          "save.replaced", "log.written")


def finish(out, command):
    """Resume a run until it completes, as a user would after a crash: --resume once there is a checkpoint. (Run in
    this process: only the runs that are killed need one of their own.)"""
    resume = (out / "checkpoints.json").exists()
    assert main(["train", "--resume", "--out-dir", str(out)] if resume else command) == 0


def snapshot(out):
    """Everything a run leaves, as bytes, except the timings in its log."""
    pointer = json.loads((out / "checkpoints.json").read_text())
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != "log.jsonl"}
    log = [{k: v for k, v in json.loads(line).items() if k != "tokens_per_sec"}
           for line in (out / "log.jsonl").read_text().splitlines()]
    return pointer, files, log


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every faulty one must end up equal to."""
    tmp = tmp_path_factory.mktemp("faults")
    text = make_text(tmp / "text.txt", seed=0)
    command = ["train", "--data", str(text), "--max-iters", "20", *RUN]
    assert main([*command, "--out-dir", str(tmp / "reference")]) == 0
    return command, snapshot(tmp / "reference")


@pytest.mark.parametrize("point", POINTS)
def test_a_kill_at_each_step_of_the_protocol_then_resume_equals_the_uninterrupted_run(reference, tmp_path, point):
    command, expected = reference
    out = tmp_path / "run"
    # the third checkpoint's save (iter 15), or the 13th log line
    killed = minigpt(*command, "--out-dir", str(out), fault=f"{point}@{13 if point == 'log.written' else 3}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    finish(out, [*command, "--out-dir", str(out)])
    assert snapshot(out) == expected
    assert not list(out.glob("*.tmp-*"))


def test_kill_9_at_random_instants_then_resume_equals_the_uninterrupted_run(tmp_path):
    text = make_text(tmp_path / "text.txt", seed=1)
    command = ["train", "--data", str(text), "--max-iters", "500", *RUN, "--eval-interval", "10"]
    assert main([*command, "--out-dir", str(tmp_path / "reference")]) == 0
    out = tmp_path / "run"
    rng = np.random.default_rng(0)
    kills = 0
    for _ in range(8):  # bounded: eight kills at most, at instants drawn from a seeded generator
        resume = (out / "checkpoints.json").exists()
        done = logged_iter(out)
        if done >= 499:
            break
        # the instant, by the run's own progress rather than the clock (so that it falls inside the run on any machine,
        # however fast or loaded): once the run has logged a step drawn from those left (the first: during start-up),
        # and a little later, inside a step, its log line or a checkpoint's save
        target = rng.integers(done, 500)
        process = minigpt(*(["train", "--resume", "--out-dir", str(out)] if resume else [*command, "--out-dir", str(out)]),
                          wait=False)
        deadline = time.monotonic() + 120
        while process.poll() is None and logged_iter(out) < target and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.02))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        if process.returncode == 0:  # it finished first
            break
        kills += 1
    finish(out, [*command, "--out-dir", str(out)])
    assert kills >= 3
    assert snapshot(out) == snapshot(tmp_path / "reference")


def logged_iter(out) -> int:
    """The step of the run's last whole line of log.jsonl (each is flushed as it is written), 0 before any."""
    try:
        lines = (out / "log.jsonl").read_text().splitlines(keepends=True)
    except FileNotFoundError:
        return 0
    whole = [line for line in lines if line.endswith("\n")]
    return json.loads(whole[-1])["iter"] if whole else 0


@pytest.fixture
def small_disk(tmp_path):
    """A directory on a 1.5 MB tmpfs where the test may mount one (as root), else None."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(disk)], capture_output=True).returncode:
        yield None
        return
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_last_checkpoint(tmp_path, small_disk, monkeypatch, capsys):
    text = make_text(tmp_path / "text.txt", seed=0)
    out = (small_disk or tmp_path) / "run"
    assert main(["train", "--data", str(text), "--out-dir", str(out), "--max-iters", "5", *RUN]) == 0
    ckpt = out / "ckpt-000005"
    if small_disk is not None:  # fill the disk: what is left cannot hold another checkpoint
        filler = small_disk / "filler"
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(b"\0" * (free - 20_000))
    else:  # no tmpfs here: the weights' write fails as a full disk makes it fail, halfway through the file
        from minigpt import weights

        def full_disk(path, arrays, metadata=None, fsync=False):
            Path(path).write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(weights, "write", full_disk)
    capsys.readouterr()
    assert main(["train", "--resume", "--out-dir", str(out), "--max-iters", "10"]) == 1
    error_line(capsys.readouterr().err, "could not write", "No space left on device",
               "free some space and continue with --resume")
    assert json.loads((out / "checkpoints.json").read_text())["latest"] == "ckpt-000005"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints.json", "ckpt-000005", "log.jsonl"]  # no temporaries
    load.read(ckpt)  # the previous checkpoint is intact: it verifies against its manifest
    if small_disk is not None:
        filler.unlink()
    else:
        monkeypatch.undo()
    assert main(["train", "--resume", "--out-dir", str(out), "--max-iters", "10"]) == 0
    assert json.loads((out / "checkpoints.json").read_text())["latest"] == "ckpt-000010"


def test_two_runs_on_one_directory_cannot_both_train(tmp_path):
    text = make_text(tmp_path / "text.txt", seed=0)
    out = tmp_path / "run"
    command = ["train", "--data", str(text), "--out-dir", str(out), "--max-iters", "400", *RUN]
    # started together: exactly one trains, the other stops at once
    first, second = minigpt(*command, wait=False), minigpt(*command, wait=False)
    results = [(p.wait(), p.communicate()[1]) for p in (first, second)]
    assert sorted(code for code, _ in results) == [0, 1], results
    loser = error_line(next(err for code, err in results if code == 1))
    assert "another minigpt train is running in" in loser or "already holds a run" in loser
    assert [json.loads(line)["iter"] for line in (out / "log.jsonl").read_text().splitlines()] == list(range(1, 401))
    # one started while the other trains: the lock, not the order, stops it (also with --resume)
    busy = minigpt("train", "--resume", "--out-dir", str(out), "--max-iters", "2000", wait=False)
    while not (out / "checkpoints.json").exists() or json.loads((out / "checkpoints.json").read_text())["latest"] == "ckpt-000400":
        assert busy.poll() is None, busy.communicate()
        time.sleep(0.02)
    late = minigpt("train", "--resume", "--out-dir", str(out), "--max-iters", "2000")
    busy.send_signal(signal.SIGINT)
    assert busy.wait() == 130
    assert late.returncode == 1
    assert error_line(late.stderr) == (f"minigpt: error: another minigpt train is running in {out}; wait for it to "
                                       f"finish, or give this run another --out-dir")


# --- stopped by a signal: SIGTERM (kill, docker stop, a scheduler) and SIGHUP (a closed terminal) are a Ctrl-C ----

STOPS = {signal.SIGINT: (130, "interrupted at iter"), signal.SIGTERM: (143, "interrupted by SIGTERM at iter"),
         signal.SIGHUP: (129, "interrupted by SIGHUP at iter")}


def stopped_line(process, stop) -> str:
    """The one line a run stopped by `stop` ends with, checked: the signal's exit status, no traceback."""
    status, _ = STOPS[stop]
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.startswith("minigpt")]
    assert len(lines) == 1 and lines[0].startswith("minigpt: interrupted"), stderr
    return lines[0]


def test_sigterm_and_sighup_at_random_instants_then_resume_equals_the_uninterrupted_run(tmp_path):
    text = make_text(tmp_path / "text.txt", seed=2)
    command = ["train", "--data", str(text), "--max-iters", "400", *RUN, "--eval-interval", "10"]
    assert main([*command, "--out-dir", str(tmp_path / "reference")]) == 0
    out = tmp_path / "run"
    rng = np.random.default_rng(1)
    saved_at = []
    logged = lambda: len((out / "log.jsonl").read_text().splitlines()) if (out / "log.jsonl").exists() else 0  # noqa: E731
    for n in range(6):  # bounded: six stops, each at an iteration drawn from a seeded generator
        stop = (signal.SIGTERM, signal.SIGHUP)[n % 2]
        resume = (out / "checkpoints.json").exists()
        at = (saved_at[-1] if saved_at else 0) + int(rng.integers(3, 60))
        process = minigpt(*(["train", "--resume", "--out-dir", str(out)] if resume else [*command, "--out-dir", str(out)]),
                          wait=False)
        deadline = time.monotonic() + 60
        while process.poll() is None and logged() < at and time.monotonic() < deadline:
            time.sleep(0.001)
        process.send_signal(stop)
        line = stopped_line(process, stop)
        assert STOPS[stop][1] in line, line
        it = int(line.split(" at iter ")[1].split(";")[0])  # a checkpoint of that very step
        assert it >= at and json.loads((out / "checkpoints.json").read_text())["latest"] == f"ckpt-{it:06d}"
        saved_at.append(it)
    finish(out, [*command, "--out-dir", str(out)])
    assert any(it % 10 for it in saved_at)  # stops between the periodic checkpoints
    assert snapshot(out) == snapshot(tmp_path / "reference")


@pytest.mark.parametrize("point", [p for p in POINTS if p != "log.written"])
def test_a_second_signal_during_the_save_a_stop_makes_does_not_tear_it(reference, tmp_path, point):
    # the first SIGTERM comes during the save at iter 10 (its second): the run stops after step 11, whose save gets
    # a second SIGTERM at the same point; both saves finish, and the stop's checkpoint is the latest
    command, expected = reference
    out = tmp_path / "run"
    process = minigpt(*command, "--out-dir", str(out), fault=f"{point}@2:SIGTERM,{point}@3:SIGTERM", wait=False)
    assert "interrupted by SIGTERM at iter 11;" in stopped_line(process, signal.SIGTERM)
    assert json.loads((out / "checkpoints.json").read_text())["latest"] == "ckpt-000011"
    assert not list(out.glob("*.tmp-*"))
    load.read(out / "ckpt-000011")  # whole: it verifies against its manifest
    finish(out, [*command, "--out-dir", str(out)])
    assert snapshot(out) == expected


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("point", ["directory.written", "directory.moved"])
def test_an_export_stopped_by_a_signal_leaves_the_old_directory_or_the_whole_new_one(reference, tmp_path, point, force):
    command, _ = reference
    run = tmp_path / "run"
    assert main([*command, "--out-dir", str(run), "--max-iters", "5"]) == 0
    clean = tmp_path / "clean"  # the export, made without a stop
    assert main(["export", "--out-dir", str(run), "--hf", str(clean)]) == 0
    target, old = tmp_path / "export", None
    if force:  # the export of another model is there: --force replaces its files
        other = tmp_path / "other"
        assert main([*command, "--out-dir", str(other), "--max-iters", "5", "--seed", "7"]) == 0
        assert main(["export", "--out-dir", str(other), "--hf", str(target)]) == 0
        old = {p.name: p.read_bytes() for p in target.iterdir()}
    process = minigpt("export", "--out-dir", str(run), "--hf", str(target), *(["--force"] if force else []),
                      fault=f"{point}@1:SIGTERM", wait=False)
    assert stopped_line(process, signal.SIGTERM) == "minigpt: interrupted (SIGTERM)"
    assert not list(tmp_path.glob("*.tmp-*"))
    have = {p.name: p.read_bytes() for p in target.iterdir()} if target.exists() else None
    if point == "directory.written":  # stopped before the first file moved: nothing of the new export
        assert have == old
    else:  # stopped after the first file moved: the other moves finish first
        assert have == {p.name: p.read_bytes() for p in clean.iterdir()} != old


@pytest.mark.parametrize("point", ["directory.written", "directory.moved"])
def test_a_tokenizer_training_stopped_by_a_signal_leaves_nothing_or_the_whole_directory(tmp_path, point):
    text = make_text(tmp_path / "text.txt", seed=0)
    out = tmp_path / "tokenizer"
    process = minigpt("tokenizer", "train", "--data", str(text), "--vocab-size", "300", "--out", str(out),
                      fault=f"{point}@1:SIGTERM", wait=False)
    assert stopped_line(process, signal.SIGTERM) == "minigpt: interrupted (SIGTERM)"
    assert not list(tmp_path.glob("*.tmp-*"))
    if point == "directory.written":
        assert not out.exists()
    else:
        assert sorted(p.name for p in out.iterdir()) == ["merges.txt", "tokenizer.json", "tokenizer.tiktoken", "vocab.json"]
        assert load_tokenizer(out).vocab_size == 300
