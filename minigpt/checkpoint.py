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
to the checkpoint's step (minigpt/runlog.py). `RunDirectory` is all of this for a run that trains: the lock, the log,
the checkpoints. Reading a checkpoint's file (`verified`) checks it against the manifest first; a model from any
directory, a checkpoint's or Hugging Face's: minigpt/load.py.
"""

import errno
import fcntl
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from minigpt import hf
from minigpt import weights as safetensors
from minigpt.config import TrainConfig
from minigpt.files import atomic_write, fault, fsync_dir, sha256_of, temporary
from minigpt.runlog import LOG, Log, resume_log
from minigpt.validate import check_object, read_json

POINTER = "checkpoints.json"
MANIFEST = "manifest.json"
FILES = ("model.safetensors", "optimizer.safetensors", "config.json", "tokenizer.json", "train_config.json", "state.json")
NAME = re.compile(r"ckpt-\d{6,}")  # ckpt-<step>, at least six digits
UNSAVED = ("out_dir", "resume")  # where the run is and how it was started: not settings of the run itself
STATE_FIELDS = {"iter": int, "best_val_loss": (float, None), "optimizer_step": int, "ranks": int,
                "sampler_rng": dict, "dropout_rng": dict, "data": (dict, None)}


def checkpoint_name(it: int) -> str:
    return f"ckpt-{it:06d}"


# --- the directory: lock, leftovers, pointer ------------------------------------------------------------------

def to_json(obj) -> str:
    """Strict JSON: a NaN is an error, never written."""
    return json.dumps(obj, indent=1, ensure_ascii=False, allow_nan=False)


def write_text(path: Path, text: str) -> None:
    """Write and fsync a text file (inside a checkpoint's temporary directory, which is renamed whole)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


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
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; a run directory's pointer is its own file, never read through "
                         f"a link out of it: replace the link by the file")
    if not path.exists():
        return None
    pointer = check_object(read_json(path), path, {"latest": str, "best": str})
    for which in ("latest", "best"):
        name = pointer[which]
        if not NAME.fullmatch(name):
            raise ValueError(f"{path}: {which!r} must name a checkpoint directory (ckpt-NNNNNN), got {name!r:.60}; "
                             f"the file is damaged")
        if (path.parent / name).is_symlink():
            raise ValueError(f"{path.parent / name} is a symbolic link; a run directory's checkpoints are its own "
                             f"directories: replace the link by the checkpoint")
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

def save(run_dir: Path, it: int, model, tokenizer, train_config: TrainConfig, optimizer, state: dict, best: bool) -> str:
    """Write checkpoint ckpt-<it> by the protocol above and point `latest` (and `best`, if best) at it; return its
    name. A failure (a full disk) removes what it wrote and leaves the previous checkpoint as it was."""
    name = checkpoint_name(it)
    final = run_dir / name
    tmp = temporary(final)
    pointer = read_pointer(run_dir) or {}
    try:
        fault("save.begin")
        tmp.mkdir()
        safetensors.write(tmp / "model.safetensors", model.params, metadata={"format": "pt"}, fsync=True)
        safetensors.write(tmp / "optimizer.safetensors", optimizer.state_dict(), fsync=True)
        write_text(tmp / "config.json", to_json(hf.hf_config(model.config, getattr(tokenizer, "eot_token", None))))
        write_text(tmp / "tokenizer.json", tokenizer.to_json())
        write_text(tmp / "train_config.json", to_json({k: v for k, v in train_config.to_dict().items() if k not in UNSAVED}))
        write_text(tmp / "state.json", to_json(state))
        fault("save.files")
        write_text(tmp / MANIFEST, to_json({"files": {f: {"size": (tmp / f).stat().st_size, "sha256": sha256_of(tmp / f)}
                                                       for f in FILES}}))
        fsync_dir(tmp)
        fault("save.manifest")
        if final.exists():  # never named by checkpoints.json (clean removed those at the start): not ours to keep
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_dir(run_dir)
        fault("save.renamed")
        new_pointer = {"latest": name, "best": name if best or "best" not in pointer else pointer["best"]}
        with atomic_write(run_dir / POINTER, point="save.pointer") as f:  # the commit is its rename
            f.write(to_json(new_pointer))
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = f"the last checkpoint, {run_dir / pointer['latest']}, is intact" if pointer else "no checkpoint was saved"
        fix = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that"
        raise OSError(f"could not write checkpoint {name} in {run_dir} ({e.strerror or e}); {previous}: "
                      f"{fix} and continue with --resume") from None
    fault("save.committed")
    for old in run_dir.glob("ckpt-*"):  # only the checkpoints named in the pointer are kept
        if NAME.fullmatch(old.name) and old.name not in new_pointer.values():
            shutil.rmtree(old, ignore_errors=True)
    return name


