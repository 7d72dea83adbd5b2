"""One thread count for every pool minigpt uses: BLAS (NumPy's matmuls), numba's parallel loops and the
C kernels' OpenMP. The ops run one after another, so each pool may use all N cores in turn; N larger
than the machine's cores only makes the pools fight. `--threads N` calls set_threads(N)."""

import os
import sys

from threadpoolctl import threadpool_limits


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_threads(n: int | None = None) -> int:
    """Use n threads (default: every core this process may run on) in BLAS, numba and OpenMP."""
    n = available_cores() if n is None else n
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    threadpool_limits(limits=n)  # BLAS and the OpenMP runtimes already loaded
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if "minigpt.backends.c" in sys.modules:
        sys.modules["minigpt.backends.c"].lib.minigpt_set_threads(n)
    return n
