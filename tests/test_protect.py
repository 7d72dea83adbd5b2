"""Nothing a command does destroys a run. A start removes only what the run directory proves a crash left, finds its
checkpoints again when checkpoints.json is lost, and refuses, naming it, a checkpoint nothing accounts for; no command
writes a run's own files, whatever the flag; every output path is checked (not a run's, writable) before any work,
and an error names the user's path in one line. The rules: minigpt/checkpoint.py, minigpt/outputs.py, docs/runs.md."""

import json
import os
import shutil
import signal
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig, checkpoint, files
from minigpt.cli import main
from minigpt.config import TrainConfig
from minigpt.data.chars import CharTokenizer
from minigpt.optim import AdamW
from helpers import TINY, cli, error_line, make_text, minigpt, read_log, require, without_timing

RUN = [*TINY, "--eval-interval", "5", "--backend", "numpy", "--threads", "1"]


def files_of(directory: Path) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def pointer_of(run: Path) -> dict:
    return json.loads((run / "checkpoints.json").read_text())


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    return make_text(tmp_path_factory.mktemp("text") / "text.txt", seed=0)


@pytest.fixture(scope="module")
def finished(text, tmp_path_factory):
    """A finished run of 20 steps whose best checkpoint (10) is not its latest (20): its learning rate is too high
    for the last evaluations to improve."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--data", str(text), "--out-dir", str(out), "--max-iters", "20", "--learning-rate", "1e-1",
                 *RUN]) == 0
    assert pointer_of(out) == {"latest": "ckpt-000020", "best": "ckpt-000010"}  # (what the tests below rely on)
    return out


@pytest.fixture
def run(finished, tmp_path):
    """A copy of the finished run, for a test to change."""
    shutil.copytree(finished, tmp_path / "run")
    return tmp_path / "run"


# --- a start removes only what a crash provably left -------------------------------------------------------------

def test_a_lost_pointer_is_written_again_by_resume_and_a_fresh_start_removes_nothing(run, finished, text, capsys):
    (run / "checkpoints.json").unlink()
    before = files_of(run)
    code, err = cli(capsys, "train", "--data", str(text), "--out-dir", str(run), "--max-iters", "22", *RUN)
    assert code == 1
    error_line(err, f"{run} holds the checkpoints ckpt-000010 and ckpt-000020 but no checkpoints.json",
               "continue that run with --resume")
    assert files_of(run) == before  # (not a checkpoint, not the log removed)
    code, err = cli(capsys, "sample", "--out-dir", str(run), "--max-new-tokens", "2")  # a reader names them too
    assert code == 1
    error_line(err, f"{run} has no checkpoints.json but holds ckpt-000010, ckpt-000020", "--resume")
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run))
    assert code == 0
    assert (f"{run / 'checkpoints.json'} was missing: written again from the checkpoints in {run}, latest "
            f"ckpt-000020 and best ckpt-000010") in err
    assert files_of(run) == files_of(finished)  # the very pointer the run had written, byte for byte


@pytest.mark.parametrize("which", ["latest", "best"])
def test_a_checkpoint_copied_into_an_empty_directory_is_kept_and_resumes(finished, tmp_path, capsys, which):
    name = pointer_of(finished)[which]
    step = int(name.split("-")[1])
    out = tmp_path / "copy"
    shutil.copytree(finished / name, out / name)
    before = files_of(out)
    code, err = cli(capsys, "train", "--out-dir", str(out), "--max-iters", "30", *RUN)
    assert code == 1
    error_line(err, f"{out} holds the checkpoint {name} but no checkpoints.json", "--resume")
    assert files_of(out) == before
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(out), "--max-iters", str(step + 2))
    assert code == 0 and f"latest {name} and best {name}" in err
    assert pointer_of(out)["latest"] == checkpoint.checkpoint_name(step + 2)
    assert [r["iter"] for r in read_log(out)] == [step + 1, step + 2]
    if which == "latest":  # the same two steps as the original run's, resumed where it is
        original = tmp_path / "original"
        shutil.copytree(finished, original)
        assert main(["train", "--resume", "--out-dir", str(original), "--max-iters", str(step + 2)]) == 0
        latest = checkpoint.checkpoint_name(step + 2)
        weights = [(run / latest / "model.safetensors").read_bytes() for run in (out, original)]
        assert weights[0] == weights[1]


def test_a_checkpoint_the_pointer_does_not_name_is_refused_never_removed(run, capsys):
    # checkpoints.json as a backup of an earlier moment restores it: it names ckpt-000010 alone, so ckpt-000020, a
    # committed checkpoint, is one it does not name; no save in the directory says it was left by a crash
    (run / "checkpoints.json").write_text(json.dumps({"latest": "ckpt-000010", "best": "ckpt-000010"}))
    before = files_of(run)
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "25")
    assert code == 1
    error_line(err, f"{run / 'ckpt-000020'} is a checkpoint that {run / 'checkpoints.json'} does not name",
               "move it out of the run directory")
    assert files_of(run) == before
    assert cli(capsys, "train", "--out-dir", str(run), "--max-iters", "25", *RUN)[0] == 1  # (a fresh start, too)
    assert files_of(run) == before


def test_a_checkpoint_without_a_manifest_never_was_one_and_is_removed_with_a_notice(run, capsys):
    (run / "ckpt-000030").mkdir()  # a checkpoint is renamed into place only once its manifest is written
    (run / "ckpt-000030" / "model.safetensors").write_bytes(b"not from a save")
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "21")
    assert code == 0
    assert f"removing {run / 'ckpt-000030'}, left by a run that stopped before it was committed" in err
    assert not (run / "ckpt-000030").exists()


EVENTS = st.lists(st.one_of(st.sampled_from([1.0, 2.0, 3.0]), st.none()), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=EVENTS)
def test_the_pointer_found_again_is_the_one_the_saves_wrote(tmp_path_factory, events):
    # events: each save's validation loss (ties included), or None for a save a stop makes between evaluations; the
    # checkpoints are written by the protocol's own save, then the pointer is lost and found again from them
    out = tmp_path_factory.mktemp("saves")
    tokenizer = CharTokenizer("ab")
    model = GPT(GPTConfig(vocab_size=2, block_size=4, n_layer=1, n_head=1, n_embd=4), seed=0)
    optimizer, rng = AdamW(model.trainable()), np.random.default_rng(0)
    best_val_loss = None
    with mock.patch("os.fsync"):  # (what reaches the disk when is not what this test is about: the names are)
        for it, val_loss in enumerate(events, start=1):
            is_best = val_loss is not None and (best_val_loss is None or val_loss < best_val_loss)  # (as the loop)
            best_val_loss = val_loss if is_best else best_val_loss
            state = {"iter": it, "best_val_loss": best_val_loss, "optimizer_step": it, "ranks": 1,
                     "sampler_rng": rng.bit_generator.state, "dropout_rng": rng.bit_generator.state, "data": None}
            checkpoint.save(out, it, model, tokenizer, TrainConfig(), optimizer, state, is_best)
    written = pointer_of(out)
    (out / "checkpoints.json").unlink()
    found = checkpoint.survey(out)
    assert found.lost and found.pointer == written and found.removals == []


@pytest.fixture(scope="module")
def first_save(text, tmp_path_factory):
    """A run of 10 steps (checkpoints at 5 and 10), uninterrupted, and its command."""
    command = ["train", "--data", str(text), "--max-iters", "10", *RUN]
    reference = tmp_path_factory.mktemp("first-save") / "reference"
    assert main([*command, "--out-dir", str(reference)]) == 0
    return command, reference


# the first save stopped at each step before its commit: nothing was committed, as the intent proves, so a new
# start (the command run again) removes what it wrote, and ends as the uninterrupted run
@pytest.mark.parametrize("point", ["save.manifest", "save.intent", "save.renamed", "save.pointer"])
def test_a_kill_during_the_first_save_then_the_same_command_equals_the_uninterrupted_run(first_save, tmp_path, point):
    command, reference = first_save
    out = tmp_path / "run"
    killed = minigpt(*command, "--out-dir", str(out), fault=f"{point}@1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "checkpoints.json").exists()
    again = minigpt(*command, "--out-dir", str(out))
    assert again.returncode == 0, again.stderr
    assert without_timing(read_log(out)) == without_timing(read_log(reference))
    assert {k: v for k, v in files_of(out).items() if k != "log.jsonl"} == {
        k: v for k, v in files_of(reference).items() if k != "log.jsonl"}


# --- no command writes a run's own files -------------------------------------------------------------------------

def writers(run: Path, text: Path, records: Path, target: Path) -> dict:
    """Every command that writes, asked to write `target`: flag -> the command."""
    return {
        "--json": ["eval", "--out-dir", str(run), "--data", str(records), "--json", str(target)],
        "--html": ["inspect", "--out-dir", str(run), "--html", str(target)],
        "--output": ["plot", str(run), "--output", str(target)],
        "--out": ["tokenizer", "train", "--data", str(text), "--vocab-size", "260", "--out", str(target), "--force"],
        "--hf": ["export", "--out-dir", str(run), "--hf", str(target), "--force"],
        "--peft": ["export", "--out-dir", str(run), "--peft", str(target), "--force"],
        "--llmc": ["export", "--out-dir", str(run), "--llmc", str(target), "--force"],
        "--gguf": ["export", "--out-dir", str(run), "--gguf", str(target), "--force"],
        "--out-dir": ["train", "--data", str(text), "--out-dir", str(target), "--max-iters", "2", *RUN],
    }


FLAGS = ["--json", "--html", "--output", "--out", "--hf", "--peft", "--llmc", "--gguf", "--out-dir"]
RUN_FILES = ["checkpoints.json", "log.jsonl", "saving.json", "ckpt-000020", "ckpt-000020/tokenizer.json",
             "ckpt-000010/sub/x", "ckpt-000099", "ckpt-000099/x", "x.tmp-7"]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("records") / "choices.jsonl"
    path.write_text('{"prompt": "the ", "choices": ["king", "queen"], "answer": 0}\n')
    return path


@pytest.mark.parametrize("name", RUN_FILES)
@pytest.mark.parametrize("flag", FLAGS)
def test_no_command_writes_a_run_s_own_files_whatever_the_flag(finished, text, records, capsys, flag, name):
    require("plotly", extra="inspect") if flag == "--html" else None
    require("matplotlib", extra="plot") if flag == "--output" else None
    before = files_of(finished)
    code, err = cli(capsys, *writers(finished, text, records, finished / name)[flag])
    assert code == 1
    error_line(err, f"{flag} {finished / name} is inside the run directory {finished}")
    assert files_of(finished) == before


def test_a_run_s_own_directory_takes_the_outputs_that_are_not_its_files(run, capsys):
    require("matplotlib", extra="plot")
    assert main(["plot", str(run)]) == 0  # (the default: RUN/loss.png)
    assert main(["plot", str(run), "--output", str(run / "curves.svg")]) == 0
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in (run / "curves.svg").read_bytes()


NAMES = st.sampled_from(["checkpoints.json", "log.jsonl", "saving.json", "ckpt-000010", "ckpt-000020", "ckpt-000099",
                         "x.tmp-3", "notes", "sub", ".."])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(NAMES, min_size=1, max_size=4))
def test_any_path_into_a_run_s_files_is_refused_and_any_other_is_not(finished, parts):
    # what the path leads to, worked out here from the directory's listing: a run's file is its pointer, the intent,
    # the log, a checkpoint's name, a temporary, or anything under one of those; the run directory itself
    from minigpt import outputs

    path = finished.joinpath(*parts)
    where = Path(os.path.normpath(path))
    inside = where.is_relative_to(finished) and where != finished
    first = where.relative_to(finished).parts[0] if inside else None
    owned = where == finished or (inside and (first in ("checkpoints.json", "log.jsonl", "saving.json")
                                              or first.startswith("ckpt-") or ".tmp-" in first))
    try:
        outputs.check(path, "--out", outputs.DIRECTORY, force=True)
        refused = None
    except (ValueError, OSError) as e:
        refused = str(e)
    if owned:
        assert refused is not None and "is inside the run directory" in refused, (where, refused)
    else:
        assert refused is None or "is inside" not in refused, (where, refused)


# --- output paths: checked first, one line naming the user's path ------------------------------------------------

BAD = ("a file on the way", "unwritable", "missing directory")


def bad_paths(tmp_path: Path) -> dict:
    """Paths no command can write: BAD's."""
    (tmp_path / "a-file").write_text("mine")
    return {"a file on the way": tmp_path / "a-file" / "out" / "x.json",
            "unwritable": Path("/proc") / "minigpt-x.json",  # (no new file there, even for root)
            "missing directory": tmp_path / "nowhere" / "x.json"}


