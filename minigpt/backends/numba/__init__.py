"""numba kernels for every op but the matmuls (which stay with NumPy's BLAS): each makes one pass over
memory, or two, where the NumPy reference makes several. Every kernel has the reference kernel's name and
arguments (minigpt/backends/__init__.py), writes into arrays its Python wrapper allocates, and uses the names of
docs/. docs/kernels.md explains each; tests/test_backends.py proves each equal to the reference.

The kernels run on the calling thread. During a training step NumPy's OpenBLAS keeps its threads busy-waiting
for about 0.1 s after every matmul (in user space: they never yield), so every other core is taken; a numba
parallel loop costs about 200 microseconds to start even on one thread, and on GPT-2 small (B=4, T=64) the
parallel versions of these kernels made no measurable difference to a step (docs/kernels.md). The C backend's
kernels are the ones threaded, with OpenMP.

This file holds what the kernels share: where numba caches them, one compilation at a time (compile_once, which each
kernel's wrapper is decorated with), and exp and tanh written so that the compiler can vectorise them.
"""

import fcntl
import functools
import hashlib
import math
from pathlib import Path

import numba
import numpy as np
from numba import njit, types
from numba.core import caching
from numba.extending import overload

from minigpt.files import cache_dir

HERE = Path(__file__).resolve().parent
# --- where numba caches the compiled kernels ---------------------------------------------------------------

