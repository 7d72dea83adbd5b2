"""Input checks shared by the ops and the model. Each raises a ValueError that says what is wrong and where."""

import json
import stat
from pathlib import Path

import numpy as np


def check_token_ids(ids, vocab_size: int, what: str = "token id", ignore_index: int | None = None) -> np.ndarray:
    """Check that `ids` is a (B, T) integer array with every entry in [0, vocab_size) (or == ignore_index).

    NumPy would silently wrap a negative id (wte[-1] is the last row) and crash on a too-large one
    deep inside an op; this names the first offender instead.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"{what}s must be a 2-D (B, T) array, got shape {ids.shape}; add a batch axis with ids[None]")
    if ids.dtype.kind not in "iu":
        raise ValueError(f"{what}s must be integers, got dtype {ids.dtype}")
    bad = (ids < 0) | (ids >= vocab_size)
    if ignore_index is not None:
        bad &= ids != ignore_index
    if bad.any():
        b, t = np.argwhere(bad)[0]
        allowed = f" (or {ignore_index} to ignore a position)" if ignore_index is not None else ""
        raise ValueError(
            f"{what} {ids[b, t]} at batch {b}, position {t} is outside the vocabulary (size {vocab_size}); "
            f"ids must be in [0, {vocab_size}){allowed}"
        )
    return ids


def check_shape(name: str, x: np.ndarray, shape: tuple) -> None:
    """Check an array's shape against `shape`, where None matches any size on that axis."""
    if x.ndim == len(shape):
        for want, have in zip(shape, x.shape):
            if want is not None and want != have:
                break
        else:
            return
    dims = ["*" if s is None else str(s) for s in shape]
    want = f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"
    raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {want}")


FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def check_same_dtype(op: str, **arrays) -> np.dtype:
    """Check that the arrays (None skipped) are all float32 or all float64; return that dtype. Every backend's
    kernels compute in their inputs' precision, and NumPy would silently promote a mix to float64."""
    first = dtype = None
    for name, a in arrays.items():
        if a is None:
            continue
        if dtype is None:
            first, dtype = name, a.dtype
            if dtype not in FLOATS:
                raise ValueError(f"{op}: {name} is {dtype}; minigpt computes in float32 or float64")
        elif a.dtype != dtype:
            raise ValueError(f"{op}: {name} is {a.dtype} but {first} is {dtype}; give every array the same dtype")
    return dtype


def check_contiguous(op: str, **arrays) -> None:
    """A compiled kernel reads raw memory: each array (None skipped) must be C-contiguous. Its wrapper raises rather
    than silently copying (a copy of every input would cost as much as the kernel)."""
    for name, a in arrays.items():
        if a is not None and not a.flags.c_contiguous:
            raise ValueError(f"{op}: {name} must be C-contiguous (use np.ascontiguousarray)")


# --- files: parsed and checked where they enter, with one line that names the file -------------------------

def regular_file(path, what: str = "", fix: str = "") -> Path:
    """path, if it names a regular file (a symlink to one is followed); else an error that names it as `what` path
    and says what it is instead: missing, a directory, or a FIFO, a device or a socket (which a read would hang on
    or never finish)."""
    path = Path(path)
    fix = f"; {fix}" if fix else ""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}{path} does not exist{fix}") from None
    except OSError as e:  # (a dangling symlink's loop, a path through a file, no permission)
        raise FileNotFoundError(f"{what}{path} cannot be read ({e.strerror}){fix}") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{what}{path} is a directory, not a file{fix}")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise ValueError(f"{what}{path} is {kind}, not a regular file{fix}")
    return path


def decode(raw: bytes, path, what: str = "", fix: str = "the file is damaged") -> str:
    """The UTF-8 text of a file's bytes, or an error that names it: not UTF-8, or binary (a NUL byte, which no
    text holds)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what}{path} is not UTF-8 text (byte {e.start}); {fix}") from None
    if "\0" in text:
        raise ValueError(f"{what}{path} is binary, not text (a NUL byte at byte {raw.index(0)}); {fix}")
    return text


def read_text(path, what: str = "", fix: str = "the file is damaged") -> str:
    """The UTF-8 text of the file at path, or an error that names it (as `what` path): missing, not a regular file,
    not UTF-8, binary."""
    return decode(regular_file(path, what).read_bytes(), path, what, fix)


def read_json(path) -> object:
    """The JSON in the file at path, or an error that names the file: missing, not UTF-8, not JSON."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); the file is damaged") from None


KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}


def check_object(value, where, fields: dict) -> dict:
    """value must be a JSON object (dict) whose keys in `fields` hold the given kind: a type, or a tuple of types
    (a float field takes an integer too); None in the tuple lets the key be missing or null. Returns value."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must hold a JSON object, not {type(value).__name__}; the file is damaged")
    for key, kinds in fields.items():
        kinds = tuple(type(None) if k is None else k for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        if key not in value:
            if type(None) in kinds:
                continue
            raise ValueError(f"{where} has no {key!r}; the file is damaged or not minigpt's")
        v = value[key]
        ok = any(v is None if k is type(None) else
                 isinstance(v, k) and not (isinstance(v, bool) and k in (int, float)) or (k is float and type(v) is int)
                 for k in kinds)
        if not ok:
            words = " or ".join("null" if k is type(None) else KINDS.get(k, k.__name__) for k in kinds)
            raise ValueError(f"{where}: {key!r} must be {words}, got {v!r:.60}; the file is damaged")
    return value