FILE_FLAGS = ("--json", "--html", "--output", "--llmc", "--gguf")  # the others write a directory, made with its parents


@pytest.mark.parametrize("flag,bad", [(flag, bad) for flag in FLAGS for bad in BAD
                                      if flag in FILE_FLAGS or bad != "missing directory"])
def test_an_output_path_that_cannot_be_written_is_one_line_naming_it(finished, text, records, tmp_path, capsys, flag,
                                                                     bad):
    require("plotly", extra="inspect") if flag == "--html" else None
    require("matplotlib", extra="plot") if flag == "--output" else None
    path = bad_paths(tmp_path)[bad]
    if flag == "--output":
        path = path.with_suffix(".png")
    code, err = cli(capsys, *writers(finished, text, records, path)[flag])
    assert code == 1
    line = error_line(err, f"{flag} {path}")
    assert "[Errno" not in line and ".tmp-" not in line
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("write", ["file", "directory"])
def test_a_failed_write_names_the_user_s_path_never_its_temporary(tmp_path, write):
    target = Path("/proc") / "minigpt-out"
    with pytest.raises(OSError) as e:
        if write == "file":
            with files.atomic_write(target) as f:
                f.write("x")
        else:
            with files.directory_write(target) as tmp:
                (tmp / "x").write_text("x")
    assert str(e.value).startswith(f"cannot write {target}: ") and ".tmp-" not in str(e.value)
    assert "[Errno" not in str(e.value)


