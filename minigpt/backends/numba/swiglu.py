"""SwiGLU: out = silu(gate) * up in one pass forward, and dgate, dup in one pass backward, recomputing the sigmoid
(from exp(-|g|), which never overflows) with the vectorisable exp of minigpt/backends/numba.
Reference: minigpt/ops/swiglu.py; math: docs/ops/swiglu.md."""

import numba
import numpy as np

from minigpt.backends.numba import OPTIONS, compile_once, exp
from minigpt.validate import check_contiguous


# --8<-- [start:kernels]
@numba.njit(**OPTIONS)
def forward_loops(out, gate, up):
    """gate (n,), up (n,) -> out (n,) = g sigmoid(g) u"""
    one = gate.dtype.type(1)
    for i in range(gate.shape[0]):
        g = gate[i]
        e = exp(-abs(g))  # in (0, 1]: sigmoid(g) = 1 / (1 + e) for g >= 0, e / (1 + e) below
        s = (one if g >= 0 else e) / (one + e)
        out[i] = g * s * up[i]


@numba.njit(**OPTIONS)
def backward_loops(dgate, dup, dout, gate, up):
    """dout (n,) -> dgate (n,) = dout u s (1 + g (1 - s)), eq. (SiLU-dg); dup (n,) = dout g s"""
    one = gate.dtype.type(1)
    for i in range(gate.shape[0]):
        g = gate[i]
        e = exp(-abs(g))
        s = (one if g >= 0 else e) / (one + e)
        dgate[i] = dout[i] * up[i] * (s * (one + g * (one - s)))
        dup[i] = dout[i] * (g * s)
# --8<-- [end:kernels]


@compile_once
def forward_kernel(gate, up):
    check_contiguous("swiglu", gate=gate, up=up)
    out = np.empty_like(gate)  # (...)
    forward_loops(out.reshape(-1), gate.reshape(-1), up.reshape(-1))
    return out


@compile_once
def backward_kernel(dout, gate, up):
    check_contiguous("swiglu backward", dout=dout, gate=gate, up=up)
    dgate, dup = np.empty_like(gate), np.empty_like(gate)  # (...) x2
    backward_loops(dgate.reshape(-1), dup.reshape(-1), dout.reshape(-1), gate.reshape(-1), up.reshape(-1))
    return dgate, dup
