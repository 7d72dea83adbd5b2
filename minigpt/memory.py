"""Large arrays without page faults.

glibc's malloc takes every allocation of 128 KB or more straight from the kernel (mmap) and gives it
back when it is freed (munmap). A training step allocates the same large arrays every time (logits and
their gradient, (B, T, V); the tied head's (V, C) weight gradient; the MLP's activations), so every step
the kernel has to map fresh pages and zero them before NumPy can write a byte: for GPT-2 small that was
about 15% of a step on this machine (docs/kernels.md). keep_freed_memory() tells malloc to serve large
allocations from its heap too and to keep freed memory there for the next step: after the first step,
the process's memory stays at its peak and no page is faulted in again.

`minigpt train` calls it; call it yourself in a training loop of your own. It changes the whole process's
malloc, and it does nothing where the C library is not glibc.
"""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # mallopt's parameters, from glibc's malloc.h
M_MMAP_MAX = -4
KEEP_UP_TO = 2**31 - 1  # bytes of free memory at the top of the heap kept rather than returned (mallopt takes an int)


def keep_freed_memory() -> bool:
    """Have glibc's malloc reuse freed memory instead of returning it to the kernel; True if it did."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_UP_TO))
