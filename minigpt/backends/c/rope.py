"""Rotary embeddings through the C kernels (kernels/rope.c): one kernel, which turns by the angles forward and by
their opposites backward. Same contract as minigpt/ops/rope.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def forward_kernel(x, cos, sin):
    B, T, nh, hs = x.shape
    check_contiguous("rope", x=x, cos=cos, sin=sin)
    out = np.empty_like(x)  # (B, T, nh, hs)
    kernel("rope_rotate", x.dtype)(ptr(out), ptr(x), ptr(cos), ptr(sin), B, T, nh, hs, 1)
    return out


def backward_kernel(dout, cos, sin):
    B, T, nh, hs = dout.shape
    check_contiguous("rope backward", dout=dout, cos=cos, sin=sin)
    dx = np.empty_like(dout)  # (B, T, nh, hs)
    kernel("rope_rotate", dout.dtype)(ptr(dx), ptr(dout), ptr(cos), ptr(sin), B, T, nh, hs, -1)
    return dx
