"""Causal scaled-dot-product attention with grouped-query heads: the part of an attention layer between its
projections, which the blocks of every family call (minigpt/gpt2.py, minigpt/llama.py).

    att = softmax(mask(q k^T / sqrt(hs)))       position t attends to positions 0..t only
    y = dropout(att) v                           weighted sum of values, heads merged back side by side

q, k and v come as the projections give them, each position's heads side by side: q (B, T, nh, hs), k and v
(B, T, nkv, hs). GPT-2 splits the output of its fused projection c_attn in three; Llama and Qwen pass those of q_proj,
k_proj and v_proj, after QK-norm and the rotary embeddings. With nkv = nh (GPT-2) this is multi-head attention; with
fewer key/value heads (grouped-query attention; multi-query with one), query head h reads key/value head
h // (nh / nkv), and a key/value head's gradient sums those of its group. The kernel keeps, besides y, only the
log-sum-exp of each row of scores (lse), from which the backward recomputes att: a (B, nh, T) array instead of a
(B, nh, T, T) one, as FlashAttention does.
Math and derivation: docs/ops/attention.md. Test: tests/ops/test_attention.py.
"""

import math
from typing import NamedTuple

import numpy as np

from minigpt.ops import dropout, softmax
from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype, check_shape


class AttentionCache(NamedTuple):
    q: np.ndarray  # (B, T, nh, hs) the queries
    k: np.ndarray  # (B, T, nkv, hs) the keys
    v: np.ndarray  # (B, T, nkv, hs) the values
    y: np.ndarray  # (B, T, nh hs) the output, which the fused kernels' backward reads (docs/kernels.md)
    lse: np.ndarray  # (B, nh, T) log sum_s exp(preatt[t, s]): att = exp(preatt - lse)
    mask: np.ndarray | None  # (B, nh, T, T) the dropout mask applied to att, or None


class KVCache:
    """The keys and values of the positions processed so far, for one attention layer, so that decoding a new
    token computes only its own row instead of the whole prefix again (docs/ops/attention.md): two (B, S, nkv, hs)
    arrays, the keys and the values of the S positions it can hold (at most block_size), filled position by position.
    With fewer key/value heads than query heads it is that much smaller: what grouped-query attention saves when
    decoding."""

    def __init__(self, B, S, n_kv_head, head_dim, dtype):
        self.k = np.zeros((B, S, n_kv_head, head_dim), dtype=dtype)  # (B, S, nkv, hs)
        self.v = np.zeros((B, S, n_kv_head, head_dim), dtype=dtype)  # (B, S, nkv, hs)
        self.length = 0  # P, the positions filled

    def append(self, k, v):
        """Store the keys and values k, v (B, T, nkv, hs) of T new positions; return those of all P + T positions,
        the cached ones and then the new ones: (B, P + T, nkv, hs) each (views of the cache)."""
        P, T = self.length, k.shape[1]
        if P + T > self.k.shape[1]:
            raise ValueError(f"the KV cache holds {self.k.shape[1]} positions; {P} + {T} do not fit")
        self.k[:, P:P + T] = k
        self.v[:, P:P + T] = v
        self.length = P + T
        return self.k[:, :P + T], self.v[:, :P + T]  # (B, P + T, nkv, hs) x2

    def reorder(self, rows) -> None:
        """Keep the sequences rows (B',) in that order: new row i is old row rows[i]; a row may be kept twice or
        dropped, and B' may differ from B. Beam search (minigpt/beam.py) does this after each step, when the beams
        kept continue some of the previous ones and drop the others."""
        self.k = self.k[rows]  # (B', S, nkv, hs) a copy: two beams that share a row must not share its memory
        self.v = self.v[rows]  # (B', S, nkv, hs)

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes


def causal_mask(T, P=0):
    """(T, P + T) bool, True where query t may attend to key s. The T queries sit at positions P..P+T-1
    after P cached ones (P = 0 without a KV cache), so query t sees keys s <= P + t."""
    return np.tril(np.ones((T, P + T), dtype=bool), k=P)  # (T, P + T)


