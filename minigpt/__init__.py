"""minigpt: a minimal, autograd-free GPT-2 in NumPy, with every layer's backward written by hand."""

import os

# OpenBLAS's worker threads spin for about 0.1 s after every matmul before they sleep; the parallel
# kernels of the numba and C backends then fight them for the cores (a training step measured up to
# six times slower on 2 cores). This must be set before NumPy loads OpenBLAS; an explicit setting
# wins. See docs/kernels.md.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from minigpt.config import GPTConfig
from minigpt.model import GPT

__all__ = ["GPT", "GPTConfig"]
__version__ = "0.1.0"
