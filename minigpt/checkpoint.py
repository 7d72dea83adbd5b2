"""A run directory and the protocol that keeps it whole through any crash: safetensors for arrays, JSON for the rest,
nothing ever unpickled. Docs: docs/runs.md. Tests: tests/test_checkpoint.py, tests/test_faults.py.

A run directory (--out-dir) holds

    log.jsonl                one JSON object per logged step
    checkpoints.json         the pointer: {"latest": "ckpt-002000", "best": "ckpt-001750"}
    ckpt-001750/             the checkpoint with the best validation loss
    ckpt-002000/             the latest checkpoint:
        model.safetensors        the weights, named as in Hugging Face's GPT-2 (float32 or float64)
        config.json              the model's shape, as a Hugging Face GPT2Config (model_type "gpt2")
        tokenizer.json           the vocabulary
        train_config.json        the TrainConfig of the run
        optimizer.safetensors    AdamW's moments
        state.json               the step, the best validation loss, the random generators, the data's identity
        manifest.json            the size and SHA-256 of each file above

Saving checkpoint N (`save`), after log.jsonl's lines up to step N are on disk (fsync):
    1. write the files into ckpt-N.tmp-PID/, then manifest.json; fsync each file and the directory;
    2. rename ckpt-N.tmp-PID/ to ckpt-N/; fsync the run directory;
    3. write checkpoints.json.tmp-PID naming ckpt-N, fsync it, rename it over checkpoints.json; fsync the run directory;
    4. remove the checkpoint directories that checkpoints.json no longer names.
The rename of step 3 is the commit: a run killed before it is at its previous checkpoint, after it at ckpt-N.
Starting (`lock`, `clean`): lock the directory (flock; the lock dies with the process), then remove what a crash
left: every *.tmp-* and every ckpt-* that checkpoints.json does not name (never reused). Resuming cuts log.jsonl back
to the checkpoint's step (`resume_log`). Reading (`read`) checks every file against the manifest first.
"""

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minigpt import hf
from minigpt import weights as safetensors
from minigpt.config import GPTConfig, TrainConfig
from minigpt.data import tokenizer_from_dict
from minigpt.validate import check_object, read_json

POINTER = "checkpoints.json"
LOG = "log.jsonl"
MANIFEST = "manifest.json"
FILES = ("model.safetensors", "optimizer.safetensors", "config.json", "tokenizer.json", "train_config.json", "state.json")
NAME = re.compile(r"ckpt-\d{6,}")  # ckpt-<step>, at least six digits
UNSAVED = ("out_dir", "resume")  # where the run is and how it was started: not settings of the run itself
STATE_FIELDS = {"iter": int, "best_val_loss": (float, None), "optimizer_step": int, "ranks": int,
                "sampler_rng": dict, "dropout_rng": dict, "data": (dict, None)}


def checkpoint_name(it: int) -> str:
    return f"ckpt-{it:06d}"


# --- testing hook ---------------------------------------------------------------------------------------------

_passes = {}


def fault(point: str) -> None:
    """A named step of the protocol. Tests set MINIGPT_FAULT=POINT (or POINT@N, its N-th pass) to have the process
    killed right here with SIGKILL, as kill -9 or a power cut would end it: no cleanup, no buffer flushed.
    Points: save.begin, save.files, save.manifest, save.renamed, save.pointer, save.committed, log.written."""
    target = os.environ.get("MINIGPT_FAULT")
    if not target or target.split("@")[0] != point:
        return
    _passes[point] = _passes.get(point, 0) + 1
    if _passes[point] == int(target.partition("@")[2] or 1):
        os.kill(os.getpid(), signal.SIGKILL)


# --- the directory: lock, leftovers, pointer ------------------------------------------------------------------

