"""The C backend: the kernels of kernels/ (this package's data, minigpt/backends/c/kernels), compiled on first use
into the cache directory and loaded with cffi in out-of-line ABI mode (a plain shared library: no Python headers
needed; the declarations of minigpt.h are parsed once, when the library is built, into a small Python module
beside it, rather than by every process that loads it).

The library is built once per machine and source version (cc -O3 -march=native -fopenmp, no fast-math), with a
one-line message; later processes load it in milliseconds. A machine without a C compiler raises OSError when the
backend loads, and the registry (minigpt/backends) reports the backend unavailable in one line and uses another.
Each op's wrapper (minigpt/backends/c/<op>.py) checks that its arrays are laid out as the kernel reads them, and
raises rather than copying. Nothing here imports numba.
"""

import contextlib
import fcntl
import hashlib
import importlib.util
import io
import os
import platform
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from minigpt import runtime
from minigpt.files import cache_dir

# -O3 and the machine's vector instructions, OpenMP for threads; deliberately no -ffast-math, and no implicit fused
# multiply-adds either (-ffp-contract=off), so that every operation rounds as NumPy's do and identities such as
# x - mean(x) == 0 for one channel hold exactly; the matmul's micro-kernels ask for their fused multiply-adds.
# -fno-math-errno (sqrt need not set errno) and -fno-trapping-math (no floating-point traps, which Python never
# enables) change no result; without them GCC will not vectorise a loop with a square root or a conditional.
FLAGS = ["-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fPIC",
         "-shared", "-std=gnu11"]
CTYPE = {np.dtype(np.float32): "float[]", np.dtype(np.float64): "double[]", np.dtype(np.int64): "int64_t[]",
         np.dtype(np.uint8): "uint8_t[]"}
SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}

ffi = None  # cffi's FFI of minigpt.h, loaded with the library by lib()
_lib = None


def sources() -> Path:
    """The directory of the C sources: kernels/ of the repository, which this package holds as its data
    (minigpt/backends/c/kernels: a link to it in the repository, a copy of it once installed by `pip install .`).
    kernels/ itself is no Python package, so that it does not hide PyPI's `kernels` from a program run in the
    repository's root."""
    return Path(str(resources.files("minigpt.backends.c") / "kernels"))


def machine_id() -> str:
    """What -march=native depends on: the CPU's model and instruction-set flags."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return platform.machine() + "".join(lines)


def build() -> tuple[Path, Path]:
    """The shared library of these sources for this machine and compiler, and the module of cffi's FFI of its
    declarations, each made unless it is cached."""
    files = sorted(sources().glob("*.[ch]"))
    if not files:
        raise OSError(f"the C kernel sources are missing from {sources()}; reinstall minigpt")
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler ({compiler}) on this machine")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256()
    for part in [*(f.read_bytes() for f in files), " ".join(FLAGS).encode(), version.encode(), machine_id().encode()]:
        key.update(part)
    library = cache_dir() / "kernels" / f"libminigpt-{key.hexdigest()[:16]}.so"
    declared = library.with_name(f"minigpt_ffi_{key.hexdigest()[:16]}.py")
    if library.is_file() and declared.is_file():
        return library, declared
    library.parent.mkdir(parents=True, exist_ok=True)
    # one process compiles; others starting at the same time (test workers, MPI ranks) wait for it, then load
    with open(library.with_name(library.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not library.is_file():
            print(f"minigpt: compiling the C kernels (once, into {library.parent})", file=sys.stderr)
            tmp = library.with_name(library.name + f".tmp-{os.getpid()}")
            result = subprocess.run([compiler, *FLAGS, str(sources() / "minigpt.c"), "-o", str(tmp), "-lm"],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                tmp.unlink(missing_ok=True)
                first = (result.stderr.strip().splitlines() or ["(no message)"])[0]
                raise OSError(f"compiling the C kernels failed: {first}")
            os.replace(tmp, library)  # atomic: a process that does not take the lock sees the whole library or none
        if not declared.is_file():
            import cffi  # its C parser (pycparser) is needed here only

            builder = cffi.FFI()
            builder.cdef(declarations())
            builder.set_source(declared.stem, None)  # None: ABI mode, nothing to compile
            tmp = declared.with_name(declared.stem + f"-tmp{os.getpid()}.py")
            with contextlib.redirect_stdout(io.StringIO()):  # it says "generating ..." on stdout
                builder.emit_python_code(str(tmp))
            os.replace(tmp, declared)
    return library, declared


def load_ffi(declared: Path):
    """cffi's FFI object from the module build() wrote: the declarations, already parsed."""
    spec = importlib.util.spec_from_file_location(declared.stem, declared)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ffi


def declarations() -> str:
    """minigpt.h without its comments, and each float declaration once more for double."""
    text = (sources() / "minigpt.h").read_text()
    while "/*" in text:
        start = text.index("/*")
        text = text[:start] + text[text.index("*/", start) + 2:]
    float_ones = [d for d in text.split(";") if "_f32(" in d]
    return text + ";".join(d.replace("float", "double").replace("_f32(", "_f64(") for d in float_ones) + ";"


def lib():
    """The loaded library (built first if need be), its float32 micro-kernel chosen from the CPU's features, its
    OpenMP threads counted by minigpt.runtime.set_threads."""
    global _lib, ffi
    if _lib is None:
        library, declared = build()
        ffi = load_ffi(declared)
        # never unloaded: it brings the OpenMP runtime, whose threads live on until the process exits
        _lib = ffi.dlopen(str(library), ffi.RTLD_NOW | getattr(ffi, "RTLD_NODELETE", 0))
        _lib.minigpt_init(ffi.NULL)
        runtime.add_pool(_lib.minigpt_set_threads)
    return _lib


def prepare() -> None:
    """Build and load the library when the backend loads (minigpt/backends): a failure here (no compiler) means the
    backend is unavailable, rather than an error at the first kernel's call."""
    lib()


def use_microkernel(name: str | None = None) -> str:
    """Use the named float32 micro-kernel ("avx512", "avx2", "portable") if this CPU runs it, else the best one
    it runs (None: the best); return the one in use. For tests and benchmarks."""
    return ffi.string(lib().minigpt_init(ffi.NULL if name is None else name.encode())).decode()


def ptr(a):
    """A C pointer to the data of an array (C-contiguous, or the transpose of one), or NULL for None.
    (ffi.from_buffer: a tenth of the time of casting a.ctypes.data, which counts when decoding a token at a time.)"""
    if ffi is None:
        lib()
    if a is None:
        return ffi.NULL
    return ffi.from_buffer(CTYPE[a.dtype], a if a.flags.c_contiguous else a.T)


def view_ptr(a):
    """A C pointer to the first element of a strided view (rows further apart than a row's length: GPT-2's q, k and v,
    views of its c_attn output), for a kernel that takes the strides too; `a` must outlive the call."""
    if ffi is None:
        lib()
    return ffi.cast(CTYPE[a.dtype].replace("[]", " *"), a.ctypes.data)


_kernels = {}


def kernel(name: str, dtype):
    """The C function `name` for this dtype: linear_forward_f32, ..."""
    key = (name, dtype)
    if key not in _kernels:
        _kernels[key] = getattr(lib(), f"{name}_{SUFFIX[np.dtype(dtype)]}")
    return _kernels[key]
