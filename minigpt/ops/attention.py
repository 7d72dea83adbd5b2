"""Causal multi-head self-attention: GPT-2's, and the grouped-query attention of Llama and Qwen.

    q, k, v = split(x @ w_attn + b_attn)         fused projection, split into heads of hs channels
    att = softmax(mask(q k^T / sqrt(hs)))       position t attends to positions 0..t only
    y = dropout(att) v                           weighted sum of values, heads merged back side by side
    out = y @ w_proj + b_proj

The projections are linear ops; `attend` is the part in between, from qkv to y, which Llama's and Qwen's blocks call
too (minigpt/model.py): their queries and keys are projected apart, normalised and turned (RoPE) first. A row of qkv
holds the nh query heads, then the nkv key heads, then the nkv value heads, hs channels each: (nh + 2 nkv) hs. With
nkv = nh (GPT-2) that is 3C; with fewer key/value heads (grouped-query attention; multi-query with one), query head h
reads key/value head h // (nh / nkv), and a key/value head's gradient sums those of its group. The kernel keeps,
besides y, only the log-sum-exp of each row of scores (lse), from which the backward recomputes att: a (B, nh, T)
array instead of a (B, nh, T, T) one, as FlashAttention does.
Math and derivation: docs/ops/attention.md. Test: tests/ops/test_attention.py.
"""

import math
from typing import NamedTuple

import numpy as np

from minigpt.ops import dropout, linear, softmax
from minigpt.validate import check_same_dtype, check_shape


class AttendCache(NamedTuple):
    qkv: np.ndarray  # (B, T, (nh + 2 nkv) hs) each position's query, key and value heads, side by side
    y: np.ndarray  # (B, T, nh hs) the output, which the fused kernels' backward reads (docs/kernels.md)
    lse: np.ndarray  # (B, nh, T) log sum_s exp(preatt[t, s]): att = exp(preatt - lse)
    mask: np.ndarray | None  # (B, nh, T, T) the dropout mask applied to att, or None
    n_head: int
    n_kv_head: int


class AttentionCache(NamedTuple):  # GPT-2's attention sub-block: what each of its three parts saved
    qkv_cache: linear.LinearCache  # the fused q, k, v projection (holds x)
    attend: AttendCache
    proj_cache: linear.LinearCache  # the output projection (holds y)


def head_size(qkv, n_head, n_kv_head) -> int:
    """hs, from a row of qkv's (nh + 2 nkv) hs channels."""
    width = qkv.shape[-1]
    if n_kv_head < 1 or n_head % n_kv_head:
        raise ValueError(f"n_kv_head={n_kv_head} must divide n_head={n_head}: each key/value head serves a group of "
                         f"query heads")
    if width % (n_head + 2 * n_kv_head):
        raise ValueError(f"qkv has {width} channels, not a multiple of n_head + 2 n_kv_head = {n_head + 2 * n_kv_head}")
    return width // (n_head + 2 * n_kv_head)


class KVCache:
    """The keys and values of the positions processed so far, for one attention layer, so that decoding a new
    token computes only its own row instead of the whole prefix again (docs/ops/attention.md): one
    (B, S, 2 nkv hs) array of the S positions it can hold (at most block_size), filled row by row. With fewer key/value heads than query heads it is that much
    smaller: what grouped-query attention saves when decoding."""

    def __init__(self, B, S, n_head, n_kv_head, head_size, dtype):
        self.kv = np.zeros((B, S, 2 * n_kv_head * head_size), dtype=dtype)  # (B, S, 2 nkv hs)
        self.q_width = n_head * head_size  # nh hs
        self.length = 0  # P, the positions filled

    def append(self, qkv):
        """Store the keys and values of qkv (B, T, (nh + 2 nkv) hs), T new positions; return qkv's rows for all
        P + T positions, (B, P + T, (nh + 2 nkv) hs), as the kernel reads them: the cached keys and values, and the
        new queries. (The queries of cached positions are never read: those rows are left as they come.)"""
        P, T = self.length, qkv.shape[1]
        if P + T > self.kv.shape[1]:
            raise ValueError(f"the KV cache holds {self.kv.shape[1]} positions; {P} + {T} do not fit")
        self.kv[:, P:P + T] = qkv[:, :, self.q_width:]
        self.length = P + T
        rows = np.empty((qkv.shape[0], P + T, qkv.shape[2]), dtype=qkv.dtype)  # (B, P + T, (nh + 2 nkv) hs)
        rows[:, P:, :self.q_width] = qkv[:, :, :self.q_width]
        rows[:, :, self.q_width:] = self.kv[:, :P + T]
        return rows

    @property
    def nbytes(self) -> int:
        return self.kv.nbytes


