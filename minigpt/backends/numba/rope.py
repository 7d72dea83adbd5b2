"""Rotary embeddings: each pair of channels (i, i + hs/2) of each head turned in one loop, forward by the angle and
backward by its opposite (the transposed rotation), reading each cosine and sine once per pair.
Reference: minigpt/ops/rope.py; math: docs/ops/rope.md."""

import numba
import numpy as np

from minigpt.backends.numba import OPTIONS, compile_once
from minigpt.validate import check_contiguous


# --8<-- [start:kernels]
@numba.njit(**OPTIONS)
def rotate_loops(out, x, cos, sin, direction):
    """x (N, T, nh, hs) -> out: each pair (a, b) = (x_i, x_{i + hs/2}) turned by direction * angle[t, i]:
    (a cos - b sin, b cos + a sin) forward (direction 1), (a cos + b sin, b cos - a sin) backward (-1), eq. (RoPE-dx)"""
    N, T, nh, hs = x.shape
    h = hs // 2
    real = x.dtype.type
    d = real(direction)
    for n in range(N):
        for t in range(T):
            c_t, s_t = cos[t], sin[t]  # (hs,) each
            for head in range(nh):
                x_h, out_h = x[n, t, head], out[n, t, head]  # (hs,) each
                for i in range(h):
                    a, b = x_h[i], x_h[i + h]
                    c, s = c_t[i], d * s_t[i]
                    out_h[i] = a * c - b * s
                    out_h[i + h] = b * c + a * s
# --8<-- [end:kernels]


@compile_once
def forward_kernel(x, cos, sin):
    check_contiguous("rope", x=x, cos=cos, sin=sin)
    out = np.empty_like(x)  # (B, T, nh, hs)
    rotate_loops(out, x, cos, sin, 1)
    return out


@compile_once
def backward_kernel(dout, cos, sin):
    check_contiguous("rope backward", dout=dout, cos=cos, sin=sin)
    dx = np.empty_like(dout)  # (B, T, nh, hs)
    rotate_loops(dx, dout, cos, sin, -1)
    return dx
