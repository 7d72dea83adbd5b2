"""safetensors files, read and written here: the format of minigpt's checkpoints and of Hugging Face's weights.

A safetensors file is an 8-byte little-endian header size, a JSON header that names each array with its dtype,
shape and byte range, then the arrays' bytes; nothing in it is code, and nothing is unpickled. Reading checks every
field of the header against the file (a damaged or truncated file is reported, by name, in one line) and widens
half-precision weights, which Hugging Face directories often ship (BF16, F16) and NumPy cannot compute in (it has no
bfloat16), to float32. Writing streams each array to the file (no copy of them all in memory) and can fsync it; a
failed write (a full disk) is an OSError. tests/test_checkpoint.py checks both against the safetensors library.
"""

import json
import os
import struct

import numpy as np

from minigpt.validate import parse_json, regular_file

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
          "I32": np.int32, "U8": np.uint8}
MAX_HEADER = 100 << 20  # bytes: the library's own limit
MAX_AXES = 64  # NumPy's


def read(path) -> dict:
    """The arrays of a safetensors file, name -> array (BF16 and F16 widened to float32), or a ValueError that
    names the file and what is wrong with it. The header is read and checked first, against the file's size, before
    anything as large as the file is allocated: its length, its JSON (minigpt.validate.parse_json: not nested
    thousands deep, no 5,000-digit number, no lone surrogate), each entry's dtype, shape (at most 64 axes, and no
    array larger than an address can count) and offsets, and offsets that tile the data exactly (in order, no gap,
    no overlap, to the file's end)."""
    path = regular_file(path, fix="give a safetensors file")
    size = path.stat().st_size

    def damaged(what):
        return ValueError(f"{path} is damaged or truncated ({what}); the weights cannot be read")

    with open(path, "rb") as f:
        if size < 8:
            raise damaged("shorter than its 8-byte header size")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > min(MAX_HEADER, size - 8):
            raise damaged(f"a header of {n} bytes in a file of {size}")
        header = parse_header(f.read(n), damaged)
        entries = check_entries(header, size - 8 - n, damaged)
        arrays = {}
        for name, dtype, shape, start, end in entries:  # in the order of their bytes: one pass over the file
            array = np.fromfile(f, dtype=DTYPES[dtype], count=(end - start) // np.dtype(DTYPES[dtype]).itemsize)
            if array.nbytes != end - start:  # (the file shrank while it was read)
                raise damaged(f"{name!r} ends past the end of the file")
            array = array.reshape(shape)
            if dtype == "BF16":  # the high half of a float32: shift it back into place
                array = (array.astype(np.uint32) << 16).view(np.float32)
            elif dtype == "F16":
                array = array.astype(np.float32)
            arrays[name] = array
    return arrays


def parse_header(raw: bytes, damaged) -> dict:
    """A safetensors header: a JSON object of entries (dtype, shape, offsets) and an optional __metadata__ of strings."""
    try:
        header = parse_json(raw.decode("utf-8"), "its header")
    except UnicodeDecodeError:
        raise damaged("its header is not UTF-8") from None
    except ValueError as e:  # (not JSON, nested thousands deep, a 5,000-digit number, a lone surrogate: parse_json)
        raise damaged(str(e)) from None
    if not isinstance(header, dict):
        raise damaged("its header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise damaged("its __metadata__ is not an object of strings")
    return header


def check_entries(header: dict, body: int, damaged) -> list:
    """(name, dtype, shape, start, end) of each array, in the order of their bytes, checked: a dtype of DTYPES, a
    shape of non-negative integers whose byte count is end - start, and offsets that tile the body's bytes."""
    entries = []
    for name, entry in header.items():
        if not (isinstance(entry, dict) and entry.get("dtype") in DTYPES and isinstance(entry.get("shape"), list)
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in entry["shape"])
                and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) for o in entry["data_offsets"])):
            raise damaged(f"the header's entry for {name!r:.80} is not a dtype, a shape and two offsets")
        start, end = entry["data_offsets"]
        itemsize = np.dtype(DTYPES[entry["dtype"]]).itemsize
        if len(entry["shape"]) > MAX_AXES:
            raise damaged(f"{name!r:.80} has {len(entry['shape'])} axes; an array has at most {MAX_AXES}")
        # (an array with an axis of 0 holds no bytes whatever its other axes: NumPy still refuses one whose other
        # axes multiply past what an address can count)
        if int(np.prod([d for d in entry["shape"] if d], dtype=object)) * itemsize > np.iinfo(np.intp).max:
            raise damaged(f"{name!r:.80} has shape {str(entry['shape']):.80}, larger than any array can be")
        nbytes = int(np.prod(entry["shape"], dtype=object)) * itemsize
        if not 0 <= start <= end <= body or end - start != nbytes:
            raise damaged(f"{name!r:.80} claims bytes {start}..{end} of {body} for {nbytes} bytes of data")
        entries.append((name, entry["dtype"], entry["shape"], start, end))
    entries.sort(key=lambda e: (e[3], e[4]))
    offset = 0
    for name, _, _, start, end in entries:
        if start != offset:
            raise damaged(f"{name!r:.80} starts at byte {start}, where {offset} was expected: the arrays' bytes "
                          f"{'overlap' if start < offset else 'leave a gap'}")
        offset = end
    if offset != body:
        raise damaged(f"the arrays end at byte {offset} of {body}: the file has bytes that no array claims")
    return entries


def write(path, arrays: dict, metadata: dict | None = None, fsync: bool = False) -> None:
    """Write arrays (name -> float or integer array) as a safetensors file at path; with fsync, on disk when this
    returns. The header is padded with spaces to a multiple of 8 bytes, as the library pads it."""
    names = {np.dtype(t): name for name, t in DTYPES.items() if name != "BF16"}
    header, offset = {}, 0
    for name, a in sorted(arrays.items()):
        if np.dtype(a.dtype) not in names:
            raise ValueError(f"{name} is {a.dtype}; a safetensors file here holds {', '.join(DTYPES)}")
        header[name] = {"dtype": names[np.dtype(a.dtype)], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for name, a in sorted(arrays.items()):
            f.write(np.ascontiguousarray(a).data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