def swap_heads(a):
    """(B, T, n, hs) <-> (B, n, T, hs), a view: heads first, each head's positions the rows of one matrix, or back."""
    return a.transpose(0, 2, 1, 3)


def merge_heads(a):
    """(B, nh, T, hs) -> (B, T, nh hs): each position's heads side by side, in a new C-contiguous array."""
    B, nh, T, hs = a.shape
    return np.ascontiguousarray(swap_heads(a)).reshape(B, T, nh * hs)  # (B, T, nh hs)


def repeat_kv(a, n_head):
    """Keys or values (B, S, nkv, hs) -> (B, nh, S, hs), heads first, each key/value head repeated for its group of
    n_head / nkv query heads: query head h reads key/value head h // group."""
    return np.repeat(swap_heads(a), n_head // a.shape[2], axis=1)  # (B, nh, S, hs)


# --8<-- [start:forward]
def forward(q, k, v, dropout_p=0.0, rng=None, kv_cache=None, kernels=NUMPY):
    """q (B, T, nh, hs), k and v (B, T, nkv, hs) -> y (B, T, nh hs): each query head's causal softmax over the
    positions of its key/value head, the values weighted by it. dropout_p > 0 drops attention probabilities using
    `rng`. With a KVCache, q, k and v are those of T new positions, which attend to the cached ones too (inference
    only: no backward). kernels: a backend's table (minigpt/backends); NUMPY: the NumPy kernels below."""
    check_shape("attention q", q, (None, None, None, None))
    B, T, n_head, hs = q.shape
    check_shape("attention k", k, (B, T, None, hs))
    check_shape("attention v", v, k.shape)
    n_kv_head = k.shape[2]
    if n_head % n_kv_head:
        raise ValueError(f"n_kv_head={n_kv_head} must divide n_head={n_head}: each key/value head serves a group of "
                         f"query heads")
    check_same_dtype("attention", q=q, k=k, v=v)
    P = 0  # positions before these T, in the KV cache
    if kv_cache is not None:
        P = kv_cache.length
        k, v = kv_cache.append(k, v)  # (B, P + T, nkv, hs) each: the cached positions', then the new ones'
    # (q, k and v may be views: GPT-2's, of c_attn's output; a cache's keys and values, of the cache. The kernels read
    # each position's heads as one row, wherever the rows lie: nothing is copied here)
    mask = dropout.make_mask((B, n_head, T, P + T), dropout_p, rng, q.dtype)  # (B, nh, T, P + T) or None
    y, lse = kernels.attention.forward_kernel(q, k, v, mask)  # (B, T, nh hs), (B, nh, T)
    return y, AttentionCache(q, k, v, y, lse, mask)


def scores(q, k):
    """q (B, nh, T, hs) and k (B, nh, P + T, hs), heads first -> the masked scores preatt (B, nh, T, P + T) of the
    last T positions' queries: q_t . k_s / sqrt(hs), and -inf where s > P + t (the future)."""
    T, S = q.shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[3])  # keeps q.k of unit-variance vectors at unit variance before softmax
    preatt = (q @ k.swapaxes(-1, -2)) * scale  # (B, nh, T, P + T)
    return np.where(causal_mask(T, S - T), preatt, -np.inf)  # (B, nh, T, P + T) the future is masked out


def forward_kernel(q, k, v, mask):
    """q (B, T, nh, hs), k and v (B, P + T, nkv, hs), mask (B, nh, T, P + T) or None -> y (B, T, nh hs),
    lse (B, nh, T)."""
    nh = q.shape[2]
    q, k, v = swap_heads(q), repeat_kv(k, nh), repeat_kv(v, nh)  # (B, nh, T, hs), (B, nh, P + T, hs) x2
    preatt = scores(q, k)  # (B, nh, T, P + T)
    lse = softmax.logsumexp(preatt)  # (B, nh, T, 1) the normaliser of each row
    att = np.exp(preatt - lse)  # (B, nh, T, P + T) softmax: each row sums to 1 over s <= P + t
    if mask is not None:
        att = att * mask  # (B, nh, T, P + T) dropout
    y = merge_heads(att @ v)  # (B, T, nh hs) y_t = sum_s att[t, s] v_s, heads side by side
    return y, lse[..., 0]