# --- reading --------------------------------------------------------------------------------------------------

def is_checkpoint(path: Path) -> bool:
    """A minigpt checkpoint directory (as opposed to a Hugging Face directory, which has no state.json)."""
    return (path / MANIFEST).is_file() or (path / "state.json").is_file()


def verified(ckpt: Path, f: str) -> Path:
    """The path of file f of a checkpoint, after checking it has the size and SHA-256 that manifest.json recorded:
    a flipped byte, a truncated or a missing file is caught here, before anything is parsed."""
    for link in (ckpt, ckpt / MANIFEST, ckpt / f):
        if link.is_symlink():
            raise ValueError(f"{link} is a symbolic link; a checkpoint is read from its own files only, never "
                             f"through a link out of it: replace the link by the file")
    if not (ckpt / MANIFEST).is_file():
        raise ValueError(f"{ckpt} has no {MANIFEST}: the checkpoint is incomplete, or was written by an older minigpt")
    manifest = check_object(read_json(ckpt / MANIFEST), ckpt / MANIFEST, {"files": dict})["files"]
    strange = [name for name in manifest if name not in FILES]
    if strange:
        raise ValueError(f"{ckpt / MANIFEST} lists {strange[0]!r:.80}, which is not a file of a checkpoint "
                         f"({', '.join(FILES)}); the manifest is damaged")
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


# --- a run directory, open for a run that trains ----------------------------------------------------------------

class RunDirectory:
    """What rank 0 of a training run holds of its directory: the lock (taken at once if the directory exists, or by
    `create` when a new run makes it), the log, and the name of the latest checkpoint. The loop sees `write` (a log
    record), `save` (a checkpoint, by the protocol above) and `close`."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = lock(path) if path.is_dir() else None
        self.log = None
        self.latest = None  # the newest checkpoint: the one resumed from, then each one saved

    def pointer(self) -> dict | None:
        return read_pointer(self.path) if self.path.is_dir() else None

    def open(self, resume_at: int | None, say) -> None:
        """Make the directory ready to train in, once every setting, file and the data have been checked (so that bad
        input leaves nothing behind): created and locked if new (and refused if another run committed a checkpoint
        there meanwhile), cleaned of what a crash left, its log cut back to the step resumed from (resume_at), or
        removed if a run that saved no checkpoint left it, and opened for appending."""
        if self.lock is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self.lock = lock(self.path)
            if read_pointer(self.path) is not None:
                raise ValueError(f"{self.path} already holds a run; continue it with --resume, or choose another --out-dir")
        if (self.path / LOG).is_symlink():  # appended to, in place: never through a link out of the run directory
            raise ValueError(f"{self.path / LOG} is a symbolic link; a run writes its own files only, never through "
                             f"a link: replace the link by the file")
        clean(self.path, say)
        if resume_at is not None:
            resume_log(self.path, resume_at, say)
        elif (self.path / LOG).exists():
            say(f"removing {self.path / LOG}, left by a run that stopped before its first checkpoint")
            (self.path / LOG).unlink()
        self.log = Log(self.path)

    def write(self, record: dict) -> None:
        self.log.write(record)

    def save(self, it: int, model, tokenizer, train_config: TrainConfig, optimizer, state: dict, best: bool) -> None:
        """Checkpoint step `it`: the log's lines up to it onto the disk first, then the checkpoint (save above)."""
        self.log.sync()
        self.latest = save(self.path, it, model, tokenizer, train_config, optimizer, state, best)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        if self.lock is not None:
            unlock(self.lock)
            self.lock = None
