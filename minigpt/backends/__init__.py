"""Which kernels compute the ops: one switch, `GPT(cfg, backend=...)` and `--backend`.

Each op of minigpt/ops owns its contract: the input checks, its one cache, and a readable NumPy kernel.
A backend is a table of kernels for those contracts, array in and array out, with the same names and
arguments as the reference's (`Kernels` below), so every op computes with any backend the same way:

    numpy   the reference: the NumPy kernels in minigpt/ops, the code the docs explain
    numba   minigpt/backends/numba: fused loops for everything but the matmuls, which stay with BLAS
    c       minigpt/backends/c: the C kernels of kernels/, bound with cffi
    auto    the fastest that loads, in the order AUTO_ORDER (measured by benchmarks/bench.py)

A backend that cannot load (numba not installed, no C compiler) is reported in one warning line, and the
reference is used instead. tests/test_backends.py proves every kernel of every backend equal to the
reference's. Docs: docs/kernels.md.
"""

import sys
from typing import Callable, NamedTuple

from minigpt import runtime

NAMES = ("numpy", "numba", "c")
CHOICES = (*NAMES, "auto")
AUTO_ORDER = ("c", "numba", "numpy")  # fastest first, as benchmarks/bench.py measured it (docs/kernels.md)


class Kernels(NamedTuple):
    """One backend's kernels. The reference's are named in the comments; each op's docstring gives the shapes.
    Every kernel takes arrays of one dtype (float32 or float64, checked by the op) and returns new C-contiguous
    arrays of that dtype; a compiled kernel may also require C-contiguous inputs, and raises if they are not."""

    name: str
    embedding_forward: Callable  # minigpt.ops.embedding.forward_kernel(idx, wte, wpe, start) -> out
    embedding_backward: Callable  # minigpt.ops.embedding.backward_kernel(dwte, dwpe, dout, idx, start), adds into
    linear_forward: Callable  # minigpt.ops.linear.forward_kernel(x, w, b) -> out
    linear_backward: Callable  # minigpt.ops.linear.backward_kernel(dout, x, w, has_bias) -> dx, dw, db
    layernorm_forward: Callable  # minigpt.ops.layernorm.forward_kernel(x, w, b, eps) -> out, mean, rstd
    layernorm_backward: Callable  # minigpt.ops.layernorm.backward_kernel(dout, x, mean, rstd, w, has_bias) -> dx, dw, db
    attention_forward: Callable  # minigpt.ops.attention.forward_kernel(qkv, n_head, P, mask) -> y, lse
    attention_backward: Callable  # minigpt.ops.attention.backward_kernel(dy, qkv, y, lse, n_head, mask) -> dqkv
    gelu_forward: Callable  # minigpt.ops.gelu.forward_kernel(x) -> out
    gelu_backward: Callable  # minigpt.ops.gelu.backward_kernel(dout, x) -> dx
    cross_entropy_forward: Callable  # minigpt.ops.cross_entropy.forward_kernel(logits, targets) -> nll, lse
    cross_entropy_backward: Callable  # minigpt.ops.cross_entropy.backward_kernel(logits, lse, targets, weight) -> dlogits
    dropout: Callable  # minigpt.ops.dropout.apply(x, mask) -> x * mask, forward and backward
    adamw_update: Callable  # minigpt.optim.adamw_update(p, g, m, v, lr, ...), in place


def numpy_kernels() -> Kernels:
    from minigpt.ops import attention, cross_entropy, dropout, embedding, gelu, layernorm, linear
    from minigpt.optim import adamw_update

    return Kernels(
        "numpy",
        embedding.forward_kernel, embedding.backward_kernel,
        linear.forward_kernel, linear.backward_kernel,
        layernorm.forward_kernel, layernorm.backward_kernel,
        attention.forward_kernel, attention.backward_kernel,
        gelu.forward_kernel, gelu.backward_kernel,
        cross_entropy.forward_kernel, cross_entropy.backward_kernel,
        dropout.apply,
        adamw_update,
    )


def numba_kernels() -> Kernels:
    from minigpt.backends.numba import adamw, attention, compile_once, cross_entropy, dropout, embedding, gelu, layernorm
    from minigpt.ops import linear

    return Kernels(
        "numba",
        compile_once(embedding.forward_kernel), compile_once(embedding.backward_kernel),
        linear.forward_kernel, linear.backward_kernel,  # NumPy's BLAS: the fastest matmul there is here
        compile_once(layernorm.forward_kernel), compile_once(layernorm.backward_kernel),
        compile_once(attention.forward_kernel), compile_once(attention.backward_kernel),
        compile_once(gelu.forward_kernel), compile_once(gelu.backward_kernel),
        compile_once(cross_entropy.forward_kernel), compile_once(cross_entropy.backward_kernel),
        compile_once(dropout.apply),
        compile_once(adamw.adamw_update),
    )


def c_kernels() -> Kernels:
    from minigpt.backends import c
    from minigpt.backends.c import adamw, attention, cross_entropy, dropout, embedding, gelu, layernorm, linear

    c.lib()  # compiled now, if need be, and loaded: a failure here means "unavailable"
    return Kernels(
        "c",
        embedding.forward_kernel, embedding.backward_kernel,
        linear.forward_kernel, linear.backward_kernel,
        layernorm.forward_kernel, layernorm.backward_kernel,
        attention.forward_kernel, attention.backward_kernel,
        gelu.forward_kernel, gelu.backward_kernel,
        cross_entropy.forward_kernel, cross_entropy.backward_kernel,
        dropout.apply,
        adamw.adamw_update,
    )


LOADERS = {"numpy": numpy_kernels, "numba": numba_kernels, "c": c_kernels}
_loaded = {}  # name -> Kernels, or None for a backend that failed to load


def kernels(name: str) -> Kernels:
    """The kernels of backend `name` (one of NAMES), loaded on first use. Ops call this on every call,
    so after the first it is a dictionary lookup."""
    k = _loaded.get(name)
    if k is None:
        k = _load(name)
        if k is None:
            raise ValueError(f"the {name} backend is not available; resolve() the backend first")
    return k


def resolve(name: str = "auto") -> str:
    """The backend to use for `name`: itself if it loads, the reference (with one warning line on stderr)
    if it does not, and for "auto" the first of AUTO_ORDER that loads."""
    if name not in CHOICES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(CHOICES)}")
    if name == "auto":
        return next(candidate for candidate in AUTO_ORDER if _load(candidate, warn=False) is not None)
    return name if _load(name, warn=True) is not None else "numpy"


def _load(name: str, warn: bool = True):
    if name not in _loaded:
        try:
            _loaded[name] = LOADERS[name]()
            runtime.apply_threads()  # its thread pool gets the count minigpt.runtime.configure() set
        except (ImportError, OSError) as e:
            _loaded[name] = None
            if warn:
                reason = " ".join(str(e).split())
                print(f"minigpt: warning: the {name} backend is not available ({reason}); using numpy", file=sys.stderr)
    return _loaded[name]