def probabilities(cache):
    """The attention probabilities att (B, nh, T, T) of a forward, recomputed from its AttentionCache (before
    dropout)."""
    preatt = scores(swap_heads(cache.q), repeat_kv(cache.k, cache.q.shape[2]))  # (B, nh, T, T)
    return np.exp(preatt - cache.lse[..., None])  # (B, nh, T, T)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dy, cache, kernels=NUMPY, out=None):
    """dy (B, T, nh hs) -> dq (B, T, nh, hs), dk and dv (B, T, nkv, hs). out: an array (B, T, nh + 2 nkv, hs) to
    write them into side by side, as q, k and v lie in GPT-2's c_attn output (its gradient then needs no
    concatenating); None: three arrays of their own."""
    check_shape("attention dy", dy, cache.y.shape)
    B, T, nh, hs = cache.q.shape
    nkv = cache.k.shape[2]
    if out is None:
        dq, dk, dv = np.empty_like(cache.q, order="C"), np.empty_like(cache.k, order="C"), np.empty_like(cache.v, order="C")
    else:
        check_shape("attention out", out, (B, T, nh + 2 * nkv, hs))
        dq, dk, dv = np.split(out, [nh, nh + nkv], axis=2)  # (B, T, nh, hs), (B, T, nkv, hs) x2: views of out
    kernels.attention.backward_kernel(dy, cache.q, cache.k, cache.v, cache.y, cache.lse, cache.mask, dq, dk, dv)
    return dq, dk, dv


def backward_kernel(dy, q, k, v, y, lse, mask, dq_out, dk_out, dv_out):
    """dy (B, T, nh hs) -> dq (B, T, nh, hs), dk and dv (B, T, nkv, hs), written into the arrays given. (y, the
    forward's output, serves fused kernels: dy_t . y_t is the softmax backward's row sum, docs/kernels.md.)"""
    B, T, nh, hs = q.shape
    nkv = k.shape[2]
    q, k, v = swap_heads(q), repeat_kv(k, nh), repeat_kv(v, nh)  # (B, nh, T, hs) each
    att = np.exp(scores(q, k) - lse[..., None])  # (B, nh, T, T) recomputed from the saved log-sum-exp
    att_dropped = att if mask is None else att * mask  # (B, nh, T, T)
    dy = swap_heads(dy.reshape(B, T, nh, hs))  # (B, nh, T, hs)
    # y = att_dropped @ v: the two factors of a matmul (docs/ops/attention.md eq. (AT-dv), (AT-datt))
    dv = att_dropped.swapaxes(-1, -2) @ dy  # (B, nh, T, hs)
    datt = dy @ v.swapaxes(-1, -2)  # (B, nh, T, T)
    if mask is not None:
        datt = datt * mask  # (B, nh, T, T) dropout's backward
    # The softmax backward gives exactly 0 at masked entries, because att is 0 there:
    # the causal mask needs no separate backward.
    dpreatt = softmax.backward(datt, softmax.SoftmaxCache(att)) / math.sqrt(hs)  # (B, nh, T, T)
    # preatt = q @ k^T / sqrt(hs): again the two factors of a matmul (eq. (AT-dq), (AT-dk))
    dq = dpreatt @ k  # (B, nh, T, hs)
    dk = dpreatt.swapaxes(-1, -2) @ q  # (B, nh, T, hs)
    # a key/value head served its whole group of query heads: its gradient is the sum over the group (eq. (GQA-dk))
    dk = dk.reshape(B, nkv, nh // nkv, T, hs).sum(axis=2)  # (B, nkv, T, hs)
    dv = dv.reshape(B, nkv, nh // nkv, T, hs).sum(axis=2)  # (B, nkv, T, hs)
    for out, d in ((dq_out, dq), (dk_out, dk), (dv_out, dv)):
        out[...] = swap_heads(d)  # (B, T, nh, hs), (B, T, nkv, hs) x2
# --8<-- [end:backward]
