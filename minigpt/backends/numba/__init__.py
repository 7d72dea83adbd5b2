"""numba kernels for the memory-bound ops: each makes one or two passes over memory where the NumPy
reference makes several, and runs its outer loop in parallel. Matmuls stay with BLAS (NumPy's `@`).
Every kernel writes into arrays its Python wrapper allocates, and uses the names of its reference op.
docs/kernels.md explains each; tests/test_backends.py proves each equal to the reference."""

import os
from contextlib import contextmanager

from minigpt import threads
from minigpt.data.text import cache_dir

# numba caches compiled kernels (cache=True) next to the source by default; keep them out of the tree.
os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))

if threads.OPENMP_SPINS:  # OpenMP's threads would spin between our loops (minigpt/threads.py): use numba's own pool
    import numba

    numba.config.THREADING_LAYER = "workqueue"


PARALLEL_MIN = 1 << 15  # elements: below this a kernel runs on one thread, as waking the others costs more


@contextmanager
def threads_for(size: int):
    """Run the parallel loops launched inside on one thread when the work is small (decoding one token
    at a time, say): each launch would otherwise wait tens of microseconds for sleeping threads."""
    if size >= PARALLEL_MIN:
        yield
        return
    import numba

    n = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(n)
