"""Causal self-attention, fused, after FlashAttention: for each (batch, head) and query position t, the
scores q_t . k_s / sqrt(hs) are computed only for s <= t (the masked ones never exist), softmaxed and
applied to the values in the same loop; the forward keeps only the log-sum-exp of each row, and the
backward recomputes the probabilities from it. No (B, nh, T, T) array is ever made: each (batch, head)
works on one row of T scores at a time, with its keys (and values) transposed into scratch so that every
inner loop runs along contiguous memory and compiles to vector instructions (there is no fast-math to
vectorise a dot product's sum). Heads are read from and written to the (B, T, 3C) and
(B, T, C) layouts directly, so there is no split, transpose or merge either.
Reference: minigpt/ops/attention.py; math: docs/ops/attention.md and docs/kernels.md."""

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from minigpt.backends.common import check_arrays
from minigpt.backends.numba import threads_for
from minigpt.ops import attention as reference
from minigpt.validate import check_shape


# The fused kernel holds no (B, nh, T, T) array, but on this machine it is no faster than the reference's
# batched BLAS matmuls and SIMD exp, and up to 1.6 times slower at short contexts
# (benchmarks/bench_attention.py, docs/kernels.md). So it is used where the memory matters: when the
# reference's scores of one layer would have this many entries (64 MB in float32) or more.
FUSED_MIN_SCORES = 1 << 24


class AttentionCache(NamedTuple):
    qkv_cache: object  # the linear cache of the fused projection (holds x)
    qkv: np.ndarray  # (B, T, 3C)
    lse: np.ndarray  # (B, nh, T) log-sum-exp of each row of scores: att = exp(score - lse)
    proj_cache: object  # the linear cache of the output projection (holds y, (B, T, C))
    n_head: int


# --8<-- [start:forward_kernel]
@njit(cache=True, parallel=True)
def attention_forward_kernel(y, lse, kt_scratch, row_scratch, qkv, n_head, scale):
    """qkv (B, T, 3C) -> y (B, T, C), lse (B, nh, T). Per (b, h): kt_scratch[bh] (hs, T) holds the
    head's keys transposed, row_scratch[bh] (2, max(T, hs)) one row of scores and one output row."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    zero = scale * 0  # a zero of the arrays' dtype: float32 sums stay float32, with no conversions
    for bh in prange(B * n_head):
        b, h = bh // n_head, bh % n_head
        q0, k0, v0 = h * hs, C + h * hs, 2 * C + h * hs  # where this head's q, k, v start in qkv
        kt = kt_scratch[bh]  # (hs, T) k^T: the scores become sums of contiguous rows
        row = row_scratch[bh, 0]  # (T,) preatt, then exp
        yt = row_scratch[bh, 1]  # (hs,) y_t
        for s in range(T):
            for d in range(hs):
                kt[d, s] = qkv[b, s, k0 + d]
        for t in range(T):
            # preatt[t, s] = q_t . k_s / sqrt(hs), only for s <= t: the masked scores are never computed
            for s in range(t + 1):
                row[s] = zero
            for d in range(hs):
                qd = qkv[b, t, q0 + d] * scale
                for s in range(t + 1):
                    row[s] += qd * kt[d, s]
            maxval = row[0]  # softmax, with the max subtracted
            for s in range(1, t + 1):
                maxval = max(maxval, row[s])
            total = zero
            for s in range(t + 1):
                row[s] = math.exp(row[s] - maxval)
                total += row[s]
            lse[b, h, t] = maxval + math.log(total)
            inv_total = 1 / total
            for s in range(t + 1):
                row[s] *= inv_total  # att[t, s]
            # y_t = sum_s att[t, s] v_s
            for d in range(hs):
                yt[d] = zero
            for s in range(t + 1):
                for d in range(hs):
                    yt[d] += row[s] * qkv[b, s, v0 + d]
            for d in range(hs):
                y[b, t, q0 + d] = yt[d]
# --8<-- [end:forward_kernel]


# --8<-- [start:backward_kernel]
@njit(cache=True, parallel=True)
def attention_backward_kernel(dqkv, dy, qkv, y, lse, n_head, scale, t_scratch, h_scratch):
    """dy (B, T, C) -> dqkv (B, T, 3C). Per (b, h): t_scratch[bh] (2 hs + 2, T) holds k^T, v^T and two
    rows; h_scratch[bh] (2 T + 3, hs) the gradients of the head's keys and values and three rows.
    Each (b, h) owns its own columns of dqkv, so the parallel loop needs no atomics."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    zero = scale * 0  # a zero of the arrays' dtype
    for bh in prange(B * n_head):
        b, h = bh // n_head, bh % n_head
        q0, k0, v0 = h * hs, C + h * hs, 2 * C + h * hs
        kt, vt = t_scratch[bh, :hs], t_scratch[bh, hs:2 * hs]  # (hs, T) each
        att, datt = t_scratch[bh, 2 * hs], t_scratch[bh, 2 * hs + 1]  # (T,) one row of att, its gradient
        dk, dv = h_scratch[bh, :T], h_scratch[bh, T:2 * T]  # (T, hs) each, accumulated over all t
        qt, dyt, dqt = h_scratch[bh, 2 * T], h_scratch[bh, 2 * T + 1], h_scratch[bh, 2 * T + 2]  # (hs,) each
        for s in range(T):
            for d in range(hs):
                kt[d, s] = qkv[b, s, k0 + d]
                vt[d, s] = qkv[b, s, v0 + d]
                dk[s, d] = zero
                dv[s, d] = zero
        for t in range(T):
            for d in range(hs):
                qt[d] = qkv[b, t, q0 + d]
                dyt[d] = dy[b, t, q0 + d]
            # recompute att[t, :] from the scores and the saved log-sum-exp, and datt[t, :] = dy_t . v_s
            for s in range(t + 1):
                att[s] = zero
                datt[s] = zero
            for d in range(hs):
                qd = qt[d] * scale
                dyd = dyt[d]
                for s in range(t + 1):
                    att[s] += qd * kt[d, s]
                    datt[s] += dyd * vt[d, s]  # eq. (AT-datt)
            for s in range(t + 1):
                att[s] = math.exp(att[s] - lse[b, h, t])
            # sum_s datt[t, s] att[t, s] = dy_t . y_t: the softmax backward's row sum, eq. (SM-dx)
            D = zero
            for d in range(hs):
                D += dyt[d] * y[b, t, q0 + d]
            for s in range(t + 1):
                datt[s] = att[s] * (datt[s] - D) * scale  # softmax backward, times the scores' 1/sqrt(hs)
            for d in range(hs):
                dqt[d] = zero
            for s in range(t + 1):
                for d in range(hs):
                    dqt[d] += datt[s] * qkv[b, s, k0 + d]  # eq. (AT-dq)
                for d in range(hs):
                    dk[s, d] += datt[s] * qt[d]  # eq. (AT-dk)
                for d in range(hs):
                    dv[s, d] += att[s] * dyt[d]  # eq. (AT-dv)
            for d in range(hs):
                dqkv[b, t, q0 + d] = dqt[d]
        for s in range(T):
            for d in range(hs):
                dqkv[b, s, k0 + d] = dk[s, d]
                dqkv[b, s, v0 + d] = dv[s, d]
