"""GELU, the tanh approximation GPT-2 uses (Hugging Face's `gelu_new`):
out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

Math and derivation: docs/ops/gelu.md. Test: tests/ops/test_gelu.py.
"""

import math
from typing import NamedTuple

import numpy as np

from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype, check_shape

GELU_SCALE = math.sqrt(2.0 / math.pi)  # sqrt(2/pi)
GELU_CUBIC = 0.044715


class GeluCache(NamedTuple):
    x: np.ndarray  # the input; backward recomputes tanh from it rather than storing a second array


# --8<-- [start:forward]
def forward(x, kernels=NUMPY):
    """x (...) -> out (...), elementwise. kernels: a backend's table (minigpt/backends); NUMPY: the NumPy kernel
    below."""
    check_same_dtype("gelu", x=x)
    return kernels.gelu.forward_kernel(x), GeluCache(x)


def forward_kernel(x):
    u = GELU_SCALE * (x + GELU_CUBIC * x * x * x)  # (...) x*x*x, not x**3: NumPy computes a float power ~200x slower
    return 0.5 * x * (1.0 + np.tanh(u))  # (...)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, kernels=NUMPY):
    """dout (...) -> dx (...)."""
    check_shape("gelu dout", dout, cache.x.shape)
    check_same_dtype("gelu backward", dout=dout, x=cache.x)
    return kernels.gelu.backward_kernel(dout, cache.x)


def backward_kernel(dout, x):
    u = GELU_SCALE * (x + GELU_CUBIC * x * x * x)  # (...)
    th = np.tanh(u)  # (...)
    du_dx = GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * x * x)  # (...)
    # d/dx [0.5 x (1 + tanh u)] = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx   (docs/ops/gelu.md)
    return dout * (0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du_dx)  # (...)
# --8<-- [end:backward]