def test_eval_checks_its_json_path_before_it_scores(tmp_path, records, capsys):
    # the model directory does not exist either: the --json error comes first, before anything is read
    code, err = cli(capsys, "eval", "--out-dir", str(tmp_path / "no-model"), "--data", str(records), "--json",
                    str(tmp_path / "nowhere" / "scores.json"))
    assert code == 1
    error_line(err, f"--json {tmp_path / 'nowhere' / 'scores.json'}: its directory")


def test_eval_prints_its_scores_before_writing_them(finished, records, tmp_path, capsys, monkeypatch):
    from minigpt.commands import eval as eval_command

    scores_dir = tmp_path / "scores"
    scores_dir.mkdir()
    score = eval_command.score

    def score_then_lose_the_directory(*args, **kwargs):  # the directory goes while the scores are computed
        result = score(*args, **kwargs)
        shutil.rmtree(scores_dir)
        return result

    monkeypatch.setattr(eval_command, "score", score_then_lose_the_directory)
    code = main(["eval", "--out-dir", str(finished), "--data", str(records), "--json", str(scores_dir / "s.json")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "records" in out and "accuracy" in out  # the scores, on the screen all the same
    line = error_line(err, f"cannot write {scores_dir / 's.json'}")
    assert ".tmp-" not in line


def test_tokenizer_train_never_writes_into_a_directory_that_is_not_empty_unless_forced(text, tmp_path, capsys):
    out = tmp_path / "tok"
    out.mkdir()
    (out / "tokenizer.json").write_text("mine")
    command = ["tokenizer", "train", "--data", str(text), "--vocab-size", "260", "--out", str(out)]
    code, err = cli(capsys, *command)
    assert code == 1
    error_line(err, f"--out {out} is not empty; choose a new directory, or give --force")
    assert [p.name for p in out.iterdir()] == ["tokenizer.json"] and (out / "tokenizer.json").read_text() == "mine"
    assert cli(capsys, *command, "--force")[0] == 0
    assert json.loads((out / "tokenizer.json").read_text())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(capsys, *command[:-1], str(empty))[0] == 0 and (empty / "tokenizer.json").is_file()


# --- a failed start leaves nothing; records named as text; the text a resumed run needs ---------------------------

@pytest.mark.parametrize("failure", ["a validation split too short", "diverged before its first log line"])
def test_a_start_that_fails_leaves_no_directory_and_no_log(text, tmp_path, capsys, failure):
    short = tmp_path / "short.txt"
    short.write_text("the king and the queen of the night\n" * 3)
    command = {"a validation split too short": ["--data", str(short)],
               "diverged before its first log line": ["--data", str(text), "--learning-rate", "1e38",
                                                      "--log-interval", "100"]}[failure]
    out = tmp_path / "run"
    command = ["train", *command, "--out-dir", str(out), "--max-iters", "5", *RUN, "--warmup-iters", "0"]
    code, err = cli(capsys, *command)
    assert code == 1
    error_line(err, *(["the run diverged at iter"] if failure.startswith("diverged") else []))
    assert not out.exists()
    out.mkdir()  # one that was there before is left as it was: empty
    assert cli(capsys, *command)[0] == 1
    assert list(out.iterdir()) == []


RECORDS = {"instruction": {"prompt": "ab", "completion": "cd"},
           "chat": {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
           "classification": {"text": "to be", "label": "HAMLET"}}


@pytest.mark.parametrize("name", ["records.json", "records.txt", "records"])
@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_records_in_a_file_not_named_jsonl_are_refused_naming_it(tmp_path, capsys, kind, name):
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(RECORDS[kind]) for _ in range(200)) + "\n")
    out = tmp_path / "run"
    code, err = cli(capsys, "train", "--data", str(path), "--out-dir", str(out), "--max-iters", "2", *RUN)
    assert code == 1
    error_line(err, f"data file {path} holds JSONL records (line 1 is a {kind} record)", "rename it records.jsonl")
    assert not out.exists()


def test_a_text_whose_first_line_is_json_but_no_record_trains_as_text(text, tmp_path, capsys):
    path = tmp_path / "config-like.txt"
    path.write_text('{"setting": 1}\n' + text.read_text())
    out = tmp_path / "run"
    assert cli(capsys, "train", "--data", str(path), "--out-dir", str(out), "--max-iters", "2", *RUN)[0] == 0


def test_resume_names_the_text_it_needs_and_finds_it_where_it_was(run, text, tmp_path, capsys):
    state = json.loads((run / "ckpt-000020" / "state.json").read_text())["data"]
    moved = tmp_path / "moved.txt"
    shutil.move(text, moved)
    try:
        code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "22")
    finally:
        shutil.move(moved, text)
    assert code == 1
    error_line(err, f"was trained on {text} ({state['size']:,} bytes, SHA-256 {state['sha256']}), which is not there "
                    f"now: give that text with --data PATH")
    assert cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "22")[0] == 0


