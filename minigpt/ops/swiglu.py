"""SwiGLU, the gate of Llama's and Qwen's MLP: out = silu(gate) * up, elementwise, where gate = x W_gate^T and
up = x W_up^T are two projections of the same input and silu(g) = g sigmoid(g) (Hugging Face's `silu`, also called
swish). The MLP is down(silu(gate(x)) * up(x)): this op is the part between the projections.

Math and derivation: docs/ops/swiglu.md. Test: tests/ops/test_swiglu.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype, check_shape


class SwiGLUCache(NamedTuple):
    gate: np.ndarray  # (...) the gate's pre-activation g; the backward recomputes sigmoid(g) from it
    up: np.ndarray  # (...) the other projection u


def sigmoid(g):
    """1 / (1 + exp(-g)), computed from exp(-|g|) so that no exponential overflows: for g < 0 it is
    exp(g) / (1 + exp(g)), the same number."""
    e = np.exp(-np.abs(g))  # (...) in (0, 1]
    return np.where(g >= 0, 1.0, e) / (1.0 + e)  # (...)


# --8<-- [start:forward]
def forward(gate, up, kernels=NUMPY):
    """gate (...), up (...) of one shape -> out (...) = silu(gate) * up. kernels: a backend's table
    (minigpt/backends); NUMPY: the NumPy kernel below."""
    check_shape("swiglu up", up, gate.shape)
    check_same_dtype("swiglu", gate=gate, up=up)
    return kernels.swiglu.forward_kernel(gate, up), SwiGLUCache(gate, up)


def forward_kernel(gate, up):
    return gate * sigmoid(gate) * up  # (...) silu(g) u
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, kernels=NUMPY):
    """dout (...) -> dgate (...), dup (...)."""
    check_shape("swiglu dout", dout, cache.gate.shape)
    check_same_dtype("swiglu backward", dout=dout, gate=cache.gate)
    return kernels.swiglu.backward_kernel(dout, cache.gate, cache.up)


def backward_kernel(dout, gate, up):
    s = sigmoid(gate)  # (...)
    silu = gate * s  # (...)
    # d silu / dg = s + g s (1 - s) = s (1 + g (1 - s)), docs/ops/swiglu.md eq. (SiLU-dg)
    dgate = dout * up * (s * (1.0 + gate * (1.0 - s)))  # (...)
    dup = dout * silu  # (...)
    return dgate, dup
# --8<-- [end:backward]
