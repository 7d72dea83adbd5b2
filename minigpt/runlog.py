"""A run's log.jsonl: one strict-JSON record per logged step, appended while the run trains, cut back when it resumes.

    log = Log(run_dir)           # appends (from its first record); each line flushed at once
    log.write({"iter": 1, "loss": 4.2, ...})
    log.sync()                   # fsync: before each checkpoint, so that a power cut loses no line a checkpoint covers
    resume_log(run_dir, 250, say)   # a resumed run: only the lines of steps up to its checkpoint's are kept

Where the log stands in the save protocol: minigpt/checkpoint.py and docs/runs.md. Tests: tests/test_faults.py.
"""

import json
import os
from pathlib import Path

from minigpt.files import atomic_write, fault

LOG = "log.jsonl"


class Log:
    """log.jsonl, appended a line per logged step: strict JSON, flushed at once (a killed process loses no line),
    fsynced before each checkpoint (so that a power cut loses none that a checkpoint covers)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOG
        self.file = None  # opened by the first record: a run stopped before it leaves no empty log

    def write(self, record: dict) -> None:
        try:
            if self.file is None:
                self.file = open(self.path, "a", encoding="utf-8")
            self.file.write(json.dumps(record, allow_nan=False) + "\n")
            self.file.flush()
        except OSError as e:
            raise OSError(f"could not write {self.path} ({e.strerror or e}); the run's last checkpoint is intact: "
                          f"free some space and continue with --resume") from None
        fault("log.written")

    def sync(self) -> None:
        if self.file is not None:
            os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
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
        except (ValueError, RecursionError):  # (JSONDecodeError, UnicodeDecodeError; brackets nested past the parser)
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
    with atomic_write(path, "wb") as f:
        f.write(b"".join(line + b"\n" for line, record in parsed if record["iter"] <= last_iter))


def read_log(run_dir) -> list:
    """The records of a run's log.jsonl, for a reader beside the run (a line being written is left out)."""
    path = Path(run_dir) / LOG
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; give the --out-dir of a training run")
    records = [record for _, record in parse_log(path)[0]]
    if not records:
        raise ValueError(f"{path} is empty: the run has not logged a step yet")
    if not all(isinstance(r.get("loss"), (int, float)) for r in records):
        raise ValueError(f"{path} has records without a 'loss'; it is not a minigpt training log")
    return records
