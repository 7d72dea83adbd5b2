"""Files on disk, written so that no reader and no crash ever sees half of one; their SHA-256; where minigpt keeps
what it builds once (the cache directory).

    with atomic_write(path) as f:      # f is a temporary beside path: path.tmp-PID
        f.write(...)                   # then flushed, fsynced, renamed over path, the directory fsynced

A rename within a directory is atomic on POSIX file systems: `path` is the old file or the whole new one, never a
part of it, whatever stops the process (kill -9, a full disk, a Ctrl-C). On an error the temporary is removed and
`path` is left as it was; a process killed outright leaves only the temporary, `*.tmp-*`, which the run directory's
start-up removes (minigpt/checkpoint.py). The protocols that write a whole directory (a checkpoint, an export) are
built of this step. Tests: tests/test_files.py, tests/test_faults.py.
"""

import hashlib
import os
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

from minigpt import interrupt


def cache_dir() -> Path:
    """$MINIGPT_CACHE, else $XDG_CACHE_HOME/minigpt, else ~/.cache/minigpt: the compiled kernels, prepared datasets,
    downloads."""
    if os.environ.get("MINIGPT_CACHE"):
        return Path(os.environ["MINIGPT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minigpt"


def sha256_of(path) -> str:
    """The SHA-256 of a file's bytes, read a MB at a time (a checkpoint's weights need not fit in memory twice)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fsync_dir(path) -> None:
    """Get a directory's entries (a rename, a new file) onto the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary(path: Path) -> Path:
    """The name a file or directory is written under before it is renamed to `path`: beside it, with this process's
    id, so that two processes never write the same temporary."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_write(path, mode: str = "w", point: str | None = None):
    """Yield a file open for writing (mode "w" for UTF-8 text, "wb" for bytes) that becomes `path` when the block ends
    without an error: flushed, fsynced, renamed over `path`, the directory fsynced. On an error (or a Ctrl-C) the
    temporary is removed and `path` is untouched. point: a fault point (see fault), passed after the fsync and
    before the rename."""
    path = Path(path)
    tmp = temporary(path)
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if point is not None:
            fault(point)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        # an error of this write (opening the temporary, a write to it, its rename; none names another file) is said
        # of the user's path; one the block met reading some other file names that file, and is passed on as it is
        if e.filename not in (None, str(tmp)):
            raise
        raise write_error(path, e) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_error(path, e: OSError) -> OSError:
    """e, said of `path` (the user's, never the temporary's) in one line; its errno is kept, so that a full disk can
    still be told apart (minigpt/checkpoint.py)."""
    error = OSError(f"cannot write {path}: {e.strerror or e}")
    error.errno = e.errno
    return error


@contextmanager
def directory_write(directory):
    """Yield a temporary directory beside `directory` (directory.tmp-PID) to write files into. When the block ends
    without an error they are put in place: the temporary is renamed to `directory` if that does not exist, else each
    file is moved over its namesake in it (its other files stay, as transformers' save_pretrained leaves them); no
    Ctrl-C (SIGTERM, SIGHUP) cuts the moves short. On an error, or a stop inside the block, the temporary is removed
    and `directory` is left as it was. A kill -9 leaves only the temporary."""
    directory = Path(directory)
    tmp = temporary(directory)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise write_error(directory, e) from None
    try:
        yield tmp
        fault("directory.written")
        with interrupt.shielded():
            try:
                if not directory.exists():
                    os.rename(tmp, directory)
                    fault("directory.moved")
                else:
                    for f in sorted(tmp.iterdir()):
                        os.replace(f, directory / f.name)
                        fault("directory.moved")
                fsync_dir(directory.parent)
            except OSError as e:
                raise write_error(directory, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- testing hook: a kill at a named step of a protocol -------------------------------------------------------

_passes = {}


def fault(point: str) -> None:
    """A named step of a write protocol. Tests set MINIGPT_FAULT=POINT (or POINT@N, its N-th pass) to have the process
    killed right here with SIGKILL, as kill -9 or a power cut would end it: no cleanup, no buffer flushed; or
    POINT@N:SIGNAL to have it sent that signal instead (SIGTERM: a stop that comes in the middle of the step). Several,
    comma-separated, each act on their own pass. The points of a run directory: save.begin, save.files,
    save.manifest, save.intent, save.renamed, save.pointer, save.committed, save.replaced, log.written
    (minigpt/checkpoint.py); of a directory
    written whole (directory_write): directory.written, directory.moved (after each file moved into place)."""
    specs = []  # (point, pass, signal) of each comma-separated POINT@N:SIGNAL
    for spec in filter(None, os.environ.get("MINIGPT_FAULT", "").split(",")):
        spec, _, name = spec.partition(":")
        target, _, n = spec.partition("@")
        specs.append((target, int(n or 1), getattr(signal, name) if name else signal.SIGKILL))
    if not any(target == point for target, _, _ in specs):
        return
    _passes[point] = _passes.get(point, 0) + 1
    for target, n, signum in specs:
        if target == point and _passes[point] == n:
            os.kill(os.getpid(), signum)
