"""One thread count for every pool minigpt uses: BLAS (NumPy's matmuls), numba's parallel loops and the
C kernels' OpenMP. The ops run one after another, so each pool may use all N cores in turn; N larger
than the machine's cores only makes the pools fight. `--threads N` calls set_threads(N).

Idle threads that spin make the pools fight even so: OpenBLAS's workers spin for about 0.1 s after
every matmul, and OpenMP's (numba's and the C kernels') after every parallel loop, and on 2 cores a
training step then took six times as long (docs/kernels.md#threads). Both runtimes read their setting
once, when they load, so quiet_idle_threads() runs when minigpt is imported, before NumPy loads OpenBLAS
if minigpt is imported first. If another library (PyTorch, say) has already started the OpenMP runtime
with spinning threads, the numba backend uses numba's own thread pool instead.
"""

import ctypes
import os
import sys

from threadpoolctl import threadpool_limits

OPENMP_SPINS = False  # set by quiet_idle_threads(): the OpenMP runtime was started before minigpt could quiet it


def quiet_idle_threads() -> None:
    """Ask OpenBLAS and OpenMP to put idle threads to sleep at once; an explicit setting wins."""
    global OPENMP_SPINS
    if "OMP_WAIT_POLICY" not in os.environ:
        try:
            ctypes.CDLL("libgomp.so.1", mode=getattr(os, "RTLD_NOLOAD", 4))  # already loaded? (it raises if not)
            OPENMP_SPINS = True
        except OSError:
            pass
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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
