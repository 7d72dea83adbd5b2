"""Which kernels compute the ops: one switch, `GPT(cfg, backend=...)` and `--backend`, resolved once into a table.

Each op of minigpt/ops owns its contract (the input checks and its one cache) and its reference kernels: the readable
NumPy functions whose names end in `_kernel`, array in and array out. A backend is a package of modules named as the
ops, minigpt/backends/<backend>/<op>.py, each holding kernels of the same names and arguments; for an op it has no
module for, a backend keeps the reference's. `kernels_for` builds a backend's table once, and whoever computes (the
model, the optimizer) hands that table to the ops it calls:

    kernels = backends.kernels_for("auto")        # kernels.name == "c", say: the backend that loaded
    kernels.layernorm                             # minigpt/backends/c/layernorm.py: forward_kernel, backward_kernel
    out, cache = layernorm.forward(x, w, b, kernels=kernels)

    numpy   the reference: the NumPy kernels in minigpt/ops and minigpt/optim.py, the code the docs explain (its
            table has the modules of NUMPY, minigpt/ops/reference.py, the ops' default)
    numba   minigpt/backends/numba: fused loops for everything but the matmuls, which stay with NumPy's BLAS
    c       minigpt/backends/c: the C kernels of kernels/, bound with cffi
    auto    the fastest that loads, in the order AUTO_ORDER (measured by benchmarks/bench.py)

A backend that cannot load (numba not installed, no C compiler) is reported in one warning line, and the reference is
used instead. This module imports the ops, never the reverse. tests/test_backends.py proves every kernel of every
backend equal to the reference's. Adding an op, and the files it takes: docs/kernels.md#adding-an-op.
"""

import importlib
import sys
import time
from types import ModuleType, SimpleNamespace

from minigpt import ops
from minigpt.config import BACKENDS
from minigpt.ops.reference import NUMPY

NAMES = tuple(name for name in BACKENDS if name != "auto")
AUTO_ORDER = ("c", "numba", "numpy")  # fastest first, as benchmarks/bench.py measured it (docs/kernels.md)
# what a backend can compute, by name (its module's in minigpt/ops, and in a backend's package), with the module of
# its reference kernels, NUMPY's: every op of minigpt/ops (its list, ops.__all__), and the optimizer's update
REFERENCE = {op: getattr(NUMPY, op) for op in (*ops.__all__, "optim")}


def kernel_names(module: ModuleType) -> list:
    """The kernels of a reference module: its functions whose names end in _kernel."""
    return [name for name, f in vars(module).items() if name.endswith("_kernel") and callable(f)]


def table(name: str) -> SimpleNamespace:
    """Backend `name`'s kernels, imported: kernels.name, and for each op of REFERENCE, kernels.<op>, the module whose
    kernels compute it. Raises ImportError or OSError if the backend cannot run here."""
    if name == "numpy":
        return SimpleNamespace(name=NUMPY.name, **REFERENCE)  # NUMPY's modules: the kernels the ops default to
    package = importlib.import_module(f"minigpt.backends.{name}")  # ImportError: numba is not installed, say
    package.prepare()  # the C backend compiles and loads its library here (OSError: no compiler)
    modules = {}
    for op, reference in REFERENCE.items():
        try:
            module = importlib.import_module(f"minigpt.backends.{name}.{op}")
        except ModuleNotFoundError as e:
            if e.name != f"minigpt.backends.{name}.{op}":
                raise
            module = reference  # none of its own: the reference's (numba's matmuls are NumPy's BLAS)
        missing = [kernel for kernel in kernel_names(reference) if not callable(getattr(module, kernel, None))]
        if missing:
            raise AttributeError(f"{module.__file__} has no {missing[0]}, which {reference.__name__} has: every kernel "
                                 f"of an op's reference needs one in a backend's module for that op")
        modules[op] = module
    return SimpleNamespace(name=name, **modules)


_tables = {}  # name -> its table, or None for a backend that failed to load


def kernels_for(name: str = "auto") -> SimpleNamespace:
    """The table of kernels to compute with when backend `name` is asked for: backend `name`'s if it loads, the
    reference's (with one warning line on stderr) if it does not, and for "auto" the first of AUTO_ORDER that loads.
    Its `name` says which backend it is. Each backend is loaded once per process."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        return next(kernels for kernels in (_table_or_none(candidate, warn=False) for candidate in AUTO_ORDER)
                    if kernels is not None)
    return _table_or_none(name, warn=True) or _table_or_none("numpy")


def _table_or_none(name: str, warn: bool = True) -> SimpleNamespace | None:
    """Backend `name`'s table, built once per process, or None if it cannot load here (said in one line on stderr
    if warn)."""
    if name not in _tables:
        try:
            _tables[name] = table(name)
        except (ImportError, OSError) as e:
            _tables[name] = None
            if warn:
                reason = " ".join(str(e).split())
                print(f"minigpt: warning: the {name} backend is not available ({reason}); using numpy", file=sys.stderr)
    return _tables[name]


def traced(kernels: SimpleNamespace, record) -> SimpleNamespace:
    """The same kernels, each of which also calls record(op, kernel, args, result, seconds) after it runs: what the
    model computes, in the order it computes it (minigpt inspect's data flow, benchmarks/profile_step.py)."""
    def timed(op, name, kernel):
        def call(*args):
            t0 = time.perf_counter()
            result = kernel(*args)
            record(op, name, args, result, time.perf_counter() - t0)
            return result
        return call

    return SimpleNamespace(name=kernels.name, **{
        op: SimpleNamespace(**{name: timed(op, name, getattr(getattr(kernels, op), name))
                               for name in kernel_names(reference)})
        for op, reference in REFERENCE.items()})
