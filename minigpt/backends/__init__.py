"""One switch for how the ops are computed: GPT(cfg, backend=...) and `--backend`.

    numpy   the reference: minigpt/ops, plain NumPy, the code the docs explain
    numba   numba kernels for the memory-bound ops (layer norm, GELU, cross-entropy, the embedding's
            scatter-add, AdamW, and attention when its (B, nh, T, T) scores would be large);
            matmuls with NumPy's BLAS
    c       the C kernels of kernels/ for matmul, layer norm and GELU (OpenMP threads), the fused
            attention always; the rest as numba (or the reference where numba is missing)
    auto    the fastest that loads: numba, else numpy (benchmarks/bench.py measured the c backend slower
            than NumPy's BLAS on this machine's matmuls; docs/kernels.md)

A backend that cannot load (numba not installed, no C compiler) falls back to the reference with one
warning line on stderr. Every backend computes the reference's forward and backward: tests/test_backends.py.
"""

import sys
from typing import Callable, NamedTuple

NAMES = ("numpy", "numba", "c", "auto")
AUTO_ORDER = ("numba", "numpy")  # fastest first, as benchmarks/bench.py measured it (docs/kernels.md)


class Backend(NamedTuple):
    name: str
    embedding: object  # each op: an object with forward(...) -> (out, cache) and backward(dout, cache)
    linear: object
    layernorm: object
    attention: object
    gelu: object
    cross_entropy: object
    dropout: object
    adamw_update: Callable  # one parameter's AdamW step, as minigpt.optim.adamw_update


def numpy_backend() -> Backend:
    from minigpt import ops
    from minigpt.optim import adamw_update

    return Backend("numpy", ops.embedding, ops.linear, ops.layernorm, ops.attention, ops.gelu,
                   ops.cross_entropy, ops.dropout, adamw_update)


def numba_backend() -> Backend:
    from minigpt import ops
    from minigpt.backends.numba import adamw, attention, cross_entropy, embedding, gelu, layernorm

    return Backend("numba", embedding, ops.linear, layernorm, attention.Attention(ops.linear), gelu,
                   cross_entropy, ops.dropout, adamw.adamw_update)


def c_backend() -> Backend:
    from minigpt.backends.c import gelu, layernorm, linear

    try:
        from minigpt.backends.numba.attention import Attention

        # always the fused kernel, with its projections through the C matmul too
        rest, attention = numba_backend(), Attention(linear, fused_min_scores=0)
    except ImportError:
        rest = numpy_backend()
        attention = rest.attention
    return rest._replace(name="c", linear=linear, layernorm=layernorm, gelu=gelu, attention=attention)


LOADERS = {"numpy": numpy_backend, "numba": numba_backend, "c": c_backend}
_loaded = {}


def get(name: str = "numpy") -> Backend:
    """The backend called `name`, loading it on first use; the reference if it cannot load."""
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    if name == "auto":
        for candidate in AUTO_ORDER:
            backend = load(candidate, warn=False)
            if backend is not None:
                return backend
    backend = load(name, warn=True)
    return backend if backend is not None else get("numpy")


def load(name: str, warn: bool):
    if name not in _loaded:
        try:
            _loaded[name] = LOADERS[name]()
        except (ImportError, OSError) as e:
            _loaded[name] = None
            reason = " ".join(str(e).split())
            if warn:
                print(f"minigpt: warning: the {name} backend is not available ({reason}); using numpy", file=sys.stderr)
    return _loaded[name]
