"""Where a command writes, checked once, before any work, by every command that writes: `eval --json`, `inspect
--html`, `plot --output`, `tokenizer train --out`, `export --hf`, `--peft`, `--llmc` and `--gguf`, `train --out-dir`.

    outputs.check(args.json, "--json")                                   # a file, replaced whole
    outputs.check(args.out, "--out", DIRECTORY, force=args.force)        # a directory: new, or empty unless --force

Two things are refused, in one line that names the flag and the user's path:
    - a run directory's own files, which `minigpt train` alone writes, by its protocol (minigpt/checkpoint.py,
      docs/runs.md): checkpoints.json, saving.json, log.jsonl, a ckpt-*/ and anything in it, a *.tmp-* (which the
      run's next start would remove); and anything inside a checkpoint directory, wherever it is (its manifest
      checks its files). A run directory itself is no output either, but for `train --out-dir`;
    - a path that cannot be written: its directory missing or a file, a directory where a file is to go or the
      reverse, a file system that refuses a new file there (tried: a temporary is made and removed). So the error
      comes before the work, never after it (an evaluation's scores lost) nor with a temporary's name.
Tests: tests/test_protect.py.
"""

import json
import os
from pathlib import Path

from minigpt.checkpoint import INTENT, NAME, POINTER, is_checkpoint
from minigpt.files import temporary
from minigpt.runlog import LOG

FILE, DIRECTORY, RUN = "file", "directory", "run"  # one file; a directory of files; a run directory (train --out-dir)
PROTOCOL = (POINTER, INTENT, LOG)  # a run directory's files besides its checkpoints


def is_run_directory(path: Path) -> bool:
    """A directory that holds a run: its pointer, a save's intent, a checkpoint, or (a run before its first
    checkpoint) a log whose first line is a run's record. (A log.jsonl of some other kind makes no run directory.)"""
    if not path.is_dir():
        return False
    if (path / POINTER).exists() or (path / INTENT).exists() or any(p.is_dir() for p in path.glob("ckpt-*")
                                                                       if NAME.fullmatch(p.name)):
        return True
    try:
        with open(path / LOG, "rb") as f:
            first = json.loads(f.readline(1 << 16))
    except (OSError, ValueError, RecursionError):  # (no log, or not JSON, or nested past the parser: not a run's)
        return False
    return isinstance(first, dict) and type(first.get("iter")) is int


def is_run_file(path: Path) -> bool:
    """A name the protocol of the run directory it is in owns (whether or not it exists yet)."""
    owned = path.name in PROTOCOL or ".tmp-" in path.name or NAME.fullmatch(path.name)
    return bool(owned) and is_run_directory(path.parent)


def check(path, flag: str, kind: str = FILE, force: bool = True) -> Path:
    """path, where a command is about to write a `kind` (FILE, DIRECTORY or RUN), checked by the rules above; force:
    an existing file may be replaced, or a non-empty directory written into (else refused, naming --force). flag
    names the path in an error. Returns path as given."""
    path = Path(path).expanduser()
    target = path.resolve()  # (through any link: what is written is where it leads)
    for p in (target, *target.parents):
        if is_checkpoint(p) and p.is_dir():
            run = p.parent if is_run_directory(p.parent) else None
            where = f"the run directory {run} (its checkpoint {p.name})" if run else f"the checkpoint {p}"
            raise ValueError(f"{flag} {path} is inside {where}, whose files its manifest checks; write it elsewhere")
        if is_run_file(p) or (p == target and kind != RUN and is_run_directory(p)):
            run = p.parent if is_run_file(p) else p
            raise ValueError(f"{flag} {path} is inside the run directory {run}, whose files (checkpoints.json, "
                             f"log.jsonl, ckpt-*) minigpt train alone writes; write it elsewhere")
    if kind == FILE and target.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file's name")
    if kind != FILE and target.exists() and not target.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a directory")
    if not force and kind == FILE and target.exists():
        raise ValueError(f"{flag} {path} exists; choose another name, or give --force to replace it")
    if not force and kind == DIRECTORY and target.is_dir() and any(target.iterdir()):
        raise ValueError(f"{flag} {path} is not empty; choose a new directory, or give --force to write into it")
    writable(path, target, flag, kind)
    return path


def writable(path: Path, target: Path, flag: str, kind: str) -> None:
    """Whether a new file can be made where `target` is to be written: beside it, for a file (its temporary, as
    minigpt.files.atomic_write makes it); in it, for a directory that exists; in the nearest directory that exists
    above it, for one to be made (with its parents)."""
    if kind == FILE:
        if not target.parent.is_dir():
            missing = "does not exist" if not target.parent.exists() else "is not a directory"
            raise FileNotFoundError(f"{flag} {path}: its directory {target.parent} {missing}; create it first, or "
                                    f"give another path")
        probe = temporary(target)
    else:
        above = target
        while not above.exists():
            above = above.parent
        if not above.is_dir():
            raise NotADirectoryError(f"{flag} {path}: {above} is a file, so no directory can be made there; give "
                                     f"another path")
        probe = temporary(above / "minigpt-write-check")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise OSError(f"{flag} {path} cannot be written ({e.strerror} in {probe.parent}); choose a path you may "
                      f"write to") from None
    probe.unlink(missing_ok=True)
