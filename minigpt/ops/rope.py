"""Rotary position embeddings (RoPE), as Llama and Qwen encode positions: each head's query and key vectors are turned,
pair of channels by pair of channels, by angles that grow with the position, so that the score q_m . k_n depends on
the positions only through m - n. Hugging Face's layout ("rotate half"): channel i is paired with channel i + hs/2,

    out = x * cos + rotate_half(x) * sin,    rotate_half(x) = (-x[hs/2:], x[:hs/2]),
    angle[t, i] = (start + t) * inv_freq[i mod hs/2],    inv_freq[i] = theta^(-2i / hs),

and Llama 3's `rope_scaling` of type "llama3" stretches the long wavelengths (frequencies). The backward is the
transposed rotation: a rotation's transpose turns the other way. The angles are computed in float64 and rounded once
to the arrays' precision. Math and derivation: docs/ops/rope.md. Test: tests/ops/test_rope.py.
"""

import math
from typing import NamedTuple

import numpy as np

from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype, check_shape


class RopeCache(NamedTuple):
    cos: np.ndarray  # (T, hs) the cosines of the angles, each twice (channel i and i + hs/2)
    sin: np.ndarray  # (T, hs)


def inverse_frequencies(head_dim: int, theta: float, scaling: dict | None = None) -> np.ndarray:
    """(hs/2,) float64: theta^(-2i / hs), and with Llama 3's scaling ({"rope_type": "llama3", "factor",
    "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) the long wavelengths divided by factor
    and the middle ones blended, as transformers' _compute_llama3_parameters does."""
    if head_dim % 2:
        raise ValueError(f"rotary embeddings pair channels: the head size must be even, got {head_dim}")
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (hs/2,)
    if scaling is None:
        return inv_freq
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    context = scaling["original_max_position_embeddings"]
    wavelength = 2 * math.pi / inv_freq  # (hs/2,) positions per turn
    scaled = np.where(wavelength > context / low, inv_freq / factor, inv_freq)  # long wavelengths stretched
    smooth = (context / wavelength - low) / (high - low)  # 0 at the long end of the middle band, 1 at its short end
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    middle = (wavelength >= context / high) & (wavelength <= context / low)
    return np.where(middle, blended, scaled)  # (hs/2,)


def angles(inv_freq, start: int, T: int, dtype) -> RopeCache:
    """cos, sin (T, hs) of positions start..start+T-1, in dtype."""
    theta = np.arange(start, start + T, dtype=np.float64)[:, None] * inv_freq[None, :]  # (T, hs/2)
    theta = np.concatenate([theta, theta], axis=1)  # (T, hs) channel i and i + hs/2 turn by the same angle
    return RopeCache(np.cos(theta).astype(dtype), np.sin(theta).astype(dtype))


def rotate_half(x):
    """(..., hs) -> (..., hs): (-x2, x1), with x1, x2 the two halves: a quarter turn of each pair (x_i, x_{i+hs/2})."""
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)  # (..., hs)


def rotate_half_transposed(y):
    """The transpose of rotate_half: (y2, -y1), a quarter turn the other way."""
    h = y.shape[-1] // 2
    return np.concatenate([y[..., h:], -y[..., :h]], axis=-1)  # (..., hs)


# --8<-- [start:forward]
def forward(x, rope: RopeCache, kernels=NUMPY):
    """x (B, T, nh, hs): the queries or keys of T positions, head by head; rope: their angles (angles()) -> out
    (B, T, nh, hs). kernels: a backend's table (minigpt/backends); NUMPY: the NumPy kernel below."""
    B, T, nh, hs = x.shape
    check_shape("rope cos", rope.cos, (T, hs))
    check_same_dtype("rope", x=x, cos=rope.cos, sin=rope.sin)
    return kernels.rope.forward_kernel(x, rope.cos, rope.sin), rope


def forward_kernel(x, cos, sin):
    cos, sin = cos[:, None, :], sin[:, None, :]  # (T, 1, hs): the same angles for every head
    return x * cos + rotate_half(x) * sin  # (B, T, nh, hs)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache: RopeCache, kernels=NUMPY):
    """dout (B, T, nh, hs) -> dx (B, T, nh, hs)."""
    check_shape("rope dout", dout, (None, cache.cos.shape[0], None, cache.cos.shape[1]))
    check_same_dtype("rope backward", dout=dout, cos=cache.cos)
    return kernels.rope.backward_kernel(dout, cache.cos, cache.sin)


def backward_kernel(dout, cos, sin):
    cos, sin = cos[:, None, :], sin[:, None, :]  # (T, 1, hs)
    # out = cos * x + sin * R x with R the quarter turn rotate_half: dx = cos * dout + R^T (sin * dout), eq. (RoPE-dx)
    return dout * cos + rotate_half_transposed(dout * sin)  # (B, T, nh, hs)
# --8<-- [end:backward]
