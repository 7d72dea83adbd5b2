"""Token + position embedding through the C kernels (kernels/embedding.c). Same contract as minigpt/ops/embedding.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def forward_kernel(idx, wte, wpe, start):
    B, T = idx.shape
    C = wte.shape[1]
    check_contiguous("embedding", wte=wte, wpe=wpe)
    out = np.empty((B, T, C), dtype=wte.dtype)  # (B, T, C)
    kernel("embedding_forward", wte.dtype)(ptr(out), ptr(np.ascontiguousarray(idx, dtype=np.int64)), ptr(wte), ptr(wpe),
                                           B, T, C, start)
    return out


def backward_kernel(dwte, dwpe, dout, idx, start):
    B, T, C = dout.shape
    check_contiguous("embedding backward", dwte=dwte, dwpe=dwpe, dout=dout)
    kernel("embedding_backward", dout.dtype)(ptr(dwte), ptr(dwpe), ptr(dout), ptr(np.ascontiguousarray(idx, dtype=np.int64)),
                                             B, T, C, start)
