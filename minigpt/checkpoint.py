"""A run directory and the protocol that keeps it whole through any crash: safetensors for arrays, JSON for the rest,
nothing ever unpickled. Docs: docs/runs.md. Tests: tests/test_checkpoint.py, tests/test_faults.py,
tests/test_protect.py.

A run directory (--out-dir) holds

    log.jsonl                one JSON object per logged step
    checkpoints.json         the pointer: {"latest": "ckpt-002000", "best": "ckpt-001750"}
    saving.json              while a checkpoint is saved (or after a crash in a save): the intent, below
    ckpt-001750/             the checkpoint with the best validation loss
    ckpt-002000/             the latest checkpoint:
        model.safetensors        the weights, named as in Hugging Face's GPT-2 (float32 or float64)
        config.json              the model's shape, as a Hugging Face GPT2Config (model_type "gpt2")
        tokenizer.json           the vocabulary
        train_config.json        the TrainConfig of the run
        optimizer.safetensors    AdamW's moments
        state.json               the step, the best validation loss, the random generators, the data's identity
                                 (and a --method dpo run's reference log-probabilities, minigpt/objectives.py)
        manifest.json            the size and SHA-256 of each file above

Saving checkpoint N (`save`), after log.jsonl's lines up to step N are on disk (fsync):
    1. write the files into ckpt-N.tmp-PID/, then manifest.json; fsync each file and the directory;
    2. write saving.json, the intent: the pointer before this save and the one it commits (atomically, fsynced);
    3. rename ckpt-N.tmp-PID/ to ckpt-N/; fsync the run directory;
    4. write checkpoints.json.tmp-PID naming ckpt-N, fsync it, rename it over checkpoints.json; fsync the run directory;
    5. remove the checkpoints the previous pointer named and this one does not (each renamed to a *.tmp-* first);
    6. remove saving.json.
The rename of step 4 is the commit: a run killed before it is at its previous checkpoint, after it at ckpt-N.
Starting (`lock`, `survey`, `settle`): lock the directory (flock; the lock dies with the process), then put right what
a crash left, and only what the directory proves a crash left: every *.tmp-* (never a checkpoint: a checkpoint gets
its name only when whole); a ckpt-* without a manifest (for the same reason); the checkpoint an intent names but the
pointer does not (never committed), or the checkpoints the intent's commit replaced (committed, then replaced). A
whole checkpoint that nothing accounts for is never removed: with checkpoints.json missing, a resumed run writes it
again from the checkpoints (the newest is the latest), and a fresh run refuses; beside a pointer that does not name
it, the start refuses, naming it. Resuming cuts log.jsonl back to the checkpoint's step (minigpt/runlog.py).
`RunDirectory` is all of this for a run that trains: the lock, the log, the checkpoints. Reading a checkpoint's file
(`verified`) checks it against the manifest first; a model from any directory, a checkpoint's or Hugging Face's:
minigpt/load.py.
"""

import errno
import fcntl
import json
import os
import re
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minigpt import hf
from minigpt import weights as safetensors
from minigpt.config import GPTConfig, TrainConfig
from minigpt.files import atomic_write, fault, fsync_dir, sha256_of, temporary
from minigpt.runlog import LOG, Log, resume_log
from minigpt.validate import check_object, read_json

POINTER = "checkpoints.json"
INTENT = "saving.json"  # {"previous": the pointer before the save in progress (or null), "next": the one it commits}
MANIFEST = "manifest.json"
FILES = ("model.safetensors", "optimizer.safetensors", "config.json", "tokenizer.json", "train_config.json", "state.json")
NAME = re.compile(r"ckpt-\d{6,}")  # ckpt-<step>, at least six digits
UNSAVED = ("out_dir", "resume")  # where the run is and how it was started: not settings of the run itself
STATE_FIELDS = {"iter": int, "best_val_loss": (float, None), "optimizer_step": int, "ranks": int,
                "sampler_rng": dict, "dropout_rng": dict, "data": (dict, None), "reference": (list, None)}
OPTIONAL_STATE = ("reference",)  # preference pairs' reference log-probabilities: in a --method dpo run's state only


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
    pointer = checked_pointer(read_json(path), path)
    for which in ("latest", "best"):
        name = pointer[which]
        if (path.parent / name).is_symlink():
            raise ValueError(f"{path.parent / name} is a symbolic link; a run directory's checkpoints are its own "
                             f"directories: replace the link by the checkpoint")
        if not (path.parent / name).is_dir():
            raise ValueError(f"{path} names {name} as {which}, which does not exist; the run directory is damaged")
    return pointer


def checked_pointer(value, where) -> dict:
    """A pointer's shape, checked: {"latest": name, "best": name}, each a checkpoint directory's name."""
    pointer = check_object(value, where, {"latest": str, "best": str})
    for which in ("latest", "best"):
        if not NAME.fullmatch(pointer[which]):
            raise ValueError(f"{where}: {which!r} must name a checkpoint directory (ckpt-NNNNNN), got "
                             f"{pointer[which]!r:.60}; the file is damaged")
    return {"latest": pointer["latest"], "best": pointer["best"]}