def test_a_run_on_the_default_text_keeps_its_path_to_resume_without_the_environment(text, tmp_path, capsys,
                                                                                      monkeypatch):
    monkeypatch.setenv("MINIGPT_DATA", str(text))
    out = tmp_path / "run"
    assert cli(capsys, "train", "--out-dir", str(out), "--max-iters", "5", *RUN)[0] == 0
    monkeypatch.delenv("MINIGPT_DATA")
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path / "empty-cache"))  # (nothing to find there, nothing downloaded)
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(out), "--max-iters", "7")
    assert code == 0, err
    assert [r["iter"] for r in read_log(out)] == list(range(1, 8))


def test_a_reader_that_finds_a_checkpoint_before_its_pointer_reads_the_committed_one(run, monkeypatch):
    # a reader beside a run's first save: it reads no checkpoints.json, then the save commits its pointer and removes
    # its intent, then the reader finds ckpt-N; a save removes its intent only after its commit, so the pointer is
    # there to read again, and the reader reads it rather than call the run's pointer lost
    from minigpt import load

    real = load.read_pointer
    calls = []

    def before_the_commit_once(path):
        calls.append(path)
        return None if len(calls) == 1 else real(path)

    monkeypatch.setattr(load, "read_pointer", before_the_commit_once)
    assert not (run / checkpoint.INTENT).exists()
    assert load.locate(run, "latest") == run / "ckpt-000020"
    assert len(calls) == 2
    monkeypatch.setattr(load, "read_pointer", lambda path: None)  # (and a pointer really lost is still said so)
    with pytest.raises(FileNotFoundError, match="has no checkpoints.json but holds ckpt-000010, ckpt-000020"):
        load.locate(run, "latest")
