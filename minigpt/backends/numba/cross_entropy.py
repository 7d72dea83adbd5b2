"""Softmax cross-entropy, fused: one pass per row for the max, one for the log-sum-exp (the forward
keeps only lse, not a (B, T, V) array of probabilities), one pass per row in the backward writing
p - y straight from the logits. Rows run in parallel.
Reference: minigpt/ops/cross_entropy.py; math: docs/ops/cross_entropy.md."""

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from minigpt.backends.common import check_arrays
from minigpt.backends.numba import threads_for
from minigpt.ops.cross_entropy import IGNORE_INDEX, check_targets


class CrossEntropyCache(NamedTuple):
    logits: np.ndarray  # (B, T, V) the forward's input, kept (not copied) for the backward
    lse: np.ndarray  # (B * T,) log sum_v exp(logits)
    targets: np.ndarray  # (B * T,) int64, ignore_index where ignored
    n_valid: int
    ignore_index: int


@njit(cache=True, parallel=True)
def cross_entropy_forward_kernel(nll, lse, logits, targets, ignore_index):
    """logits (N, V), targets (N,) -> nll (N,) (0 where ignored), lse (N,)"""
    N, V = logits.shape
    for n in prange(N):
        maxval = -np.inf
        for v in range(V):
            maxval = max(maxval, logits[n, v])
        total = 0.0
        for v in range(V):
            total += math.exp(logits[n, v] - maxval)
        lse[n] = maxval + math.log(total)
        nll[n] = 0.0 if targets[n] == ignore_index else lse[n] - logits[n, targets[n]]


@njit(cache=True, parallel=True)
def cross_entropy_backward_kernel(dlogits, logits, lse, targets, scale, ignore_index):
    """dlogits (N, V) = scale * (softmax(logits) - onehot(targets)), 0 on ignored rows; eq. (CE-dlogits)"""
    N, V = logits.shape
    for n in prange(N):
        if targets[n] == ignore_index:
            for v in range(V):
                dlogits[n, v] = 0.0
        else:
            for v in range(V):
                dlogits[n, v] = scale * math.exp(logits[n, v] - lse[n])
            dlogits[n, targets[n]] -= scale


def forward(logits, targets, ignore_index=IGNORE_INDEX):
    """logits (B, T, V), targets (B, T) -> loss (scalar)."""
    B, T, V = logits.shape
    targets, _, n_valid = check_targets(logits, targets, ignore_index)
    check_arrays("cross_entropy", logits.dtype, logits=logits)
    flat_targets = np.ascontiguousarray(targets.reshape(-1), dtype=np.int64)  # (B * T,)
    nll = np.empty(B * T, dtype=np.float64)  # (B * T,)
    lse = np.empty(B * T, dtype=np.float64)  # (B * T,)
    with threads_for(logits.size):
        cross_entropy_forward_kernel(nll, lse, logits.reshape(B * T, V), flat_targets, ignore_index)
    loss = logits.dtype.type(nll.sum() / n_valid)
    return loss, CrossEntropyCache(logits, lse, flat_targets, n_valid, ignore_index)


def backward(dloss, cache):
    """dloss (scalar) -> dlogits (B, T, V)."""
    logits = cache.logits
    B, T, V = logits.shape
    dlogits = np.empty_like(logits)  # (B, T, V)
    scale = logits.dtype.type(dloss / cache.n_valid)  # in the logits' dtype, so p - y is exactly 0 where p = 1
    with threads_for(logits.size):
        cross_entropy_backward_kernel(dlogits.reshape(B * T, V), logits.reshape(B * T, V), cache.lse, cache.targets,
                                      scale, cache.ignore_index)
    return dlogits
