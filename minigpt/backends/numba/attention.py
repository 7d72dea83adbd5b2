"""Causal self-attention, fused: for each (batch, head), the (T, T) tile of scores, its causal
softmax and the products with the values, computed in one pass over memory that stays in the cache: the
scores of the future (s > t) are never computed, and nothing (B, nh, T, T) is written. The forward keeps
only the log-sum-exp of each row of scores; the backward recomputes the probabilities from it, as
FlashAttention does. Heads are read from the rows of q (B, T, nh, hs) and of k and v (B, S, nkv, hs), and written into
the rows of y (B, T, nh hs) (and of dq, dk, dv) directly: no transpose or merge. Query head h reads key/value head
h // (nh / nkv), and in the backward a key/value head's gradient sums its group's.

How the loops are written, so that the compiler makes vector instructions of them without fast-math:
- every inner loop is an "axpy", out[j] += a * x[j], along contiguous memory (the keys and values of a head
  are copied transposed into scratch where that needs it), never a sum into one number;
- each inner loop takes four rows of its input at once ("unroll and jam"): out[j] += (a0 x0[j] + a1 x1[j])
  + (a2 x2[j] + a3 x3[j]), a quarter of the passes over out, each doing twice the arithmetic per load;
- rows are taken as views (k[b, s, j], one head's hs channels) and indexed by the loop variable: an index such as
  k[b, s, j, d] makes numba check for a negative index at every step, which stops vectorisation;
- a row's max and sum run in four independent partial results, so that one addition need not wait for the
  previous one.
Reference: minigpt/ops/attention.py; math: docs/ops/attention.md and docs/kernels.md."""

import math

import numba
import numpy as np

from minigpt.backends.numba import OPTIONS, compile_once, exp
from minigpt.validate import check_contiguous

VECTOR = 32  # the compiler's vector loops take 32 floats at a time (4 registers of 8); a rest would go one by one


@numba.njit(inline="always")
def axpy4(out, n, a, x, i):
    """out[:n] += a[i] x[i] + ... + a[i+3] x[i+3], the rows x[i..i+3]: four axpys in one pass."""
    a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
    x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
    for j in range(n):
        out[j] += (a0 * x0[j] + a1 * x1[j]) + (a2 * x2[j] + a3 * x3[j])


# axpy_rows and axpy_rows_twice are functions of their own, called once per row: inlined by numba at each call
# (inline="always", as axpy4 is into them), their bodies were typed again at every use, about 6 s more to compile
# the two precisions, for no difference in speed that python benchmarks/bench_attention.py could measure.
@numba.njit(**OPTIONS)
def axpy_rows(out, n, a, x, start, stop):
    """out[:n] += sum over i in [start, stop) of a[i] x[i, :n], four rows a pass."""
    i = start
    while i + 4 <= stop:
        axpy4(out, n, a, x, i)
        i += 4
    while i < stop:
        ai, xi = a[i], x[i]
        for j in range(n):
            out[j] += ai * xi[j]
        i += 1


@numba.njit(**OPTIONS)
def axpy_rows_twice(out, out2, n, a, x, a2, x2, stop):
    """out[:n] += sum_{i < stop} a[i] x[i, :n] and out2[:n] += sum_{i < stop} a2[i] x2[i, :n], in the same
    passes: half the loops, each with twice the arithmetic."""
    i = 0
    while i + 4 <= stop:
        a0, a1, a2_, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        b0, b1, b2, b3 = a2[i], a2[i + 1], a2[i + 2], a2[i + 3]
        x0, x1, x2_, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        y0, y1, y2, y3 = x2[i], x2[i + 1], x2[i + 2], x2[i + 3]
        for j in range(n):
            out[j] += (a0 * x0[j] + a1 * x1[j]) + (a2_ * x2_[j] + a3 * x3[j])
            out2[j] += (b0 * y0[j] + b1 * y1[j]) + (b2 * y2[j] + b3 * y3[j])
        i += 4
    while i < stop:
        ai, xi, bi, yi = a[i], x[i], a2[i], x2[i]
        for j in range(n):
            out[j] += ai * xi[j]
            out2[j] += bi * yi[j]
        i += 1


