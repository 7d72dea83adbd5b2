"""Process-wide settings that make minigpt fast, applied by one explicit call:

    import minigpt.runtime
    minigpt.runtime.configure(threads=None)   # the `minigpt` command, the tests and the benchmarks call it

Importing minigpt changes nothing in the process; this call changes, for the whole process:

- threads: one count N (default: $MINIGPT_THREADS, else every core this process may use) for both pools minigpt
  uses: BLAS (NumPy's matmuls, the numpy and numba backends) and the C kernels' OpenMP threads. The ops run one after
  another, so each pool may use all N cores in turn; more threads than cores only make the pools fight. The C
  kernels' OpenMP threads keep OpenMP's own default: they wait busy for a few milliseconds after a parallel loop, so
  that the next one starts at once, and then sleep. (numba's kernels run on the calling thread:
  minigpt/backends/numba.)
- memory: glibc's malloc takes every allocation of 128 KB or more straight from the kernel (mmap) and gives it back
  when freed (munmap). A training step allocates the same large arrays every time, so every step the kernel would
  map fresh pages and zero them before NumPy could write a byte (twice the time of a recipe matmul on the machine
  of docs/kernels.md). malloc is told to keep freed memory for the next step: after the first step the process's
  memory stays at its peak and no page is faulted in again. Nothing happens where the C library is not glibc.

The call can come at any time, after NumPy was imported or not: it only uses settings that can be changed at run
time, so the speed does not depend on import order (benchmarks/bench.py measures both orders).
"""

import ctypes
import os
from typing import Callable

_threads = None  # the count set_threads() set, applied to a pool that loads later (add_pool)
_pools = []  # a function per thread pool loaded since the process started that set_threads() cannot reach otherwise

M_TRIM_THRESHOLD = -1  # mallopt's parameters, from glibc's malloc.h
M_MMAP_MAX = -4
KEEP_UP_TO = 2**31 - 1  # bytes of free memory at the top of the heap kept rather than returned (mallopt takes an int)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """The thread count when none is given: $MINIGPT_THREADS if set (e.g. 1 per process when several share the
    machine), else every core this process may use."""
    value = os.environ.get("MINIGPT_THREADS", "")
    if not value:
        return available_cores()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"MINIGPT_THREADS={value!r} must be a positive integer")
    return int(value)


def configure(threads: int | None = None) -> int:
    """Apply minigpt's process-wide settings (above); return the thread count."""
    keep_freed_memory()
    return set_threads(threads)


def set_threads(n: int | None = None) -> int:
    """Use n threads (default: default_threads()) in BLAS and the C kernels' OpenMP."""
    global _threads
    n = default_threads() if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    _threads = n
    # imported here, not at the top: importing threadpoolctl sets KMP_DUPLICATE_LIB_OK in os.environ, and importing
    # minigpt changes nothing in the process (tests/test_runtime.py)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)  # BLAS, and the OpenMP runtimes already loaded
    for set_count in _pools:
        set_count(n)
    return n


def threads() -> int | None:
    """The count set_threads() set, or None before it was called."""
    return _threads


def add_pool(set_count: Callable[[int], None]) -> None:
    """A thread pool that has just loaded (the C kernels' OpenMP, minigpt/backends/c): set_count(n) gives it n threads,
    now if set_threads() was called already, and at every later call."""
    _pools.append(set_count)
    if _threads is not None:
        set_count(_threads)


def keep_freed_memory() -> bool:
    """Have glibc's malloc reuse freed memory instead of returning it to the kernel; True if it did."""
    try:
        # the symbols the process has loaded, the C library's among them: ctypes.util.find_library("c") would run
        # ldconfig in a process of its own for the same answer
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl): nothing to do
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_UP_TO))


def available_memory() -> int | None:
    """Bytes of memory the system can still hand out without swapping (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(need: int, what: str, fix: str) -> None:
    """Refuse, before allocating anything, `what` that needs `need` bytes when the machine has fewer available:
    one line that says how much it would take, how much there is, and `fix`. (Otherwise the allocation fails
    with a MemoryError deep inside NumPy, or the machine swaps until it stops.)"""
    have = available_memory()
    if have is not None and need > have:
        raise MemoryError(f"{what} would need about {format_bytes(need)} of memory and this machine has "
                          f"{format_bytes(have)} available; {fix}")


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} EB"  # pragma: no cover
