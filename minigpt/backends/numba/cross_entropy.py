"""Softmax cross-entropy: per row, one pass for the max, one writing the exponentials into a scratch row (so
that they vectorise) and one summing them; nothing (B, T, V) is kept: the backward recomputes the
probabilities from the logits and lse, in one pass writing weight * (p - y) straight from the logits.
Reference: minigpt/ops/cross_entropy.py; math: docs/ops/cross_entropy.md."""

import math

import numba
import numpy as np

from minigpt.backends.numba import OPTIONS, compile_once, exp
from minigpt.backends.numba.attention import row_max
from minigpt.validate import check_contiguous


@numba.njit(**OPTIONS)
def forward_loops(nll, lse, logits, targets, e):
    """logits (N, V), targets (N,) -> nll (N,), lse (N,); e (V,) scratch for a row's exponentials"""
    N, V = logits.shape
    real = logits.dtype.type
    for n in range(N):
        logits_n = logits[n]  # (V,)
        maxval = row_max(logits_n, V)
        for v in range(V):
            e[v] = exp(logits_n[v] - maxval)
        total = 0.0  # float64: a sum of V terms
        for v in range(V):
            total += e[v]
        lse[n] = real(maxval + math.log(total))
        nll[n] = lse[n] - logits_n[targets[n]]


@numba.njit(**OPTIONS)
def backward_loops(dlogits, logits, lse, targets, weight):
    """dlogits (N, V) = weight (softmax(logits) - onehot(targets)), eq. (CE-dlogits)"""
    N, V = logits.shape
    for n in range(N):
        logits_n, dlogits_n = logits[n], dlogits[n]  # (V,) each
        lse_n, weight_n = lse[n], weight[n]
        for v in range(V):
            dlogits_n[v] = weight_n * exp(logits_n[v] - lse_n)
        dlogits_n[targets[n]] -= weight_n


@compile_once
def forward_kernel(logits, targets):
    B, T, V = logits.shape
    check_contiguous("cross_entropy", logits=logits)
    nll = np.empty((B, T), dtype=logits.dtype)  # (B, T)
    lse = np.empty((B, T), dtype=logits.dtype)  # (B, T)
    e = np.empty(V, dtype=logits.dtype)  # (V,)
    forward_loops(nll.reshape(-1), lse.reshape(-1), logits.reshape(B * T, V),
                  targets.reshape(-1).astype(np.int64), e)
    return nll, lse


@compile_once
def backward_kernel(logits, lse, targets, weight):
    B, T, V = logits.shape
    check_contiguous("cross_entropy backward", logits=logits)
    dlogits = np.empty_like(logits)  # (B, T, V)
    backward_loops(dlogits.reshape(B * T, V), logits.reshape(B * T, V), lse.reshape(-1),
                   targets.reshape(-1).astype(np.int64), weight.reshape(-1))
    return dlogits