# --8<-- [end:backward_kernel]


class Attention:
    """The attention op with its projections done by `linear` (BLAS, or the C kernels). Uses the
    reference for small score arrays (fewer than `fused_min_scores` entries, where it is faster) and for
    what the fused kernel does not do: dropout on the attention probabilities, and decoding with a
    key/value cache."""

    def __init__(self, linear, fused_min_scores=FUSED_MIN_SCORES):
        self.linear = linear
        self.fused_min_scores = fused_min_scores

    def forward(self, x, w_attn, b_attn, w_proj, b_proj, n_head, dropout_p=0.0, rng=None, kv_cache=None):
        B, T, C = x.shape
        if dropout_p > 0.0 or kv_cache is not None or B * n_head * T * T < self.fused_min_scores:
            return reference.forward(x, w_attn, b_attn, w_proj, b_proj, n_head, dropout_p, rng, kv_cache)
        if C % n_head != 0:
            raise ValueError(f"channels C={C} must be divisible by n_head={n_head}")
        check_shape("attention w_attn", w_attn, (C, 3 * C))
        qkv, qkv_cache = self.linear.forward(x, w_attn, b_attn)  # (B, T, 3C)
        check_arrays("attention", x.dtype, qkv=qkv)
        y = np.empty((B, T, C), dtype=x.dtype)  # (B, T, C)
        lse = np.empty((B, n_head, T), dtype=x.dtype)  # (B, nh, T)
        hs = C // n_head
        kt_scratch = np.empty((B * n_head, hs, T), dtype=x.dtype)  # (B * nh, hs, T)
        row_scratch = np.empty((B * n_head, 2, max(T, hs)), dtype=x.dtype)  # (B * nh, 2, max(T, hs))
        scale = x.dtype.type(1.0 / math.sqrt(hs))  # in the arrays' dtype, so float32 stays float32
        with threads_for(qkv.size * T):
            attention_forward_kernel(y, lse, kt_scratch, row_scratch, qkv, n_head, scale)
        out, proj_cache = self.linear.forward(y, w_proj, b_proj)  # (B, T, C)
        return out, AttentionCache(qkv_cache, qkv, lse, proj_cache, n_head)

    def backward(self, dout, cache):
        if not isinstance(cache, AttentionCache):  # the forward fell back to the reference
            return reference.backward(dout, cache)
        dy, dw_proj, db_proj = self.linear.backward(dout, cache.proj_cache)  # (B, T, C)
        y = cache.proj_cache.x  # (B, T, C) the attention output, input of the projection
        check_arrays("attention backward", y.dtype, dy=dy)
        B, T, C = y.shape
        hs = C // cache.n_head
        dqkv = np.empty_like(cache.qkv)  # (B, T, 3C)
        t_scratch = np.empty((B * cache.n_head, 2 * hs + 2, T), dtype=y.dtype)  # (B * nh, 2 hs + 2, T)
        h_scratch = np.empty((B * cache.n_head, 2 * T + 3, hs), dtype=y.dtype)  # (B * nh, 2 T + 3, hs)
        scale = y.dtype.type(1.0 / math.sqrt(hs))
        with threads_for(dqkv.size * T):
            attention_backward_kernel(dqkv, dy, cache.qkv, y, cache.lse, cache.n_head, scale, t_scratch, h_scratch)
        dx, dw_attn, db_attn = self.linear.backward(dqkv, cache.qkv_cache)  # (B, T, C)
        return dx, dw_attn, db_attn, dw_proj, db_proj
