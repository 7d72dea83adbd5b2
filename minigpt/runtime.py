"""Process-wide settings that make minigpt fast, applied by one explicit call:

    import minigpt.runtime
    minigpt.runtime.configure(threads=None)   # the `minigpt` command, the tests and the benchmarks call it

Importing minigpt changes nothing in the process; this call changes, for the whole process:

- threads: one count N (default: $MINIGPT_THREADS, else the cores this process may use that other programs leave
  free: free_cores) for both pools minigpt uses: BLAS (NumPy's matmuls, the numpy and numba backends) and the C
  kernels' OpenMP threads. The ops run one after another, so each pool may use all N cores in turn; more threads than
  cores only make the pools fight. A core another program keeps busy counts as taken: a thread given work there waits
  for its turn on it, and every parallel loop waits for its slowest thread. (numba's kernels run on the calling
  thread: minigpt/backends/numba.)
- waiting: a pool's threads wait busy (spin) after their work, so that the next op starts at once, then sleep. Spun
  long, that is time taken from the program that holds the core another thread needs. WAITING shortens the spin of
  OpenBLAS (about 0.1 s by default) and of OpenMP (GNU's 300,000 turns, LLVM's 200 ms) to about as long as the gap
  between two ops of a step: a step keeps its threads awake, and a pause between phases lets them sleep. Each
  library reads these once, as it loads, so configure() sets them first (a value already in the environment wins)
  and then loads NumPy.
- memory: glibc's malloc takes every allocation of 128 KB or more straight from the kernel (mmap) and gives it back
  when freed (munmap). A training step allocates the same large arrays every time, so every step the kernel would
  map fresh pages and zero them before NumPy could write a byte (twice the time of a recipe matmul on the machine
  of docs/kernels.md). malloc is told to keep freed memory for the next step: after the first step the process's
  memory stays at its peak and no page is faulted in again. Nothing happens where the C library is not glibc.

The threads and the memory can be set at any time, after NumPy was imported or not, so their speed does not depend on
import order (benchmarks/bench.py measures both orders); the waiting reaches the libraries that load after the call:
the C kernels' OpenMP always (it loads with the backend), NumPy's OpenBLAS when NumPy was not imported before it (the
`minigpt` command calls configure() first). benchmarks/busy.py measures the command with other programs running.
"""

import ctypes
import os
from typing import Callable

_threads = None  # the count set_threads() set, applied to a pool that loads later (add_pool)
_pools = []  # a function per thread pool loaded since the process started that set_threads() cannot reach otherwise

M_TRIM_THRESHOLD = -1  # mallopt's parameters, from glibc's malloc.h
M_MMAP_MAX = -4
KEEP_UP_TO = 2**31 - 1  # bytes of free memory at the top of the heap kept rather than returned (mallopt takes an int)


# How long an idle thread of a pool spins before it sleeps, for each library that reads it as it loads
WAITING = {
    "OPENBLAS_THREAD_TIMEOUT": "20",  # OpenBLAS (NumPy's): 2^20 cycles, about 0.3 ms (its default, 2^28: 0.1 s)
    "GOMP_SPINCOUNT": "10000",  # GNU OpenMP (the C kernels', compiled by gcc): 10,000 turns, not 300,000
    "KMP_BLOCKTIME": "1",  # LLVM's and Intel's OpenMP (the C kernels', compiled by clang): 1 ms, not 200 ms
}


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """The thread count when none is given: $MINIGPT_THREADS if set (e.g. 1 per process when several share the
    machine), else the cores this process may use that other programs leave free (free_cores; every one of them
    where the machine's load cannot be read)."""
    value = os.environ.get("MINIGPT_THREADS", "")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"MINIGPT_THREADS={value!r} must be a positive integer")
        return int(value)
    cores, load = available_cores(), machine_load()
    if load is None:
        return cores
    average, running = load
    return free_cores(cores, os.cpu_count() or cores, average, running)


def free_cores(cores: int, machine_cores: int, load: float, running: int) -> int:
    """How many of the `cores` this process may use other programs leave free, at least 1. What the others keep busy
    is the smaller of two measures, so that only a program that has kept cores busy and still does counts: the load
    average over the last minute (a build or a run that has just ended leaves it high, with nothing running), and the
    threads running now (a program that has just woken runs, with no load yet). Both are the whole machine's, of
    `machine_cores`: the share of them on this process's cores is taken in proportion (all of it on a laptop)."""
    busy = min(load, running) * cores / max(cores, machine_cores)  # cores' worth of work by others, on ours
    return max(1, cores - int(busy + 0.5))


def machine_load() -> tuple[float, int] | None:
    """(the load average over the last minute, how many threads of other processes run or wait to run now) from
    Linux's /proc; None elsewhere. This process's own threads (a pool's, spinning) are not counted as others'."""
    try:
        with open("/proc/loadavg") as f:
            fields = f.read().split()  # "1.02 0.80 0.55 3/412 8721": the last 1, 5 and 15 minutes, running/all, last pid
        average, running = float(fields[0]), int(fields[3].split("/")[0])
        tasks = os.listdir("/proc/self/task")
    except (OSError, ValueError, IndexError):
        return None
    own = 0
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat") as f:
                own += f.read().rpartition(")")[2].split()[0] == "R"  # the state follows the name in parentheses
        except (OSError, IndexError):  # (a thread that has just ended)
            continue
    return average, max(0, running - own)


def configure(threads: int | None = None) -> int:
    """Apply minigpt's process-wide settings (above); return the thread count. Call it before NumPy is imported, as
    the `minigpt` command does: NumPy's OpenBLAS reads how its threads wait once, as it loads (it is loaded here)."""
    wait_briefly()
    import numpy  # noqa: F401  (OpenBLAS loads now, with WAITING, and its threads get the count below)

    keep_freed_memory()
    return set_threads(threads)


def wait_briefly() -> dict:
    """Put each of WAITING in the environment, unless it is set there already (the user's own settings win), for the
    thread pools that load from now on; return what was set."""
    chosen = {name: value for name, value in WAITING.items() if name not in os.environ}
    os.environ.update(chosen)
    return chosen


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


def within_cores(n: int | None, say: Callable[[str], None]) -> int | None:
    """A thread count given by the user (--threads; None: default_threads()), at most the cores this process may
    use: more threads than cores only take turns on them, each waiting for the others. A larger count is capped and
    said, not refused, so that a run saved with --threads 8 resumes on a machine of 2 cores."""
    cores = available_cores()
    if n is None or n <= cores:
        return n
    say(f"--threads {n} is more than the {cores} cores this process may use: using {cores}")
    return cores


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