def read_intent(run_dir: Path) -> dict | None:
    """saving.json, checked: {"previous": a pointer or null, "next": a pointer}; None when no save was stopped."""
    path = run_dir / INTENT
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; a run directory's files are its own, never read through a "
                         f"link out of it: remove the link")
    intent = check_object(read_json(path), path, {"previous": (dict, None), "next": dict})
    previous = None if intent["previous"] is None else checked_pointer(intent["previous"], f"{path}: 'previous'")
    return {"previous": previous, "next": checked_pointer(intent["next"], f"{path}: 'next'")}


def step_of(name: str) -> int:
    return int(name[len("ckpt-"):])


class Found(NamedTuple):
    """What a start finds in a run directory (`survey`), read before anything in it is changed; `settle` acts on it."""
    pointer: dict | None  # the checkpoints a resumed run starts from: checkpoints.json's, or those found without it
    lost: bool  # checkpoints.json is missing, and `pointer` was read from the checkpoints found (a fresh run refuses)
    removals: list  # (path, why): what a crash left that is no checkpoint of the run, and what a commit replaced


def survey(run_dir: Path) -> Found:
    """What a start in run_dir finds, and will remove: only what the directory proves a crash left (the protocol
    above). Nothing is changed here, so that a start refused for any reason leaves the directory as it was. A whole
    checkpoint that nothing accounts for is refused, named, never removed."""
    if not run_dir.is_dir():
        return Found(None, False, [])
    pointer, intent = read_pointer(run_dir), read_intent(run_dir)
    named = set() if pointer is None else set(pointer.values())
    accounted = {}  # checkpoint name -> why the save that its intent names left it
    if intent is not None and intent["previous"] == pointer:  # the save stopped before its commit
        accounted[intent["next"]["latest"]] = "before it was committed"
    elif intent is not None and intent["next"] == pointer:  # it committed, and stopped before step 5
        for name in set((intent["previous"] or {}).values()) - named:
            accounted[name] = f"before removing it ({pointer['latest']} replaced it)"
    # (an intent that matches neither pointer is older than one written since, by hand: it proves nothing)
    removals, whole = [], []
    for path in sorted(run_dir.iterdir()):
        if ".tmp-" in path.name:
            removals.append((path, "while writing it"))
        elif not NAME.fullmatch(path.name) or path.name in named:
            continue
        elif path.name in accounted:
            removals.append((path, accounted[path.name]))
        elif path.is_symlink() or not path.is_dir() or not (path / MANIFEST).is_file():
            # a link or a file is no checkpoint, and a checkpoint gets its name only once its manifest is written
            removals.append((path, "before it was committed"))
        else:
            whole.append(path)
    if not whole:
        return Found(pointer, False, removals)
    if pointer is not None:
        raise ValueError(f"{whole[0]} is a checkpoint that {run_dir / POINTER} does not name (it names "
                         f"{pointer['latest']} and {pointer['best']}), and no save in {run_dir} accounts for it: "
                         f"move it out of the run directory to keep it, or delete it; then start again")
    return Found(found_pointer(run_dir, whole), True, removals)


def found_pointer(run_dir: Path, whole: list) -> dict:
    """The pointer of a run whose checkpoints.json is missing, read from its whole checkpoints (each state.json
    verified): the newest is the latest, and the best is the oldest whose best validation loss is the latest's
    (the one that set it: `save` points `best` at a checkpoint whose evaluation lowered it)."""
    states = {path.name: read_state(path) for path in whole}
    latest = max(states, key=step_of)
    best = min((name for name, state in states.items()
                if state["best_val_loss"] == states[latest]["best_val_loss"]), key=step_of)
    others = sorted(set(states) - {latest, best})
    if others:
        raise ValueError(f"{run_dir} has no {POINTER}, and more checkpoints than a run keeps: {', '.join(others)} "
                         f"besides its latest, {latest}, and its best, {best}; move the ones you do not need out of "
                         f"it, then start again")
    return {"latest": latest, "best": best}


def settle(run_dir: Path, found: Found, say) -> None:
    """Act on a survey, holding the lock: remove what a crash left (each said), write checkpoints.json again if it
    was missing, and remove the intent of a save that stopped."""
    for path, why in found.removals:
        say(f"removing {path}, left by a run that stopped {why}")
        remove(path)
    if found.lost:
        with atomic_write(run_dir / POINTER) as f:
            f.write(to_json(found.pointer))
        say(f"{run_dir / POINTER} was missing: written again from the checkpoints in {run_dir}, latest "
            f"{found.pointer['latest']} and best {found.pointer['best']}")
    (run_dir / INTENT).unlink(missing_ok=True)


