"""Token + position embedding: the lookup and the scatter-add of its backward as plain loops.
Reference: minigpt/ops/embedding.py; math: docs/ops/embedding.md."""

import numpy as np
from numba import njit, prange

from minigpt.backends.common import check_arrays
from minigpt.backends.numba import threads_for
from minigpt.ops.embedding import EmbeddingCache
from minigpt.validate import check_shape, check_token_ids


@njit(cache=True, parallel=True)
def embedding_forward_kernel(out, idx, wte, wpe, start):
    """idx (B, T) -> out (B, T, C) = wte[idx] + wpe[start:start+T]"""
    B, T = idx.shape
    C = wte.shape[1]
    for bt in prange(B * T):
        b, t = bt // T, bt % T
        for i in range(C):
            out[b, t, i] = wte[idx[b, t], i] + wpe[start + t, i]


@njit(cache=True, parallel=True)
def embedding_backward_kernel(dwte, dwpe, dout, idx, start):
    """dout (B, T, C) -> dwte (V, C) and dwpe (block_size, C), accumulated into (they start at zero or
    hold another gradient of the same parameter). Parallel over channels: every thread owns its own
    columns, so the scatter-add of repeated tokens needs no atomics."""
    B, T, C = dout.shape
    for i in prange(C):
        for b in range(B):
            for t in range(T):
                dwte[idx[b, t], i] += dout[b, t, i]  # a repeated token accumulates
                dwpe[start + t, i] += dout[b, t, i]


def forward(idx, wte, wpe, start=0):
    """idx (B, T) int, wte (V, C), wpe (block_size, C) -> out (B, T, C)."""
    V, C = wte.shape
    idx = check_token_ids(idx, V)
    B, T = idx.shape
    if start + T > wpe.shape[0]:
        raise ValueError(f"positions up to {start + T} exceed the {wpe.shape[0]} positions of wpe (block_size)")
    check_shape("embedding wpe", wpe, (None, C))
    check_arrays("embedding", wte.dtype, wte=wte, wpe=wpe)
    out = np.empty((B, T, C), dtype=wte.dtype)  # (B, T, C)
    with threads_for(out.size):
        embedding_forward_kernel(out, np.ascontiguousarray(idx, dtype=np.int64), wte, wpe, start)
    return out, EmbeddingCache(idx, wte.shape, wpe.shape, start)


def backward(dout, cache, dwte=None):
    """dout (B, T, C) -> dwte (V, C), dwpe (block_size, C); added into dwte if it is given."""
    check_arrays("embedding backward", dout.dtype, dout=dout, dwte=dwte)
    if dwte is not None:
        check_shape("embedding dwte", dwte, cache.wte_shape)
    if dwte is None:
        dwte = np.zeros(cache.wte_shape, dtype=dout.dtype)  # (V, C)
    dwpe = np.zeros(cache.wpe_shape, dtype=dout.dtype)  # (block_size, C)
    with threads_for(dout.size):
        embedding_backward_kernel(dwte, dwpe, dout, np.ascontiguousarray(cache.idx, dtype=np.int64), cache.start)
    return dwte, dwpe