def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    """Write and fsync a text file."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_json(path: Path, obj) -> None:
    """Strict JSON (a NaN is an error, never written), fsynced."""
    write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, allow_nan=False))


def lock(run_dir: Path) -> int:
    """Take the run directory's exclusive lock for the life of this process (flock on the directory itself, so no
    file is added and a killed process never leaves a stale lock); return the descriptor that holds it."""
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(f"another minigpt train is running in {run_dir}; wait for it to finish, "
                           f"or give this run another --out-dir") from None
    return fd


def unlock(fd: int) -> None:
    os.close(fd)  # closing the descriptor releases the lock


def read_pointer(run_dir: Path) -> dict | None:
    """checkpoints.json, checked: {"latest": name, "best": name} naming checkpoint directories that exist; None
    when there is no checkpoints.json."""
    path = Path(run_dir) / POINTER
    if not path.exists():
        return None
    pointer = check_object(read_json(path), path, {"latest": str, "best": str})
    for which in ("latest", "best"):
        name = pointer[which]
        if not NAME.fullmatch(name):
            raise ValueError(f"{path}: {which!r} must name a checkpoint directory (ckpt-NNNNNN), got {name!r:.60}; "
                             f"the file is damaged")
        if not (path.parent / name).is_dir():
            raise ValueError(f"{path} names {name} as {which}, which does not exist; the run directory is damaged")
    return pointer


def clean(run_dir: Path, say) -> None:
    """Remove what a crashed run left behind: temporaries (*.tmp-*) and checkpoint directories that
    checkpoints.json does not name, which are incomplete or were never committed. Call it holding the lock."""
    pointer = read_pointer(run_dir) or {}
    for path in sorted(run_dir.iterdir()):
        unnamed = NAME.fullmatch(path.name) and path.is_dir() and path.name not in pointer.values()
        if ".tmp-" in path.name or unnamed:
            say(f"removing {path}, left by a run that stopped {'while writing it' if '.tmp-' in path.name else 'before it was committed'}")
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


# --- saving ---------------------------------------------------------------------------------------------------

def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def save(run_dir: Path, it: int, model, tokenizer, train_config: TrainConfig, optimizer, state: dict, best: bool) -> str:
    """Write checkpoint ckpt-<it> by the protocol above and point `latest` (and `best`, if best) at it; return its
    name. A failure (a full disk) removes what it wrote and leaves the previous checkpoint as it was."""
    name = checkpoint_name(it)
    final, tmp = run_dir / name, run_dir / f"{name}.tmp-{os.getpid()}"
    pointer = read_pointer(run_dir) or {}
    try:
        fault("save.begin")
        tmp.mkdir()
        safetensors.write(tmp / "model.safetensors", model.params, metadata={"format": "pt"}, fsync=True)
        safetensors.write(tmp / "optimizer.safetensors", optimizer.state_dict(), fsync=True)
        write_json(tmp / "config.json", hf.hf_config(model.config, getattr(tokenizer, "eot_token", None)))
        write_text(tmp / "tokenizer.json", tokenizer.to_json())
        write_json(tmp / "train_config.json", {k: v for k, v in train_config.to_dict().items() if k not in UNSAVED})
        write_json(tmp / "state.json", state)
        fault("save.files")
        write_json(tmp / MANIFEST, {"files": {f: {"size": (tmp / f).stat().st_size, "sha256": sha256_of(tmp / f)}
                                              for f in FILES}})
        fsync_dir(tmp)
        fault("save.manifest")
        if final.exists():  # never named by checkpoints.json (clean removed those at the start): not ours to keep
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_dir(run_dir)
        fault("save.renamed")
        pointer = {"latest": name, "best": name if best or "best" not in pointer else pointer["best"]}
        write_json(run_dir / f"{POINTER}.tmp-{os.getpid()}", pointer)
        fault("save.pointer")
        os.replace(run_dir / f"{POINTER}.tmp-{os.getpid()}", run_dir / POINTER)
        fsync_dir(run_dir)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        (run_dir / f"{POINTER}.tmp-{os.getpid()}").unlink(missing_ok=True)
        previous = f"the last checkpoint, {run_dir / pointer['latest']}, is intact" if pointer else "no checkpoint was saved"
        fix = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that"
        raise OSError(f"could not write checkpoint {name} in {run_dir} ({e.strerror or e}); {previous}: "
                      f"{fix} and continue with --resume") from None
    fault("save.committed")
    for old in run_dir.glob("ckpt-*"):  # only the checkpoints named in the pointer are kept
        if NAME.fullmatch(old.name) and old.name not in pointer.values():
            shutil.rmtree(old, ignore_errors=True)
    return name


# --- reading --------------------------------------------------------------------------------------------------

def is_checkpoint(path: Path) -> bool:
    """A minigpt checkpoint directory (as opposed to a Hugging Face directory, which has no state.json)."""
    return (path / MANIFEST).is_file() or (path / "state.json").is_file()


def resolve(path, which: str = "best") -> Path:
    """The model directory `path` names: a run directory (then its `which` checkpoint, "best" or "latest"), a
    checkpoint directory, or a Hugging Face GPT-2 directory."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist; give a run directory, a checkpoint or a Hugging Face directory")
    pointer = read_pointer(path)
    if pointer is not None:
        return path / pointer[which]
    if is_checkpoint(path) or (path / "config.json").is_file():
        return path
    raise FileNotFoundError(f"no minigpt checkpoint in {path} (no {POINTER}, and no config.json with weights)")


