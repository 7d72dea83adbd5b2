"""Causal multi-head self-attention, as in GPT-2:

    q, k, v = split(x @ w_attn + b_attn)         fused projection, split into nh heads of hs channels
    att = softmax(mask(q k^T / sqrt(hs)))       position t attends to positions 0..t only
    y = dropout(att) v                           weighted sum of values, heads merged back to C channels
    out = y @ w_proj + b_proj

Math and derivation: docs/ops/attention.md. Test: tests/ops/test_attention.py.
"""

import math
from typing import NamedTuple

import numpy as np

from minigpt.ops import dropout, linear, softmax
from minigpt.validate import check_shape


class AttentionCache(NamedTuple):
    qkv_cache: linear.LinearCache  # the fused q, k, v projection
    q: np.ndarray  # (B, nh, T, hs)
    k: np.ndarray  # (B, nh, T, hs)
    v: np.ndarray  # (B, nh, T, hs)
    softmax_cache: softmax.SoftmaxCache  # att (B, nh, T, T), the attention probabilities
    dropout_cache: dropout.DropoutCache  # the mask applied to att
    att_dropped: np.ndarray  # (B, nh, T, T) att after dropout (the same array as att when p == 0)
    proj_cache: linear.LinearCache  # the output projection
    scale: float  # 1 / sqrt(hs)


def causal_mask(T, P=0):
    """(T, P + T) bool, True where query t may attend to key s. The T queries sit at positions P..P+T-1
    after P cached ones (P = 0 without a KV cache), so query t sees keys s <= P + t."""
    return np.tril(np.ones((T, P + T), dtype=bool), k=P)  # (T, P + T)


class KVCache:
    """The keys and values of the positions processed so far, for one attention layer, so that decoding
    a new token computes only its own q, k, v instead of the whole prefix again (docs/ops/attention.md)."""

    def __init__(self, B, n_head, block_size, hs, dtype):
        self.k = np.zeros((B, n_head, block_size, hs), dtype=dtype)  # (B, nh, block_size, hs)
        self.v = np.zeros((B, n_head, block_size, hs), dtype=dtype)  # (B, nh, block_size, hs)
        self.length = 0  # P, the positions filled

    def append(self, k, v):
        """Store k, v (B, nh, T, hs) of T new positions; return all keys and values so far, (B, nh, P + T, hs)."""
        P, T = self.length, k.shape[2]
        if P + T > self.k.shape[2]:
            raise ValueError(f"the KV cache holds {self.k.shape[2]} positions (block_size); {P} + {T} do not fit")
        self.k[:, :, P:P + T] = k
        self.v[:, :, P:P + T] = v
        self.length = P + T
        return self.k[:, :, :P + T], self.v[:, :, :P + T]


def split_heads(a, n_head):
    """(B, T, C) -> (B, nh, T, hs)."""
    B, T, C = a.shape
    return a.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)  # (B, nh, T, hs)


def merge_heads(a):
    """(B, nh, T, hs) -> (B, T, C), the inverse of split_heads."""
    B, nh, T, hs = a.shape
    return a.transpose(0, 2, 1, 3).reshape(B, T, nh * hs)  # (B, T, C)


# --8<-- [start:forward]
def forward(x, w_attn, b_attn, w_proj, b_proj, n_head, dropout_p=0.0, rng=None, kv_cache=None):
    """x (B, T, C), w_attn (C, 3C), b_attn (3C,) or None, w_proj (C, C), b_proj (C,) or None
    -> out (B, T, C). dropout_p > 0 drops attention probabilities using `rng`. With a KVCache, x holds
    only the new positions and attends to the cached ones too (inference only: no backward)."""
    B, T, C = x.shape
    if C % n_head != 0:
        raise ValueError(f"channels C={C} must be divisible by n_head={n_head}")
    check_shape("attention w_attn", w_attn, (C, 3 * C))
    check_shape("attention w_proj", w_proj, (C, C))
    hs = C // n_head
    scale = 1.0 / math.sqrt(hs)  # keeps q.k of unit-variance vectors at unit variance before softmax

    qkv, qkv_cache = linear.forward(x, w_attn, b_attn)  # (B, T, 3C)
    q, k, v = np.split(qkv, 3, axis=2)  # (B, T, C) each
    q = split_heads(q, n_head)  # (B, nh, T, hs)
    k = split_heads(k, n_head)  # (B, nh, T, hs)
    v = split_heads(v, n_head)  # (B, nh, T, hs)
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)  # (B, nh, P + T, hs) each: the cached positions, then the new ones
    P = k.shape[2] - T  # positions before these T (0 without a cache)

    preatt = (q @ k.swapaxes(-1, -2)) * scale  # (B, nh, T, P+T) preatt[b, h, t, s] = q_t . k_s / sqrt(hs)
    preatt = np.where(causal_mask(T, P), preatt, -np.inf)  # (B, nh, T, P+T) the future is masked out
    att, softmax_cache = softmax.forward(preatt)  # (B, nh, T, P+T) each row sums to 1 over s <= P + t
    att_dropped, dropout_cache = dropout.forward(att, dropout_p, rng)  # (B, nh, T, P+T)
    y = att_dropped @ v  # (B, nh, T, hs)
    y = merge_heads(y)  # (B, T, C)

    out, proj_cache = linear.forward(y, w_proj, b_proj)  # (B, T, C)
    cache = AttentionCache(qkv_cache, q, k, v, softmax_cache, dropout_cache, att_dropped, proj_cache, scale)
    return out, cache
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache):
    """dout (B, T, C) -> dx (B, T, C), dw_attn (C, 3C), db_attn (3C,), dw_proj (C, C), db_proj (C,)."""
    q, k, v = cache.q, cache.k, cache.v
    n_head = q.shape[1]

    dy, dw_proj, db_proj = linear.backward(dout, cache.proj_cache)  # (B, T, C)
    dy = split_heads(dy, n_head)  # (B, nh, T, hs)
    # y = att_dropped @ v: the two factors of a matmul (docs/ops/attention.md eq. (AT-dv), (AT-datt))
    datt_dropped = dy @ v.swapaxes(-1, -2)  # (B, nh, T, T)
    dv = cache.att_dropped.swapaxes(-1, -2) @ dy  # (B, nh, T, hs)
    datt = dropout.backward(datt_dropped, cache.dropout_cache)  # (B, nh, T, T)
    # The softmax backward gives exactly 0 at masked entries, because att is 0 there:
    # the mask needs no separate backward.
    dpreatt = softmax.backward(datt, cache.softmax_cache)  # (B, nh, T, T)
    dpreatt = dpreatt * cache.scale  # (B, nh, T, T)
    # preatt = q @ k^T: again the two factors of a matmul (eq. (AT-dq), (AT-dk))
    dq = dpreatt @ k  # (B, nh, T, hs)
    dk = dpreatt.swapaxes(-1, -2) @ q  # (B, nh, T, hs)

    dqkv = np.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=2)  # (B, T, 3C)
    dx, dw_attn, db_attn = linear.backward(dqkv, cache.qkv_cache)  # (B, T, C)
    return dx, dw_attn, db_attn, dw_proj, db_proj
# --8<-- [end:backward]
