"""Causal multi-head self-attention, as in GPT-2:

    q, k, v = split(x @ w_attn + b_attn)         fused projection, split into nh heads of hs channels
    att = softmax(mask(q k^T / sqrt(hs)))       position t attends to positions 0..t only
    y = dropout(att) v                           weighted sum of values, heads merged back to C channels
    out = y @ w_proj + b_proj

The two projections are linear ops; the kernel is the part in between, from qkv to y. It keeps, besides
y, only the log-sum-exp of each row of scores (lse), from which the backward recomputes att: a
(B, nh, T) array instead of a (B, nh, T, T) one, as FlashAttention does.
Math and derivation: docs/ops/attention.md. Test: tests/ops/test_attention.py.
"""

import math
from typing import NamedTuple

import numpy as np

from minigpt.ops import dropout, linear, softmax
from minigpt.validate import check_same_dtype, check_shape


class AttentionCache(NamedTuple):
    qkv_cache: linear.LinearCache  # the fused q, k, v projection (holds x)
    qkv: np.ndarray  # (B, T, 3C) its output: each position's query, key and value, heads side by side
    lse: np.ndarray  # (B, nh, T) log sum_s exp(preatt[t, s]): att = exp(preatt - lse)
    mask: np.ndarray | None  # (B, nh, T, T) the dropout mask applied to att, or None
    proj_cache: linear.LinearCache  # the output projection (holds y, (B, T, C))
    n_head: int


class KVCache:
    """The q, k, v rows of the positions processed so far, for one attention layer, so that decoding a new
    token computes only its own row instead of the whole prefix again (docs/ops/attention.md). The queries
    of old positions are kept too, unused: one (B, block_size, 3C) array, filled row by row."""

    def __init__(self, B, block_size, C, dtype):
        self.qkv = np.zeros((B, block_size, 3 * C), dtype=dtype)  # (B, block_size, 3C)
        self.length = 0  # P, the positions filled

    def append(self, qkv):
        """Store the rows qkv (B, T, 3C) of T new positions; return all rows so far, (B, P + T, 3C), contiguous
        (for B > 1 a copy: the compiled kernels read contiguous rows)."""
        P, T = self.length, qkv.shape[1]
        if P + T > self.qkv.shape[1]:
            raise ValueError(f"the KV cache holds {self.qkv.shape[1]} positions (block_size); {P} + {T} do not fit")
        self.qkv[:, P:P + T] = qkv
        self.length = P + T
        return np.ascontiguousarray(self.qkv[:, :P + T])


def causal_mask(T, P=0):
    """(T, P + T) bool, True where query t may attend to key s. The T queries sit at positions P..P+T-1
    after P cached ones (P = 0 without a KV cache), so query t sees keys s <= P + t."""
    return np.tril(np.ones((T, P + T), dtype=bool), k=P)  # (T, P + T)


def split_heads(a, n_head):
    """(B, T, C) -> (B, nh, T, hs)."""
    B, T, C = a.shape
    return a.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)  # (B, nh, T, hs)


def merge_heads(a):
    """(B, nh, T, hs) -> (B, T, C), the inverse of split_heads; a new C-contiguous array."""
    B, nh, T, hs = a.shape
    return np.ascontiguousarray(a.transpose(0, 2, 1, 3)).reshape(B, T, nh * hs)  # (B, T, C)


# --8<-- [start:forward]
def forward(x, w_attn, b_attn, w_proj, b_proj, n_head, dropout_p=0.0, rng=None, kv_cache=None, kernels=None):
    """x (B, T, C), w_attn (C, 3C), b_attn (3C,) or None, w_proj (C, C), b_proj (C,) or None
    -> out (B, T, C). dropout_p > 0 drops attention probabilities using `rng`. With a KVCache, x holds
    only the new positions and attends to the cached ones too (inference only: no backward).
    kernels: a backend's table (minigpt/backends); None: the NumPy kernels (this one's is below)."""
    B, T, C = x.shape
    if C % n_head != 0:
        raise ValueError(f"channels C={C} must be divisible by n_head={n_head}")
    check_shape("attention w_attn", w_attn, (C, 3 * C))
    check_shape("attention w_proj", w_proj, (C, C))
    check_same_dtype("attention", x=x, w_attn=w_attn, w_proj=w_proj)

    qkv, qkv_cache = linear.forward(x, w_attn, b_attn, kernels)  # (B, T, 3C)
    P = 0  # positions before these T, in the KV cache
    if kv_cache is not None:
        P = kv_cache.length
        qkv = kv_cache.append(qkv)  # (B, P + T, 3C): the cached positions' rows, then the new ones
    mask = dropout.make_mask((B, n_head, T, P + T), dropout_p, rng, x.dtype)  # (B, nh, T, P + T) or None
    kernel = forward_kernel if kernels is None else kernels.attention.forward_kernel
    y, lse = kernel(qkv, n_head, P, mask)  # (B, T, C), (B, nh, T)
    out, proj_cache = linear.forward(y, w_proj, b_proj, kernels)  # (B, T, C)
    return out, AttentionCache(qkv_cache, qkv, lse, mask, proj_cache, n_head)


