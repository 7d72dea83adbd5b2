"""Causal self-attention through the C kernels (kernels/attention.c). Same contract as minigpt/ops/attention.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def forward_kernel(qkv, n_head, n_kv_head, P, mask):
    B, S, W = qkv.shape
    hs, T = W // (n_head + 2 * n_kv_head), S - P
    check_contiguous("attention", qkv=qkv, mask=mask)
    y = np.empty((B, T, n_head * hs), dtype=qkv.dtype)  # (B, T, nh hs)
    lse = np.empty((B, n_head, T), dtype=qkv.dtype)  # (B, nh, T)
    kernel("attention_forward", qkv.dtype)(ptr(y), ptr(lse), ptr(qkv), ptr(mask), B, S, n_head, n_kv_head, hs, P)
    return y, lse


def backward_kernel(dy, qkv, y, lse, n_head, n_kv_head, mask):
    B, T, W = qkv.shape
    check_contiguous("attention backward", dy=dy, qkv=qkv, y=y, lse=lse, mask=mask)
    dqkv = np.empty_like(qkv)  # (B, T, (nh + 2 nkv) hs)
    kernel("attention_backward", qkv.dtype)(ptr(dqkv), ptr(dy), ptr(qkv), ptr(y), ptr(lse), ptr(mask), B, T, n_head,
                                            n_kv_head, W // (n_head + 2 * n_kv_head))
    return dqkv
