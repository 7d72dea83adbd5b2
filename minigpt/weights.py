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
from pathlib import Path

import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
          "I32": np.int32, "U8": np.uint8}
MAX_HEADER = 100 << 20  # bytes: the library's own limit


def read(path) -> dict:
    """The arrays of a safetensors file, name -> array (BF16 and F16 widened to float32), or a ValueError that
    names the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    data = path.read_bytes()

    def damaged(what):
        return ValueError(f"{path} is damaged or truncated ({what}); the weights cannot be read")

    if len(data) < 8:
        raise damaged("shorter than its 8-byte header size")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(MAX_HEADER, len(data) - 8):
        raise damaged(f"a header of {n} bytes in a file of {len(data)}")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise damaged("its header is not JSON") from None
    if not isinstance(header, dict):
        raise damaged("its header is not a JSON object")
    header.pop("__metadata__", None)
    body = memoryview(data)[8 + n:]
    arrays = {}
    for name, entry in header.items():
        if not (isinstance(entry, dict) and entry.get("dtype") in DTYPES and isinstance(entry.get("shape"), list)
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in entry["shape"])
                and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) for o in entry["data_offsets"])):
            raise damaged(f"the header's entry for {name!r} is not a dtype, a shape and two offsets")
        dtype = np.dtype(DTYPES[entry["dtype"]])
        start, end = entry["data_offsets"]
        size = int(np.prod(entry["shape"], dtype=object)) * dtype.itemsize
        if not 0 <= start <= end <= len(body) or end - start != size:
            raise damaged(f"{name!r} claims bytes {start}..{end} of {len(body)} for {size} bytes of data")
        array = np.frombuffer(body[start:end], dtype=dtype).reshape(entry["shape"])
        if entry["dtype"] == "BF16":  # the high half of a float32: shift it back into place
            array = (array.astype(np.uint32) << 16).view(np.float32)
        elif entry["dtype"] == "F16":
            array = array.astype(np.float32)
        arrays[name] = array.copy()  # its own memory: the file's bytes can go
    return arrays


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