def sources_hash() -> str:
    """numba checks only the file of the kernel it loads from its cache, not the helpers (exp, tanh) the kernel
    inlined from another file: every cached kernel is keyed by all the sources of this backend instead."""
    digest = hashlib.sha256(numba.__version__.encode())
    for path in sorted(HERE.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class CacheLocator(caching._CacheLocator):
    """Caches this backend's kernels (cache=True) in minigpt's cache directory, outside the source tree, without
    touching numba's settings for anyone else's code."""

    def __init__(self, py_func, py_file):
        self._lineno = py_func.__code__.co_firstlineno
        self._path = cache_dir() / "numba" / sources_hash()

    def get_cache_path(self):
        return str(self._path)

    def get_source_stamp(self):
        return self._path.name

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent != HERE:
            return None  # not one of ours: numba's own locators decide
        locator = cls(py_func, py_file)
        try:
            locator.ensure_cache_path()
        except OSError:
            return None  # an unwritable cache: numba's default place, or none
        return locator


if CacheLocator not in caching.CacheImpl._locator_classes:
    caching.CacheImpl._locator_classes.insert(0, CacheLocator)


def compile_once(kernel):
    """kernel (a wrapper that calls numba kernels), whose first call with each dtype, the one that compiles the
    numba kernels it calls or loads them from the cache, runs in one process at a time: processes that start
    together (test workers, MPI ranks) wait for the one compiling (several seconds for attention), then load what
    it cached instead of compiling the same again. Later calls go straight to kernel."""
    ready = set()  # the dtypes kernel has run with in this process

    @functools.wraps(kernel)
    def call(*args):
        dtype = next(a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f")
        if dtype in ready:
            return kernel(*args)
        lock = cache_dir() / "numba" / sources_hash() / f"{kernel.__module__}.{kernel.__name__}.{dtype}.lock"
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            held = open(lock, "w")
        except OSError:  # an unwritable cache: numba compiles in memory (see CacheLocator), nothing to share
            held = None
        try:
            if held is not None:
                fcntl.flock(held, fcntl.LOCK_EX)
            out = kernel(*args)
        finally:
            if held is not None:
                held.close()
        ready.add(dtype)
        return out

    return call


# cache=True: compiled once per machine (see CacheLocator). error_model="numpy": a float division by zero gives
# inf or NaN as in NumPy; numba's default checks every division to raise ZeroDivisionError, and that branch
# stops the compiler from vectorising the loop around it.
OPTIONS = dict(cache=True, error_model="numpy")


def prepare() -> None:
    """Nothing to do when the backend loads (minigpt/backends): that numba imported is all it needs; each kernel
    compiles, or loads from the cache, on its first call with each dtype."""


# --- exp and tanh that vectorise -----------------------------------------------------------------------------
# numba compiles math.exp and math.tanh to calls of the C library's scalar functions, one element at a time.
# These are plain arithmetic, which the compiler turns into vector instructions: exp(x) = 2^n exp(r), with n the
# integer nearest x / ln 2 and |r| <= ln 2 / 2, exp(r) a polynomial, and 2^n made by writing n into the
# exponent bits of a float (2^n = 2^(n-1) * 2 for the largest n, whose bits would read as infinity). Results
# below the smallest normal float are flushed to 0. Within 2 ulp of the exact value (tests/test_backends.py).
# They are functions of their own, which LLVM inlines into each kernel's loop before vectorising it: inlined by numba
# instead (inline="always"), their body was typed again at every use, seconds of compile time per kernel, for the
# same machine code (benchmarks/profile_step.py).

def exp(x):
    """exp(x) in x's precision, vectorisable (float32 or float64, inside a numba kernel)."""
    return math.exp(x)


@njit(error_model="numpy")
def exp_float32(x):
    xc = min(max(x, np.float32(-87.33654)), np.float32(88.72283))  # ln of the smallest normal and largest float32
    t = xc * np.float32(1.4426950408889634) + np.float32(12582912.0)  # adding 1.5 * 2^23 rounds x / ln 2 to n
    n = t - np.float32(12582912.0)
    r = (xc - n * np.float32(0.693359375)) - n * np.float32(-2.12194440e-4)  # x - n ln 2, ln 2 in two parts
    p = np.float32(1.9875691500e-4)  # Cephes' expf polynomial for exp(r)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = (p * r) * r + r + np.float32(1.0)
    n_int = np.float32(t).view(np.int32) - np.int32(0x4B400000)  # n, from the low bits of t
    top = n_int > 127
    two_n = np.int32((n_int - np.int32(top) + np.int32(127)) << np.int32(23)).view(np.float32)
    result = p * two_n * (np.float32(2) if top else np.float32(1))
    if x < np.float32(-87.33654):
        return np.float32(0)
    return np.float32(np.inf) if x > np.float32(88.72283) else result  # NaN stays NaN


@njit(error_model="numpy")
def exp_float64(x):
    xc = min(max(x, -708.3964185322641), 709.782712893384)  # ln of the smallest normal and largest float64
    t = xc * 1.4426950408889634 + 6755399441055744.0  # adding 1.5 * 2^52 rounds x / ln 2 to n
    n = t - 6755399441055744.0
    r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10
    p = 1.0 / 6227020800.0  # Taylor to r^13 / 13!: the next term is below 1e-17 for |r| <= ln 2 / 2
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = (p * r) * r + r + 1.0
    n_int = np.float64(t).view(np.int64) - np.int64(0x4338000000000000)
    top = n_int > 1023
    two_n = np.int64((n_int - np.int64(top) + np.int64(1023)) << np.int64(52)).view(np.float64)
    result = p * two_n * (2.0 if top else 1.0)
    if x < -708.3964185322641:
        return 0.0
    return np.inf if x > 709.782712893384 else result  # NaN stays NaN


@overload(exp)
def _exp(x):
    if x == types.float32:
        return lambda x: exp_float32(x)
    if x == types.float64:
        return lambda x: exp_float64(x)


def tanh(x):
    """tanh(x) = 1 - 2 / (exp(2x) + 1) in x's precision, vectorisable: an absolute error of an ulp or two."""
    return math.tanh(x)


@overload(tanh)
def _tanh(x):
    real = np.float32 if x == types.float32 else np.float64
    one, two = real(1), real(2)
    return lambda x: one - two / (exp(two * x) + one)