def causal_mask(T, P=0):
    """(T, P + T) bool, True where query t may attend to key s. The T queries sit at positions P..P+T-1
    after P cached ones (P = 0 without a KV cache), so query t sees keys s <= P + t."""
    return np.tril(np.ones((T, P + T), dtype=bool), k=P)  # (T, P + T)


def split_heads(a, n_head):
    """(B, T, nh hs) -> (B, nh, T, hs)."""
    B, T, C = a.shape
    return a.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)  # (B, nh, T, hs)


def merge_heads(a):
    """(B, nh, T, hs) -> (B, T, nh hs), the inverse of split_heads; a new C-contiguous array."""
    B, nh, T, hs = a.shape
    return np.ascontiguousarray(a.transpose(0, 2, 1, 3)).reshape(B, T, nh * hs)  # (B, T, nh hs)


def split_qkv(qkv, n_head, n_kv_head):
    """qkv (B, S, (nh + 2 nkv) hs) -> q (B, nh, S, hs), k and v (B, nkv, S, hs)."""
    hs = head_size(qkv, n_head, n_kv_head)
    q, k, v = np.split(qkv, [n_head * hs, (n_head + n_kv_head) * hs], axis=2)  # (B, S, nh hs), (B, S, nkv hs) x2
    return split_heads(q, n_head), split_heads(k, n_kv_head), split_heads(v, n_kv_head)


# --8<-- [start:forward]
def forward(x, w_attn, b_attn, w_proj, b_proj, n_head, dropout_p=0.0, rng=None, kv_cache=None, kernels=None):
    """GPT-2's attention sub-block: x (B, T, C), w_attn (C, 3C), b_attn (3C,) or None, w_proj (C, C), b_proj (C,) or
    None -> out (B, T, C). dropout_p > 0 drops attention probabilities using `rng`. With a KVCache, x holds only the
    new positions and attends to the cached ones too (inference only: no backward). kernels: a backend's table
    (minigpt/backends); None: the NumPy kernels (attend's is below)."""
    B, T, C = x.shape
    if C % n_head != 0:
        raise ValueError(f"channels C={C} must be divisible by n_head={n_head}")
    check_shape("attention w_attn", w_attn, (C, 3 * C))
    check_shape("attention w_proj", w_proj, (C, C))
    check_same_dtype("attention", x=x, w_attn=w_attn, w_proj=w_proj)

    qkv, qkv_cache = linear.forward(x, w_attn, b_attn, kernels)  # (B, T, 3C)
    y, attend_cache = attend(qkv, n_head, n_head, dropout_p, rng, kv_cache, kernels)  # (B, T, C)
    out, proj_cache = linear.forward(y, w_proj, b_proj, kernels)  # (B, T, C)
    return out, AttentionCache(qkv_cache, attend_cache, proj_cache)


def attend(qkv, n_head, n_kv_head, dropout_p=0.0, rng=None, kv_cache=None, kernels=None):
    """qkv (B, T, (nh + 2 nkv) hs) -> y (B, T, nh hs): each query head's causal softmax over its key/value head's
    positions. With a KVCache, qkv holds only the T new positions, which attend to the cached ones too."""
    B, T, _ = qkv.shape
    head_size(qkv, n_head, n_kv_head)  # (checks that the heads fit the rows)
    check_same_dtype("attention", qkv=qkv)
    P = 0  # positions before these T, in the KV cache
    if kv_cache is not None:
        P = kv_cache.length
        qkv = kv_cache.append(qkv)  # (B, P + T, (nh + 2 nkv) hs): the cached positions' rows, then the new ones
    mask = dropout.make_mask((B, n_head, T, P + T), dropout_p, rng, qkv.dtype)  # (B, nh, T, P + T) or None
    kernel = forward_kernel if kernels is None else kernels.attention.forward_kernel
    y, lse = kernel(qkv, n_head, n_kv_head, P, mask)  # (B, T, nh hs), (B, nh, T)
    return y, AttendCache(qkv, y, lse, mask, n_head, n_kv_head)