def verified(ckpt: Path, f: str) -> Path:
    """The path of file f of a checkpoint, after checking it has the size and SHA-256 that manifest.json recorded:
    a flipped byte, a truncated or a missing file is caught here, before anything is parsed."""
    if not (ckpt / MANIFEST).is_file():
        raise ValueError(f"{ckpt} has no {MANIFEST}: the checkpoint is incomplete, or was written by an older minigpt")
    manifest = check_object(read_json(ckpt / MANIFEST), ckpt / MANIFEST, {"files": dict})["files"]
    entry = manifest.get(f)
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("size"), int):
        raise ValueError(f"{ckpt / MANIFEST} has no size and SHA-256 for {f}; the checkpoint is damaged")
    path = ckpt / f
    if not path.is_file():
        raise ValueError(f"{path} is missing; the checkpoint is incomplete")
    if path.stat().st_size != entry["size"] or sha256_of(path) != entry["sha256"]:
        raise ValueError(f"{path} does not match the SHA-256 in its {MANIFEST}: the file was changed or damaged after "
                         f"it was saved")
    return path


class Checkpoint(NamedTuple):
    config: GPTConfig
    weights: dict  # name -> array, minigpt's (Hugging Face's) names
    tokenizer: object  # CharTokenizer or BPETokenizer; None for a Hugging Face directory without one


def read(ckpt) -> Checkpoint:
    """The model of a checkpoint directory (verified against its manifest) or of a Hugging Face directory."""
    ckpt = Path(ckpt)
    if not is_checkpoint(ckpt):
        return Checkpoint(*hf.read(ckpt))
    config = hf.read_config(verified(ckpt, "config.json"))
    arrays = safetensors.read(verified(ckpt, "model.safetensors"))
    hf.check_matches(config, arrays, ckpt)
    tokenizer = tokenizer_from_dict(read_json(verified(ckpt, "tokenizer.json")), ckpt / "tokenizer.json")
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"{ckpt}: the tokenizer has {tokenizer.vocab_size} tokens but the model only {config.vocab_size}")
    return Checkpoint(config, arrays, tokenizer)