@numba.njit(inline="always")
def row_max(row, n):
    m0 = m1 = m2 = m3 = row[0]
    n4 = n - n % 4
    for s in range(0, n4, 4):
        m0, m1, m2, m3 = max(m0, row[s]), max(m1, row[s + 1]), max(m2, row[s + 2]), max(m3, row[s + 3])
    for s in range(n4, n):
        m0 = max(m0, row[s])
    return max(max(m0, m1), max(m2, m3))


@numba.njit(inline="always")
def row_sum(row, n):
    zero = row[0] * 0
    s0 = s1 = s2 = s3 = zero
    n4 = n - n % 4
    for s in range(0, n4, 4):
        s0, s1, s2, s3 = s0 + row[s], s1 + row[s + 1], s2 + row[s + 2], s3 + row[s + 3]
    for s in range(n4, n):
        s0 += row[s]
    return (s0 + s1) + (s2 + s3)


# --8<-- [start:forward_loops]
@numba.njit(inline="always")
def forward_head(y, lse, work, q, k, v, b, h, mask, has_mask, scale):
    """The forward of query head h of sequence b. work (2 hs + 1, SP): its key/value head's keys transposed
    (hs, SP), one row of scores, and the values (P + T, hs), copied contiguous (numba vectorises loops over rows of
    known stride only); SP is P + T rounded up to whole vector loops."""
    T, n_head, hs = q.shape[1], q.shape[2], q.shape[3]
    S = k.shape[1]
    P = S - T
    real = q.dtype.type
    j = h // (n_head // k.shape[2])  # the key/value head of this query head's group
    SP = work.shape[1]
    kt, row = work[:hs], work[hs]  # (hs, SP), (SP,)
    v_j = work[hs + 1:].reshape(-1)[:S * hs].reshape(S, hs)  # (S, hs)
    for s in range(S):
        k_s, v_s = k[b, s, j], v[b, s, j]  # (hs,) each
        for d in range(hs):
            kt[d, s] = k_s[d]
            v_j[s, d] = v_s[d]
    for d in range(hs):
        for s in range(S, SP):
            kt[d, s] = real(0)
    for t in range(T):
        n = P + t + 1  # query t sees keys 0 .. P + t
        nv = min((n + VECTOR - 1) // VECTOR * VECTOR, SP)  # whole vector loops, no scalar rest
        q_t = q[b, t, h]  # (hs,)
        # preatt[t, s] = q_t . k_s / sqrt(hs) for s < n (and a few s < nv, not used): row = sum_d q_t[d] kt[d]
        for s in range(nv):
            row[s] = real(0)
        axpy_rows(row, nv, q_t, kt, 0, hs)
        # softmax, with the max subtracted (docs/ops/softmax.md); the scale comes in here, once per score
        maxval = row_max(row, n)
        for s in range(n):
            row[s] = exp((row[s] - maxval) * scale)
        total = row_sum(row, n)
        lse[b, h, t] = maxval * scale + math.log(total)
        inv_total = real(1) / total
        for s in range(n):
            row[s] *= inv_total  # att[t, s]
        if has_mask:
            mask_t = mask[b, h, t]  # (S,)
            for s in range(n):
                row[s] *= mask_t[s]  # dropout
        # y_t = sum_s att[t, s] v_s
        y_t = y[b, t, h]  # (hs,)
        for d in range(hs):
            y_t[d] = real(0)
        axpy_rows(y_t, hs, row, v_j, 0, n)


@numba.njit(**OPTIONS)
def forward_loops(y, lse, work, q, k, v, mask, has_mask, scale):
    """q (B, T, nh, hs), k and v (B, P + T, nkv, hs) -> y (B, T, nh, hs), lse (B, nh, T), for the T queries after P
    cached positions."""
    for b in range(q.shape[0]):
        for h in range(q.shape[2]):
            forward_head(y, lse, work, q, k, v, b, h, mask, has_mask, scale)
# --8<-- [end:forward_loops]


# --8<-- [start:backward_loops]
@numba.njit(inline="always")
def backward_head(dq, dk, dv, dy, q, k, v, y, lse, b, h, mask, has_mask, scale, work):
    """The backward of query head h of sequence b: into its own rows of dq, and added into its key/value head's rows
    of dk and dv, which its group shares. work (5 hs + 3 T, TP): k^T and v^T of the key/value head (hs, TP), the
    tiles att^T (with dropout), datt (then dpreatt) and dpreatt^T (T, TP), and q, k and dy (T, hs), copied
    contiguous; TP is T rounded up to whole vector loops."""
    T, n_head, hs = q.shape[1], q.shape[2], q.shape[3]
    real = q.dtype.type
    j = h // (n_head // k.shape[2])  # the key/value head of this query head's group
    TP = work.shape[1]
    kt, vt = work[:hs], work[hs:2 * hs]  # (hs, TP) each
    att_t = work[2 * hs:2 * hs + T]  # (T, TP) att_dropped^T: att_t[s, t] = att[t, s] * mask[t, s]
    datt = work[2 * hs + T:2 * hs + 2 * T]  # (T, TP) datt, then dpreatt, row t
    dpre_t = work[2 * hs + 2 * T:2 * hs + 3 * T]  # (T, TP) dpreatt^T
    heads = work[2 * hs + 3 * T:].reshape(-1)[:3 * T * hs].reshape(3, T, hs)
    q_h, k_j, dy_h = heads[0], heads[1], heads[2]  # (T, hs) each
    for s in range(T):
        q_s, k_s, v_s, dy_s = q[b, s, h], k[b, s, j], v[b, s, j], dy[b, s, h]  # (hs,) each
        for d in range(hs):
            kt[d, s] = k_s[d]
            vt[d, s] = v_s[d]
            q_h[s, d] = q_s[d]
            k_j[s, d] = k_s[d]
            dy_h[s, d] = dy_s[d]
    for d in range(hs):
        for s in range(T, TP):
            kt[d, s] = real(0)
            vt[d, s] = real(0)
    # rows of the tiles: recompute att[t, :] from the scores and the saved log-sum-exp, datt[t, s] = dy_t . v_s
    for t in range(T):
        n = t + 1
        nv = min((n + VECTOR - 1) // VECTOR * VECTOR, TP)  # whole vector loops, no scalar rest
        q_t, dy_t, y_t = q_h[t], dy_h[t], y[b, t, h]  # (hs,) each
        att, datt_t = dpre_t[t], datt[t]  # (TP,) each; this row of dpre_t serves as scratch until it is written
        for s in range(nv):
            att[s] = real(0)
            datt_t[s] = real(0)
        axpy_rows_twice(att, datt_t, nv, q_t, kt, dy_t, vt, hs)  # q_t . k_s and eq. (AT-datt)
        lse_t = lse[b, h, t]
        for s in range(nv):
            att[s] = exp(att[s] * scale - lse_t)  # and a few s >= n, not used
        # sum_s datt[t, s] att[t, s] = dy_t . y_t: the softmax backward's row sum, eq. (SM-dx)
        rowsum = real(0)
        for d in range(hs):
            rowsum += dy_t[d] * y_t[d]
        if has_mask:
            mask_t = mask[b, h, t]  # (T,)
            for s in range(n):
                datt_t[s] *= mask_t[s]  # dropout's backward
                att_t[s, t] = att[s] * mask_t[s]
        else:
            for s in range(n):
                att_t[s, t] = att[s]
        for s in range(n):
            datt_t[s] = att[s] * (datt_t[s] - rowsum) * scale  # dpreatt, times the scores' 1/sqrt(hs)
    for t in range(T):
        for s in range(t + 1):
            dpre_t[s, t] = datt[t, s]
    # the three products, each output row in one pass: dq_t = sum_{s <= t} dpreatt[t, s] k_s (AT-dq),
    # dk_s += sum_{t >= s} dpreatt[t, s] q_t (AT-dk), dv_s += sum_{t >= s} att_dropped[t, s] dy_t (AT-dv): added
    # into the key/value head's rows, which backward_loops zeroed before its group's first query head
    for t in range(T):
        dq_t = dq[b, t, h]  # (hs,)
        for d in range(hs):
            dq_t[d] = real(0)
        axpy_rows(dq_t, hs, datt[t], k_j, 0, t + 1)
    for s in range(T):
        dk_s, dv_s = dk[b, s, j], dv[b, s, j]  # (hs,) each
        axpy_rows(dk_s, hs, dpre_t[s], q_h, s, T)
        axpy_rows(dv_s, hs, att_t[s], dy_h, s, T)


@numba.njit(**OPTIONS)
def backward_loops(dq, dk, dv, dy, q, k, v, y, lse, mask, has_mask, scale, work):
    """dy (B, T, nh, hs) -> dq (B, T, nh, hs), dk and dv (B, T, nkv, hs). Each query head writes its own rows of dq,
    and adds into those of dk and dv of its key/value head, zeroed first here (eq. (GQA-dk): the sum over the
    group)."""
    B, T, n_head, hs = q.shape
    n_kv_head = k.shape[2]
    group = n_head // n_kv_head
    real = q.dtype.type
    for b in range(B):
        for j in range(n_kv_head):
            for s in range(T):
                dk_s, dv_s = dk[b, s, j], dv[b, s, j]  # (hs,) each
                for d in range(hs):
                    dk_s[d] = real(0)
                    dv_s[d] = real(0)
            for h in range(j * group, (j + 1) * group):
                backward_head(dq, dk, dv, dy, q, k, v, y, lse, b, h, mask, has_mask, scale, work)
# --8<-- [end:backward_loops]


def with_flag(mask, dtype):
    """(mask, True), or a placeholder and False without dropout: one compiled kernel serves both cases."""
    return (mask, True) if mask is not None else (np.ones((1, 1, 1, 1), dtype=dtype), False)


def contiguous(q, k, v) -> tuple:
    """q, k and v (or dq, dk and dv, where the backward writes), each C-contiguous: these loops are compiled for arrays of known strides (what lets numba vectorise
    them), so views (GPT-2's q, k and v, of its c_attn output; a cache's keys and values) are copied here, where the C
    kernels read them in place (minigpt/backends/c/attention.py); an array that is contiguous already is not."""
    return np.ascontiguousarray(q), np.ascontiguousarray(k), np.ascontiguousarray(v)


@compile_once
def forward_kernel(q, k, v, mask):
    B, T, n_head, hs = q.shape
    S = k.shape[1]
    q, k, v = contiguous(q, k, v)
    check_contiguous("attention", mask=mask)
    y = np.empty((B, T, n_head, hs), dtype=q.dtype)  # (B, T, nh, hs)
    lse = np.empty((B, n_head, T), dtype=q.dtype)  # (B, nh, T)
    SP = (S + VECTOR - 1) // VECTOR * VECTOR  # P + T rounded up
    work = np.empty((2 * hs + 1, SP), dtype=q.dtype)  # (2 hs + 1, SP)
    forward_loops(y, lse, work, q, k, v, *with_flag(mask, q.dtype), q.dtype.type(1.0 / math.sqrt(hs)))
    return y.reshape(B, T, n_head * hs), lse  # (B, T, nh hs), (B, nh, T)


@compile_once
def backward_kernel(dy, q, k, v, y, lse, mask, dq_out, dk_out, dv_out):
    B, T, n_head, hs = q.shape
    q, k, v = contiguous(q, k, v)
    check_contiguous("attention backward", dy=dy, y=y, lse=lse, mask=mask)
    dq, dk, dv = contiguous(dq_out, dk_out, dv_out)  # (B, T, nh, hs), (B, T, nkv, hs) x2: the outputs, or copies
    TP = (T + VECTOR - 1) // VECTOR * VECTOR  # T rounded up
    work = np.empty((5 * hs + 3 * T, TP), dtype=q.dtype)  # (5 hs + 3 T, TP)
    backward_loops(dq, dk, dv, dy.reshape(q.shape), q, k, v, y.reshape(q.shape), lse, *with_flag(mask, q.dtype),
                   q.dtype.type(1.0 / math.sqrt(hs)), work)
    for out, d in ((dq_out, dq), (dk_out, dk), (dv_out, dv)):
        if d is not out:  # (a view given as the output: computed in a copy, written back)
            out[...] = d