def remove(path: Path) -> None:
    """Remove a file, a link (never what it points to) or a directory; a directory is first renamed to a temporary,
    so that a kill midway leaves a *.tmp-* for the next start, never a checkpoint's name on part of one."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    doomed = path if ".tmp-" in path.name else temporary(path)
    os.rename(path, doomed)
    shutil.rmtree(doomed)


# --- saving ---------------------------------------------------------------------------------------------------

def save(run_dir: Path, it: int, model, tokenizer, train_config: TrainConfig, optimizer, state: dict, best: bool) -> str:
    """Write checkpoint ckpt-<it> by the protocol above and point `latest` (and `best`, if best) at it; return its
    name. A failure (a full disk) removes what it wrote and leaves the previous checkpoint as it was."""
    name = checkpoint_name(it)
    final = run_dir / name
    tmp = temporary(final)
    pointer = read_pointer(run_dir)
    new_pointer = {"latest": name, "best": name if best or pointer is None else pointer["best"]}
    renamed = False
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
        with atomic_write(run_dir / INTENT) as f:  # what a start after a crash may remove, and why
            f.write(to_json({"previous": pointer, "next": new_pointer}))
        fault("save.intent")
        os.rename(tmp, final)  # (refused if ckpt-N is there: a start leaves no checkpoint the pointer does not name)
        renamed = True
        fsync_dir(run_dir)
        fault("save.renamed")
        with atomic_write(run_dir / POINTER, point="save.pointer") as f:  # the commit is its rename
            f.write(to_json(new_pointer))
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if not renamed:  # (renamed, it is left with the intent that lets the next start remove it)
            (run_dir / INTENT).unlink(missing_ok=True)
        previous = f"the last checkpoint, {run_dir / pointer['latest']}, is intact" if pointer else "no checkpoint was saved"
        fix = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that"
        raise OSError(f"could not write checkpoint {name} in {run_dir} ({e.strerror or e}); {previous}: "
                      f"{fix} and continue with --resume") from None
    fault("save.committed")
    try:
        for old in sorted(set((pointer or {}).values()) - set(new_pointer.values())):  # what the commit replaced
            remove(run_dir / old)
        fault("save.replaced")
        (run_dir / INTENT).unlink()
    except OSError:  # committed: the intent stays, and the next start finishes this
        pass
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


def read_train_config(ckpt: Path, model: GPTConfig | None = None) -> TrainConfig:
    """The TrainConfig saved in a checkpoint, checked: its train_config.json, and its model, `model` if it has been
    read already (config.json, whole: train_config.json repeats its settings, and is not read for them)."""
    path = verified(ckpt, "train_config.json")
    d = check_object(read_json(path), path, {})
    if model is None:
        model = hf.read_config(verified(ckpt, "config.json"))
    try:
        return TrainConfig.from_dict(d, source=str(path), model=model)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def read_state(ckpt: Path) -> dict:
    """state.json, checked: the step and the generators' states a resumed run continues from."""
    path = verified(ckpt, "state.json")
    state = check_object(read_json(path), path, STATE_FIELDS)
    missing = [key for key in STATE_FIELDS if key not in state and key not in OPTIONAL_STATE]  # (null is allowed
    # for some, missing for none but the optional)
    state.setdefault("reference", None)
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
    `open` when a new run makes it), the log, and the name of the latest checkpoint. The loop sees `write` (a log
    record), `save` (a checkpoint, by the protocol above) and `close`."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = lock(path) if path.is_dir() else None
        self.created = False  # made by this run: removed again by `close` if the run leaves nothing in it
        self.log = None
        self.latest = None  # the newest checkpoint: the one resumed from, then each one saved

    def open(self, found: Found, resume_at: int | None, say) -> None:
        """Make the directory ready to train in, once every setting, file and the data have been checked (so that bad
        input leaves nothing behind): created and locked if new (and refused if another run saved a checkpoint there
        meanwhile), put right after a crash as its survey (`found`) says, its log cut back to the step resumed from
        (resume_at), or removed if a run that saved no checkpoint left it, and opened for appending."""
        if self.lock is None:
            try:
                self.path.mkdir(parents=True)
                self.created = True
            except FileExistsError:  # (made meanwhile by another run)
                pass
            self.lock = lock(self.path)
            found = survey(self.path)
            if found.pointer is not None:
                raise ValueError(f"{self.path} already holds a run; continue it with --resume, or choose another --out-dir")
        if (self.path / LOG).is_symlink():  # appended to, in place: never through a link out of the run directory
            raise ValueError(f"{self.path / LOG} is a symbolic link; a run writes its own files only, never through "
                             f"a link: replace the link by the file")
        settle(self.path, found, say)
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
        if self.created and self.latest is None and not any(self.path.iterdir()):
            self.path.rmdir()  # a run that stopped before writing anything leaves no directory either
        if self.lock is not None:
            unlock(self.lock)
            self.lock = None
