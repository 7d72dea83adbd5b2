"""Process-wide settings that make minigpt fast, applied by one explicit call:

    import minigpt.runtime
    minigpt.runtime.configure(threads=None)   # the `minigpt` command, the tests and the benchmarks call it

Importing minigpt changes nothing in the process; this call changes, for the whole process:

- threads: one count N (default: every core this process may use) for every pool minigpt uses: BLAS (NumPy's
  matmuls, the numpy and numba backends), numba's parallel loops and the C kernels' OpenMP threads. The ops run one
  after another, so each pool may use all N cores in turn; more threads than cores only make the pools fight.
  numba runs its parallel loops on its own thread pool (workqueue), whose threads sleep when idle: they would
  otherwise take the cores that OpenBLAS's threads, busy-waiting between matmuls, are using. Until this call the
  numba kernels run on the calling thread only (minigpt/backends/numba). The C kernels' OpenMP threads keep
  OpenMP's own default: they wait busy for a few milliseconds after a parallel loop, so that the next one starts at
  once, and then sleep.
- memory: glibc's malloc takes every allocation of 128 KB or more straight from the kernel (mmap) and gives it back
  when freed (munmap). A training step allocates the same large arrays every time, so every step the kernel would
  map fresh pages and zero them before NumPy could write a byte (twice the time of a recipe matmul on the machine
  of docs/kernels.md). malloc is told to keep freed memory for the next step: after the first step the process's
  memory stays at its peak and no page is faulted in again. Nothing happens where the C library is not glibc.

The call can come at any time, after NumPy was imported or not: it only uses settings that can be changed at run
time, so the speed does not depend on import order (benchmarks/bench.py measures both orders).
"""

import ctypes
import ctypes.util
import os
import sys

from threadpoolctl import threadpool_limits

_threads = None  # the count set_threads() set, applied to a pool that loads later (minigpt.backends)
_configured = False  # configure() was called: idle threads sleep, so kernels may run in parallel

M_TRIM_THRESHOLD = -1  # mallopt's parameters, from glibc's malloc.h
M_MMAP_MAX = -4
KEEP_UP_TO = 2**31 - 1  # bytes of free memory at the top of the heap kept rather than returned (mallopt takes an int)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure(threads: int | None = None) -> int:
    """Apply minigpt's process-wide settings (above); return the thread count."""
    global _configured
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")  # read by numba when it loads
    if sys.modules.get("numba") is not None and not _numba_parallel_started():  # loaded already, its threads not yet
        sys.modules["numba"].config.THREADING_LAYER = os.environ["NUMBA_THREADING_LAYER"]
    keep_freed_memory()
    _configured = True
    return set_threads(threads)


def parallel_threads() -> int:
    """The threads a kernel may run its loops on: 1 until configure() has made idle threads sleep."""
    return _threads if _configured and _threads is not None else 1


def set_threads(n: int | None = None) -> int:
    """Use n threads (default: every core this process may run on) in BLAS, numba and the C kernels' OpenMP."""
    global _threads
    n = available_cores() if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    _threads = n
    threadpool_limits(limits=n)  # BLAS, and the OpenMP runtimes already loaded
    apply_threads()
    return n


def apply_threads() -> None:
    """Give the pools loaded since set_threads() (numba, the C kernels) its thread count; the backends call this."""
    if _threads is None:
        return
    if sys.modules.get("numba") is not None:
        import numba

        numba.set_num_threads(min(_threads, numba.config.NUMBA_NUM_THREADS))
    if "minigpt.backends.c" in sys.modules and sys.modules["minigpt.backends.c"]._lib is not None:
        sys.modules["minigpt.backends.c"]._lib.minigpt_set_threads(_threads)


def _numba_parallel_started() -> bool:
    """Whether numba has started its thread pool (its threading layer can no longer change)."""
    from numba.np.ufunc import parallel

    return parallel._is_initialized


def keep_freed_memory() -> bool:
    """Have glibc's malloc reuse freed memory instead of returning it to the kernel; True if it did."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_UP_TO))
