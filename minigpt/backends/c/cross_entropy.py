"""Softmax cross-entropy through the C kernels (kernels/cross_entropy.c). Same contract as minigpt/ops/cross_entropy.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def forward_kernel(logits, targets):
    B, T, V = logits.shape
    check_contiguous("cross_entropy", logits=logits)
    nll = np.empty((B, T), dtype=logits.dtype)  # (B, T)
    lse = np.empty((B, T), dtype=logits.dtype)  # (B, T)
    kernel("cross_entropy_forward", logits.dtype)(ptr(nll), ptr(lse), ptr(logits),
                                                  ptr(np.ascontiguousarray(targets, dtype=np.int64)), B * T, V)
    return nll, lse


def backward_kernel(logits, lse, targets, weight):
    B, T, V = logits.shape
    check_contiguous("cross_entropy backward", logits=logits, lse=lse, weight=weight)
    dlogits = np.empty_like(logits)  # (B, T, V)
    kernel("cross_entropy_backward", logits.dtype)(ptr(dlogits), ptr(logits), ptr(lse),
                                                   ptr(np.ascontiguousarray(targets, dtype=np.int64)), ptr(weight), B * T, V)
    return dlogits
