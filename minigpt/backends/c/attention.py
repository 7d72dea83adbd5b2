"""Causal self-attention through the C kernels (kernels/attention.c). Same contract as minigpt/ops/attention.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def forward_kernel(qkv, n_head, P, mask):
    B, S, C3 = qkv.shape
    C, T = C3 // 3, S - P
    check_contiguous("attention", qkv=qkv, mask=mask)
    y = np.empty((B, T, C), dtype=qkv.dtype)  # (B, T, C)
    lse = np.empty((B, n_head, T), dtype=qkv.dtype)  # (B, nh, T)
    kernel("attention_forward", qkv.dtype)(ptr(y), ptr(lse), ptr(qkv), ptr(mask), B, S, C, n_head, P)
    return y, lse


def backward_kernel(dy, qkv, y, lse, n_head, mask):
    B, T, C3 = qkv.shape
    check_contiguous("attention backward", dy=dy, qkv=qkv, y=y, lse=lse, mask=mask)
    dqkv = np.empty_like(qkv)  # (B, T, 3C)
    kernel("attention_backward", qkv.dtype)(ptr(dqkv), ptr(dy), ptr(qkv), ptr(y), ptr(lse), ptr(mask), B, T, C3 // 3, n_head)
    return dqkv
