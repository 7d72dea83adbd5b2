"""SwiGLU through the C kernels (kernels/swiglu.c). Same contract as minigpt/ops/swiglu.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def forward_kernel(gate, up):
    check_contiguous("swiglu", gate=gate, up=up)
    out = np.empty_like(gate)  # (...)
    kernel("swiglu_forward", gate.dtype)(ptr(out), ptr(gate), ptr(up), gate.size)
    return out


def backward_kernel(dout, gate, up):
    check_contiguous("swiglu backward", dout=dout, gate=gate, up=up)
    dgate, dup = np.empty_like(gate), np.empty_like(gate)  # (...) x2
    kernel("swiglu_backward", gate.dtype)(ptr(dgate), ptr(dup), ptr(dout), ptr(gate), ptr(up), gate.size)
    return dgate, dup