def load_model(ckpt, backend: str = "numpy"):
    """(model, tokenizer) of a checkpoint or Hugging Face directory, ready to sample from."""
    from minigpt.model import GPT

    config, arrays, tokenizer = read(ckpt)
    if tokenizer is None:
        raise FileNotFoundError(f"{ckpt} has no tokenizer (tokenizer.json, or vocab.json and merges.txt); "
                                f"minigpt needs one to read and write text")
    model = GPT(config, dtype=arrays["transformer.wte.weight"].dtype, backend=backend)
    try:
        model.load_state_dict(arrays)
    except ValueError as e:
        raise ValueError(f"{ckpt}: {e}") from None
    return model.eval(), tokenizer


def read_train_config(ckpt: Path) -> TrainConfig:
    """The TrainConfig saved in a checkpoint, checked."""
    path = verified(ckpt, "train_config.json")
    d = check_object(read_json(path), path, {})
    try:
        return TrainConfig.from_dict(d, source=str(path))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def read_state(ckpt: Path) -> dict:
    """state.json, checked: the step and the generators' states a resumed run continues from."""
    path = verified(ckpt, "state.json")
    state = check_object(read_json(path), path, STATE_FIELDS)
    missing = [key for key in STATE_FIELDS if key not in state]  # (null is allowed for some, missing for none)
    if missing:
        raise ValueError(f"{path} has no {missing[0]!r}; the file is damaged or not minigpt's")
    for key in ("iter", "optimizer_step", "ranks"):
        if state[key] < 0:
            raise ValueError(f"{path}: {key!r} must be zero or positive, got {state[key]}; the file is damaged")
    for key in ("sampler_rng", "dropout_rng"):
        try:
            np.random.default_rng().bit_generator.state = state[key]
        except (ValueError, TypeError, KeyError):
            raise ValueError(f"{path}: {key!r} is not a random generator's state; the file is damaged") from None
    if state["data"] is not None:
        check_object(state["data"], f"{path}: 'data'", {"size": int, "sha256": str})
    return state


def read_optimizer(ckpt: Path) -> dict:
    return safetensors.read(verified(ckpt, "optimizer.safetensors"))


# --- the log --------------------------------------------------------------------------------------------------

class Log:
    """log.jsonl, appended a line per logged step: strict JSON, flushed at once (a killed process loses no line),
    fsynced before each checkpoint (so that a power cut loses none that a checkpoint covers)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOG
        self.file = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        try:
            self.file.write(json.dumps(record, allow_nan=False) + "\n")
            self.file.flush()
        except OSError as e:
            raise OSError(f"could not write {self.path} ({e.strerror or e}); the run's last checkpoint is intact: "
                          f"free some space and continue with --resume") from None
        fault("log.written")

    def sync(self) -> None:
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def parse_log(path: Path) -> tuple[list, bool]:
    """The lines of a log.jsonl as (bytes, record) pairs, and whether its last line was torn by a crash while it
    was being written (then left out). Any other line that is not a record with an integer 'iter' is an error."""
    lines = path.read_bytes().split(b"\n")
    parsed, torn = [], False
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or isinstance(record.get("iter"), bool) or not isinstance(record.get("iter"), int):
                raise ValueError
        except ValueError:  # (json.JSONDecodeError and UnicodeDecodeError are ValueErrors)
            if n >= len(lines) - 1:  # the last line
                torn = True
                continue
            raise ValueError(f"{path} line {n} is not a JSON record with an 'iter'; the log is damaged: move it "
                             f"away to resume without it") from None
        parsed.append((line, record))
    return parsed, torn


def resume_log(run_dir: Path, last_iter: int, say) -> None:
    """Cut log.jsonl back to the lines of steps up to last_iter, the checkpoint a run resumes from: the steps after
    it run again. A last line torn by a crash is dropped with a notice."""
    path = run_dir / LOG
    if not path.is_file():
        return
    parsed, torn = parse_log(path)
    if torn:
        say(f"{path}: dropping its last line, torn by a crash while it was written")
    tmp = path.with_name(f"{LOG}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(b"".join(line + b"\n" for line, record in parsed if record["iter"] <= last_iter))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