def scores(qkv, n_head, P=0):
    """qkv (B, P + T, 3C) -> q, k, v (B, nh, P + T, hs) each, and the masked scores preatt (B, nh, T, P + T)
    of the last T positions' queries: q_t . k_s / sqrt(hs), and -inf where s > P + t (the future)."""
    q, k, v = (split_heads(a, n_head) for a in np.split(qkv, 3, axis=2))  # (B, nh, P + T, hs) each
    T = q.shape[2] - P
    scale = 1.0 / math.sqrt(q.shape[3])  # keeps q.k of unit-variance vectors at unit variance before softmax
    preatt = (q[:, :, P:] @ k.swapaxes(-1, -2)) * scale  # (B, nh, T, P + T)
    preatt = np.where(causal_mask(T, P), preatt, -np.inf)  # (B, nh, T, P + T) the future is masked out
    return q, k, v, preatt


def forward_kernel(qkv, n_head, P, mask):
    """qkv (B, P + T, 3C), mask (B, nh, T, P + T) or None -> y (B, T, C), lse (B, nh, T)."""
    q, k, v, preatt = scores(qkv, n_head, P)  # (B, nh, P + T, hs) each, (B, nh, T, P + T)
    lse = softmax.logsumexp(preatt)  # (B, nh, T, 1) the normaliser of each row
    att = np.exp(preatt - lse)  # (B, nh, T, P + T) softmax: each row sums to 1 over s <= P + t
    if mask is not None:
        att = att * mask  # (B, nh, T, P + T) dropout
    y = merge_heads(att @ v)  # (B, T, C) y_t = sum_s att[t, s] v_s, heads side by side
    return y, lse[..., 0]


def probabilities(cache):
    """The attention probabilities att (B, nh, T, T) of a forward, recomputed from its cache (before dropout)."""
    _, _, _, preatt = scores(cache.qkv, cache.n_head)
    return np.exp(preatt - cache.lse[..., None])  # (B, nh, T, T)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, kernels=None):
    """dout (B, T, C) -> dx (B, T, C), dw_attn (C, 3C), db_attn (3C,), dw_proj (C, C), db_proj (C,)."""
    dy, dw_proj, db_proj = linear.backward(dout, cache.proj_cache, kernels)  # (B, T, C)
    y = cache.proj_cache.x  # (B, T, C) the kernel's output
    kernel = backward_kernel if kernels is None else kernels.attention.backward_kernel
    dqkv = kernel(dy, cache.qkv, y, cache.lse, cache.n_head, cache.mask)  # (B, T, 3C)
    dx, dw_attn, db_attn = linear.backward(dqkv, cache.qkv_cache, kernels)  # (B, T, C)
    return dx, dw_attn, db_attn, dw_proj, db_proj


def backward_kernel(dy, qkv, y, lse, n_head, mask):
    """dy (B, T, C) -> dqkv (B, T, 3C). (y, the forward's output, serves fused kernels: dy_t . y_t is the
    softmax backward's row sum, docs/kernels.md.)"""
    q, k, v, preatt = scores(qkv, n_head)  # (B, nh, T, hs) each, (B, nh, T, T)
    att = np.exp(preatt - lse[..., None])  # (B, nh, T, T) recomputed from the saved log-sum-exp
    att_dropped = att if mask is None else att * mask  # (B, nh, T, T)
    dy = split_heads(dy, n_head)  # (B, nh, T, hs)
    # y = att_dropped @ v: the two factors of a matmul (docs/ops/attention.md eq. (AT-dv), (AT-datt))
    dv = att_dropped.swapaxes(-1, -2) @ dy  # (B, nh, T, hs)
    datt = dy @ v.swapaxes(-1, -2)  # (B, nh, T, T)
    if mask is not None:
        datt = datt * mask  # (B, nh, T, T) dropout's backward
    # The softmax backward gives exactly 0 at masked entries, because att is 0 there:
    # the causal mask needs no separate backward.
    dpreatt = softmax.backward(datt, softmax.SoftmaxCache(att)) / math.sqrt(q.shape[3])  # (B, nh, T, T)
    # preatt = q @ k^T / sqrt(hs): again the two factors of a matmul (eq. (AT-dq), (AT-dk))
    dq = dpreatt @ k  # (B, nh, T, hs)
    dk = dpreatt.swapaxes(-1, -2) @ q  # (B, nh, T, hs)
    return np.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=2)  # (B, T, 3C)
# --8<-- [end:backward]