def scores(qkv, n_head, n_kv_head, P=0):
    """qkv (B, P + T, (nh + 2 nkv) hs) -> q (B, nh, P + T, hs), k and v (B, nh, P + T, hs) each, every key/value
    head repeated for its group of query heads, and the masked scores preatt (B, nh, T, P + T) of the last T
    positions' queries: q_t . k_s / sqrt(hs), and -inf where s > P + t (the future)."""
    q, k, v = split_qkv(qkv, n_head, n_kv_head)  # (B, nh, P + T, hs), (B, nkv, P + T, hs) x2
    group = n_head // n_kv_head
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)  # (B, nh, P + T, hs): head h reads h // group
    T = q.shape[2] - P
    scale = 1.0 / math.sqrt(q.shape[3])  # keeps q.k of unit-variance vectors at unit variance before softmax
    preatt = (q[:, :, P:] @ k.swapaxes(-1, -2)) * scale  # (B, nh, T, P + T)
    preatt = np.where(causal_mask(T, P), preatt, -np.inf)  # (B, nh, T, P + T) the future is masked out
    return q, k, v, preatt


def forward_kernel(qkv, n_head, n_kv_head, P, mask):
    """qkv (B, P + T, (nh + 2 nkv) hs), mask (B, nh, T, P + T) or None -> y (B, T, nh hs), lse (B, nh, T)."""
    q, k, v, preatt = scores(qkv, n_head, n_kv_head, P)  # (B, nh, P + T, hs) each, (B, nh, T, P + T)
    lse = softmax.logsumexp(preatt)  # (B, nh, T, 1) the normaliser of each row
    att = np.exp(preatt - lse)  # (B, nh, T, P + T) softmax: each row sums to 1 over s <= P + t
    if mask is not None:
        att = att * mask  # (B, nh, T, P + T) dropout
    y = merge_heads(att @ v)  # (B, T, nh hs) y_t = sum_s att[t, s] v_s, heads side by side
    return y, lse[..., 0]


def probabilities(cache):
    """The attention probabilities att (B, nh, T, T) of a forward, recomputed from its AttendCache (before dropout)."""
    _, _, _, preatt = scores(cache.qkv, cache.n_head, cache.n_kv_head)
    return np.exp(preatt - cache.lse[..., None])  # (B, nh, T, T)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, kernels=None):
    """GPT-2's sub-block: dout (B, T, C) -> dx (B, T, C), dw_attn (C, 3C), db_attn (3C,), dw_proj (C, C), db_proj (C,)."""
    dy, dw_proj, db_proj = linear.backward(dout, cache.proj_cache, kernels)  # (B, T, C)
    dqkv = attend_backward(dy, cache.attend, kernels)  # (B, T, 3C)
    dx, dw_attn, db_attn = linear.backward(dqkv, cache.qkv_cache, kernels)  # (B, T, C)
    return dx, dw_attn, db_attn, dw_proj, db_proj


def attend_backward(dy, cache, kernels=None):
    """dy (B, T, nh hs) -> dqkv (B, T, (nh + 2 nkv) hs)."""
    check_shape("attention dy", dy, cache.y.shape)
    kernel = backward_kernel if kernels is None else kernels.attention.backward_kernel
    return kernel(dy, cache.qkv, cache.y, cache.lse, cache.n_head, cache.n_kv_head, cache.mask)  # (B, T, (nh + 2 nkv) hs)


def backward_kernel(dy, qkv, y, lse, n_head, n_kv_head, mask):
    """dy (B, T, nh hs) -> dqkv (B, T, (nh + 2 nkv) hs). (y, the forward's output, serves fused kernels: dy_t . y_t
    is the softmax backward's row sum, docs/kernels.md.)"""
    q, k, v, preatt = scores(qkv, n_head, n_kv_head)  # (B, nh, T, hs) each, (B, nh, T, T)
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
    # a key/value head served its whole group of query heads: its gradient is the sum over the group (eq. (GQA-dk))
    B, nh, T, hs = dk.shape
    dk = dk.reshape(B, n_kv_head, nh // n_kv_head, T, hs).sum(axis=2)  # (B, nkv, T, hs)
    dv = dv.reshape(B, n_kv_head, nh // n_kv_head, T, hs).sum(axis=2)  # (B, nkv, T, hs)
    return np.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=2)  # (B, T, (nh + 2 nkv) hs)
# --8<-- [end:backward]
