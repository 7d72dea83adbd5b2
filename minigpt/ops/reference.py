"""The reference kernels as a table: `NUMPY.<op>` is minigpt/ops/<op>.py itself (and `NUMPY.optim`, minigpt/optim.py),
whose functions named *_kernel are the readable NumPy code the docs explain.

Every op takes the table of kernels it computes with, `kernels`, and calls `kernels.<op>.<name>_kernel`: the model
hands it its backend's table (minigpt/backends), and a call without one, a test's or a reader's, computes with this one:

    out, cache = layernorm.forward(x, w, b)                     # kernels=NUMPY: layernorm.forward_kernel
    out, cache = layernorm.forward(x, w, b, kernels=model.kernels)

The modules are found when first asked for, not imported here: this module sits below the ops, which name NUMPY as
their default, so it cannot import them.
"""

import importlib
from types import ModuleType


class Reference:
    """The table of the NumPy kernels: an attribute per op, the op's module."""

    name = "numpy"

    def __getattr__(self, op: str) -> ModuleType:
        if op.startswith("__"):  # (copy, pickle and the like ask for dunders: not ops)
            raise AttributeError(op)
        return importlib.import_module("minigpt.optim" if op == "optim" else f"minigpt.ops.{op}")


NUMPY = Reference()
