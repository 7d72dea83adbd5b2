"""The C kernels of kernels/ (matmul with fused bias, layer norm, GELU), compiled once per machine and
source version into the cache directory, and loaded with cffi (ABI mode: a plain shared library, no
Python headers needed). A machine without a C compiler raises OSError here, and the backend registry
falls back to the reference.
"""

import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

import cffi
import numpy as np

from minigpt.data.text import cache_dir

KERNELS = Path(__file__).resolve().parents[3] / "kernels"  # the source tree's kernels/ (pip install -e .)
# -O3 and the machine's vector instructions, OpenMP for threads; deliberately no -ffast-math, and no
# implicit fused multiply-adds either (-ffp-contract=off), so that every operation rounds as NumPy's do
# and identities such as x - mean(x) == 0 for one channel hold exactly; kernels that want an FMA ask.
FLAGS = ["-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-fPIC", "-shared", "-std=gnu11"]
SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
CTYPE = {np.dtype(np.float32): "float *", np.dtype(np.float64): "double *"}


def machine_id() -> str:
    """What -march=native depends on: the CPU's model and instruction-set flags."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return platform.machine() + "".join(lines)


def build() -> Path:
    """Compile kernels/minigpt.c unless this exact build is cached; return the shared library's path."""
    sources = sorted(KERNELS.glob("*.[ch]"))
    if not sources:
        raise OSError(f"the C kernel sources are not in {KERNELS}; the C backend needs the source tree (pip install -e .)")
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler ({compiler}) on this machine")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256()
    for part in [*(s.read_bytes() for s in sources), " ".join(FLAGS).encode(), version.encode(), machine_id().encode()]:
        key.update(part)
    library = cache_dir() / "kernels" / f"libminigpt-{key.hexdigest()[:16]}.so"
    if not library.is_file():
        library.parent.mkdir(parents=True, exist_ok=True)
        tmp = library.with_name(library.name + f".tmp-{os.getpid()}")
        result = subprocess.run([compiler, *FLAGS, str(KERNELS / "minigpt.c"), "-o", str(tmp), "-lm"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            tmp.unlink(missing_ok=True)
            first = (result.stderr.strip().splitlines() or ["(no message)"])[0]
            raise OSError(f"compiling the C kernels failed: {first}")
        os.replace(tmp, library)  # atomic: another process sees the whole library or none
    return library


def declarations() -> str:
    """minigpt.h without its comments, for cffi."""
    text = (KERNELS / "minigpt.h").read_text()
    while "/*" in text:
        start = text.index("/*")
        text = text[:start] + text[text.index("*/", start) + 2:]
    return text


ffi = cffi.FFI()
ffi.cdef(declarations())
lib = ffi.dlopen(str(build()))


def ptr(a):
    """A C pointer to the data of a float32/float64 array, or NULL for None."""
    return ffi.NULL if a is None else ffi.cast(CTYPE[a.dtype], a.ctypes.data)


def check_contiguous(op: str, **arrays) -> None:
    """A kernel reads raw memory: each array must be C-contiguous (a wrapper raises rather than silently copying)."""
    for name, a in arrays.items():
        if a is not None and not a.flags.c_contiguous:
            raise ValueError(f"{op}: {name} must be C-contiguous (use np.ascontiguousarray)")


def kernel(name: str, dtype):
    """The C function `name` for this dtype: matmul_forward_f32, ..."""
    if np.dtype(dtype) not in SUFFIX:
        raise ValueError(f"the C kernels take float32 or float64, not {np.dtype(dtype)}")
    return getattr(lib, f"{name}_{SUFFIX[np.dtype(dtype)]}")
