"""The Q8_0 linear layer: a few rows of x (decoding) made straight from the weight's bytes as they lie, each block's
32 weights dequantized (d q, exact) and multiplied into 32 running sums per row; more rows dequantize the weight
and multiply with NumPy's BLAS, as the reference does. Reference: minigpt/ops/q8_0.py; docs/inference.md."""

import numba
import numpy as np

from minigpt.backends.numba import OPTIONS, compile_once
from minigpt.ops import q8_0
from minigpt.ops.q8_0 import BLOCK, BLOCK_BYTES
from minigpt.validate import check_contiguous

FEW_ROWS = 4  # rows of x computed from the bytes directly (kernels/q8_0.c: up to 32, four at a time)
# 2^(e - 25) for a float16's 5-bit exponent field e: a normal float16 is (1024 + mantissa) 2^(e - 25), exact
POWERS = np.ldexp(1.0, np.arange(32) - 25)


@numba.njit(**OPTIONS)
def half_to_float(lo, hi):
    """The float16 of two little-endian bytes, as a float64 (exact)."""
    h = np.int64(lo) | (np.int64(hi) << 8)
    exponent, mantissa = (h >> 10) & 0x1F, h & 0x3FF
    if exponent == 31:
        magnitude = np.inf if mantissa == 0 else np.nan
    elif exponent == 0:  # zero and the subnormals: mantissa 2^-24
        magnitude = mantissa * POWERS[1]
    else:
        magnitude = (1024 + mantissa) * POWERS[exponent]
    return -magnitude if h & 0x8000 else magnitude


# --8<-- [start:kernels]
@numba.njit(**OPTIONS)
def forward_loops(out, x, blocks, b, has_bias):
    """x (N, C), blocks (OC, C // 32 * 34) -> out (N, OC) = x @ W^T + b, N <= FEW_ROWS"""
    N, C = x.shape
    OC = blocks.shape[0]
    real = x.dtype.type
    nb = C // BLOCK
    w = np.empty(BLOCK, dtype=x.dtype)
    sums = np.empty((N, BLOCK), dtype=x.dtype)  # 32 running sums per row of x
    for o in range(OC):
        sums[:] = 0
        for blk in range(nb):
            at = blk * BLOCK_BYTES
            d = real(half_to_float(blocks[o, at], blocks[o, at + 1]))
            for j in range(BLOCK):
                w[j] = d * real(np.int8(blocks[o, at + 2 + j]))  # exact
            for i in range(N):
                for j in range(BLOCK):
                    sums[i, j] += w[j] * x[i, blk * BLOCK + j]
        for i in range(N):
            total = b[o] if has_bias else real(0)
            for j in range(BLOCK):
                total += sums[i, j]
            out[i, o] = total
# --8<-- [end:kernels]


@compile_once
def forward_kernel(x, blocks, b):
    N, C = x.shape
    check_contiguous("q8_0", x=x, blocks=blocks, b=b)
    if N > FEW_ROWS:  # each weight is used N times: dequantize once and let BLAS multiply, as the reference does
        return q8_0.forward_kernel(x, blocks, b)  # (N, OC)
    out = np.empty((N, blocks.shape[0]), dtype=x.dtype)  # (N, OC)
    forward_loops(out, x, blocks, np.zeros(1, x.dtype) if b is None else b, b is not None)
    return out
