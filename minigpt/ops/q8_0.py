"""A linear layer whose weight is held in 8 bits: GGUF's Q8_0, out = x @ W^T + b, for inference.

Q8_0 cuts each row of a weight W (OC, C) into blocks of 32 consecutive weights along C (the sum's direction) and
stores each block as one float16 scale d and 32 signed bytes q, 34 bytes for 32 weights (8.5 bits a weight against
float32's 32):

    d = max |w_i| / 127          the block's largest weight maps to +-127
    q_i = round(w_i / d)         round half away from zero, as C's roundf; |w_i - d q_i| <= d / 2
    w_i ~ d q_i

exactly as GGUF's files (and llama.cpp's ggml) lay them out, byte for byte: `blocks` is a (OC, C // 32 * 34) uint8
array whose rows are the rows of W, each a run of [d as float16 little-endian, q_0 .. q_31 as int8] blocks.
A product d q of a float16 and an int8 needs at most 11 + 7 bits of mantissa, so the dequantized weight is exactly a
float32 (and float64): the layer computes x @ dequantize(blocks)^T, the same arithmetic as a float layer, only with
the weights quantization rounded. What that costs in loss, and why 4x fewer bytes make decoding faster:
docs/inference.md.

There is no backward: a quantized model runs inference only (sampling, chat, evaluation). Tests:
tests/ops/test_q8_0.py (against the gguf package's own Q8_0), tests/test_backends.py (the C and numba kernels).
"""

import numpy as np

from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype, check_shape

BLOCK = 32  # weights per block
BLOCK_BYTES = 2 + BLOCK  # a float16 scale, then the block's 32 int8 weights


def blocks_shape(OC: int, C: int) -> tuple:
    """The shape of the Q8_0 bytes of a weight (OC, C): (OC, C // 32 * 34)."""
    return OC, C // BLOCK * BLOCK_BYTES


def input_width(blocks) -> int:
    """C, the width of the rows (and of the layer's input) that `blocks` quantized."""
    return blocks.shape[1] // BLOCK_BYTES * BLOCK


# --8<-- [start:quantize]
def quantize(w) -> np.ndarray:
    """w (OC, C) float, C a multiple of 32 -> blocks (OC, C // 32 * 34) uint8, GGUF's Q8_0 of w's rows, computed in
    float32 as ggml's reference does (quantize_row_q8_0_ref): the same bytes as llama.cpp's and the gguf package's."""
    OC, C = w.shape
    if C % BLOCK:
        raise ValueError(f"q8_0 quantizes rows in blocks of {BLOCK} weights, but these rows are {C} long")
    w = np.asarray(w, dtype=np.float32).reshape(OC, C // BLOCK, BLOCK)  # (OC, nb, 32)
    d = np.abs(w).max(axis=2, keepdims=True) / np.float32(127)  # (OC, nb, 1) the largest weight -> 127
    if not np.all(d <= np.finfo(np.float16).max):  # (False for NaN too)
        raise ValueError(f"q8_0 holds finite weights up to {127 * float(np.finfo(np.float16).max):.4g} in magnitude "
                         f"(a float16 scale times 127); this matrix has {float(np.abs(w).max()):.4g}")
    with np.errstate(divide="ignore", over="ignore"):
        inverse = np.float32(1) / d  # (OC, nb, 1)
    # an all-zero block (d = 0), or one so small that 1/d overflows (d < 3e-39, whose float16 scale is 0 anyway):
    # every q = 0, where ggml's would be undefined (roundf(inf) cast to int8)
    inverse[~np.isfinite(inverse)] = 0
    scaled = w * inverse  # (OC, nb, 32) in [-127, 127]
    # roundf, half away from zero; floor(|v| + 0.5) would round 0.49999997 up, since |v| + 0.5 rounds to 1.0
    fraction, whole = np.modf(np.abs(scaled))
    q = np.sign(scaled) * (whole + np.floor(fraction + np.float32(0.5)))  # (OC, nb, 32)
    out = np.empty((OC, C // BLOCK, BLOCK_BYTES), dtype=np.uint8)
    out[:, :, :2] = d.astype(np.float16).view(np.uint8)  # the scale, rounded to float16 (the weights used d)
    out[:, :, 2:] = q.astype(np.int8).view(np.uint8)
    return out.reshape(blocks_shape(OC, C))


def dequantize(blocks, dtype=np.float32) -> np.ndarray:
    """blocks (OC, C // 32 * 34) uint8 -> W (OC, C), each weight d q: exact in float32 and float64."""
    OC = blocks.shape[0]
    b = blocks.reshape(OC, -1, BLOCK_BYTES)  # (OC, nb, 34)
    d = np.ascontiguousarray(b[:, :, :2]).view(np.float16).astype(dtype)  # (OC, nb, 1)
    q = b[:, :, 2:].view(np.int8).astype(dtype)  # (OC, nb, 32)
    return (d * q).reshape(OC, input_width(blocks))
# --8<-- [end:quantize]


# --8<-- [start:forward]
def forward(x, blocks, b=None, kernels=NUMPY):
    """x (B, T, C), blocks (OC, C // 32 * 34) uint8 (quantize's), b (OC,) or None -> out (B, T, OC), and no cache:
    there is no backward. kernels: a backend's table (minigpt/backends); NUMPY: the kernel below."""
    B, T, C = x.shape
    check_shape("q8_0 weight blocks", blocks, (None, C // BLOCK * BLOCK_BYTES))
    if C % BLOCK or blocks.dtype != np.uint8:
        raise ValueError(f"q8_0: the input's width {C} must be a multiple of {BLOCK} and blocks uint8 (quantize's), "
                         f"got {blocks.dtype}")
    OC = blocks.shape[0]
    if b is not None:
        check_shape("q8_0 bias b", b, (OC,))
    check_same_dtype("q8_0", x=x, b=b)
    out = kernels.q8_0.forward_kernel(x.reshape(B * T, C), blocks, b)  # (B*T, OC)
    return out.reshape(B, T, OC), None


def forward_kernel(x, blocks, b):
    """x (N, C), blocks (OC, C // 32 * 34) uint8, b (OC,) or None -> out (N, OC): a float linear layer on the
    dequantized weight. (The C and numba kernels read the bytes as they lie instead, 4x fewer than float32's.)"""
    out = x @ dequantize(blocks, x.dtype).T  # (N, OC)
    if b is not None:
        out += b  # (N, OC)
    return out
# --8<-- [end:forward]
