"""Input checks shared by the ops and the model. Each raises a ValueError that says what is wrong and where."""

import json
import re
import stat
import sys
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
    """The JSON in the file at path, or an error that names the file: missing, not UTF-8, not JSON (parse_json). A
    byte-order mark at its start, which Windows editors write, is read past."""
    return parse_json(read_text(path).removeprefix("\ufeff"), path, "the file is damaged")


SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # a \u escape of half of a UTF-16 pair, or of a lone half
SURROGATE = re.compile("[\ud800-\udfff]")  # one left alone: json pairs the halves of a pair into one character


def parse_json(text: str, where, fix: str = "") -> object:
    """The JSON value of text, read from `where` (a file, or "F line 3" of a JSONL file), or one line that names where,
    the place and what is wrong: not JSON; nested deeper than Python's parser recurses; an integer of more digits
    than Python converts (4,300); a string with a lone surrogate escape ("\\ud800", half of a UTF-16 pair: no UTF-8
    text holds one, and nothing can print or encode it). fix: what to do about it, said after."""
    fix = f"; {fix}" if fix else ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where} is not valid JSON ({e.msg} at {position(text, e.pos)}){fix}") from None
    except RecursionError:  # (json's parser recurses once a level, up to Python's recursion limit)
        depth, pos = deepest(text)
        raise ValueError(f"{where} nests its JSON {depth:,} levels deep (at {position(text, pos)}), deeper than "
                         f"Python's parser goes{fix}") from None
    except ValueError:  # (json's only other error) Python's limit on an integer's digits: sys.set_int_max_str_digits
        long = re.search(r"\d{%d,}" % (sys.get_int_max_str_digits() + 1), text)
        raise ValueError(f"{where} holds an integer of more than {sys.get_int_max_str_digits():,} digits"
                         f"{f' (at {position(text, long.start())})' if long else ''}{fix}") from None
    if SURROGATE_ESCAPE.search(text):  # (a quick look first: walking every string of a large file costs more)
        place = surrogate_in(value)
        if place is not None:
            raise ValueError(f"{where}: {place} holds a lone surrogate escape (\\ud800 to \\udfff not in a pair), "
                             f"which is no character{fix}")
    return value


def position(text: str, pos: int) -> str:
    """Where character pos of text is, as people count: "line 3, column 7", or "column 7" in a text of one line."""
    line = text.count("\n", 0, pos) + 1
    column = pos - text.rfind("\n", 0, pos)
    return f"line {line}, column {column}" if "\n" in text.rstrip("\r\n") else f"column {column}"


def deepest(text: str) -> tuple:
    """(depth, position): how deep a JSON text's brackets nest at most (outside its strings), and where first."""
    depth, most, where, in_string, escaped = 0, 0, 0, False, False
    for i, c in enumerate(text):
        if in_string:
            escaped, in_string = (not escaped and c == "\\"), not (c == '"' and not escaped)
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > most:
                most, where = depth, i
        elif c in "]}":
            depth -= 1
    return most, where


def surrogate_in(value) -> str | None:
    """The place (a JSON path: messages[2].content) of the first string, key or value, with a lone surrogate."""
    stack = [(value, "")]
    while stack:
        v, place = stack.pop()
        if isinstance(v, str) and SURROGATE.search(v):
            return place or "the JSON"
        if isinstance(v, list):
            stack.extend((item, f"{place}[{i}]") for i, item in enumerate(v))
        elif isinstance(v, dict):
            for key, item in v.items():
                if SURROGATE.search(key):
                    return f"a key of {place or 'the JSON'}"
                # (a key that is a name as it is; another quoted, so that the place stays on one line)
                stack.append((item, f"{place}.{key}".lstrip(".") if key.isidentifier() else f"{place}[{key!r:.40}]"))
    return None


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
