"""GELU, the tanh approximation GPT-2 uses (Hugging Face's `gelu_new`):
out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

Math and derivation: docs/ops/gelu.md. Test: tests/ops/test_gelu.py.
"""

import math
from typing import NamedTuple

import numpy as np

GELU_SCALE = math.sqrt(2.0 / math.pi)  # sqrt(2/pi)
GELU_CUBIC = 0.044715


class GeluCache(NamedTuple):
    x: np.ndarray  # the input; backward recomputes tanh from it rather than storing a second array


# --8<-- [start:forward]
def forward(x):
    """x (...) -> out (...), elementwise."""
    u = GELU_SCALE * (x + GELU_CUBIC * x * x * x)  # (...) x*x*x, not x**3: NumPy computes a float power ~200x slower
    out = 0.5 * x * (1.0 + np.tanh(u))  # (...)
    return out, GeluCache(x)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache):
    """dout (...) -> dx (...)."""
    x = cache.x
    u = GELU_SCALE * (x + GELU_CUBIC * x * x * x)  # (...) x*x*x, not x**3: NumPy computes a float power ~200x slower
    th = np.tanh(u)  # (...)
    du_dx = GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * x * x)  # (...)
    # d/dx [0.5 x (1 + tanh u)] = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx   (docs/ops/gelu.md)
    dx = dout * (0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du_dx)  # (...)
    return dx
# --8<-- [end:backward]
