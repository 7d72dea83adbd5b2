"""Causal self-attention through the C kernels (kernels/attention.c). Same contract as minigpt/ops/attention.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr, view_ptr
from minigpt.validate import check_contiguous


def strides(op: str, q, k, v) -> tuple:
    """(q_row, q_batch, kv_row, kv_batch): how many elements apart the positions and the batches of q, and of k and v,
    lie. The kernels read (and write) each position's heads as one contiguous row, and the rows through these strides,
    so that views (GPT-2's q, k and v of its c_attn output, and their gradients; a key/value cache's first positions)
    are read and written where they are."""
    for name, a in (("q", q), ("k", k), ("v", v)):
        heads, channels = a.shape[2:]  # (an axis of length 1 has no stride to keep)
        if (channels > 1 and a.strides[3] != a.itemsize) or (heads > 1 and a.strides[2] != channels * a.itemsize):
            raise ValueError(f"{op}: each position's heads of {name} must be one contiguous row (its last two axes "
                             f"C-contiguous)")
    if k.strides != v.strides:
        raise ValueError(f"{op}: k and v must be laid out alike (the same strides)")
    return q.strides[1] // q.itemsize, q.strides[0] // q.itemsize, k.strides[1] // k.itemsize, k.strides[0] // k.itemsize


def forward_kernel(q, k, v, mask):
    B, T, n_head, hs = q.shape
    S, n_kv_head = k.shape[1], k.shape[2]
    check_contiguous("attention", mask=mask)
    y = np.empty((B, T, n_head * hs), dtype=q.dtype)  # (B, T, nh hs)
    lse = np.empty((B, n_head, T), dtype=q.dtype)  # (B, nh, T)
    kernel("attention_forward", q.dtype)(ptr(y), ptr(lse), view_ptr(q), view_ptr(k), view_ptr(v), ptr(mask), B, T, S,
                                         n_head, n_kv_head, hs, *strides("attention", q, k, v))
    return y, lse


def backward_kernel(dy, q, k, v, y, lse, mask, dq, dk, dv):
    B, T, n_head, hs = q.shape
    check_contiguous("attention backward", dy=dy, y=y, lse=lse, mask=mask)
    kernel("attention_backward", q.dtype)(view_ptr(dq), view_ptr(dk), view_ptr(dv), ptr(dy), view_ptr(q), view_ptr(k),
                                          view_ptr(v), ptr(y), ptr(lse), ptr(mask), B, T, n_head, k.shape[2], hs,
                                          *strides("attention backward", q, k, v),
                                          *strides("attention backward", dq, dk, dv))
