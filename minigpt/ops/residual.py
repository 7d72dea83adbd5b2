"""Residual connection: x_out = x + f(x), and its backward, g + (df/dx)^T g: each one addition of two arrays of the
stream's shape, into the second, the branch's new array (its output; its input's gradient), which nothing else holds.
Nothing is cached: the backward needs no saved value.

Math and derivation: docs/ops/residual.md. Test: the whole models' gradient checks (tests/test_model.py), and
tests/ops/test_residual.py.
"""

import numpy as np

from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype


# --8<-- [start:add]
def add(x, a, kernels=NUMPY):
    """x (...) + a (...), written into a and returned: the stream plus a branch's output (forward), or the stream's
    gradient plus the branch's input gradient (backward). kernels: a backend's table (minigpt/backends)."""
    check_same_dtype("residual", x=x, a=a)
    if x.shape != a.shape:
        raise ValueError(f"residual: x has shape {x.shape} and a {a.shape}; they must be the same")
    return kernels.residual.add_kernel(x, a)


def add_kernel(x, a):
    """The kernel: a = x + a, in place."""
    return np.add(x, a, out=a)  # (...)
# --8<-- [end:add]
