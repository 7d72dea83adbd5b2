"""Linear layer through the C kernels (kernels/linear.c, on the matmul of kernels/gemm.c). Same contract as
minigpt/ops/linear.py. The weight is read through its strides: row-major (C, OC), or the transpose of a row-major
(OC, C) array, as the tied LM head's wte^T is; its gradient comes back in the same layout."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def strides(w):
    """w's (row, column) strides in elements, for a layout the kernel reads: row-major, or a transposed row-major."""
    if not (w.flags.c_contiguous or w.T.flags.c_contiguous):
        raise ValueError("linear: w must be C-contiguous or the transpose of a C-contiguous array")
    return w.strides[0] // w.itemsize, w.strides[1] // w.itemsize


def forward_kernel(x, w, b):
    N, C = x.shape
    OC = w.shape[1]
    check_contiguous("linear", x=x, b=b)
    out = np.empty((N, OC), dtype=x.dtype)  # (N, OC)
    kernel("linear_forward", x.dtype)(ptr(out), ptr(x), ptr(w), *strides(w), ptr(b), N, C, OC)
    return out


def backward_kernel(dout, x, w, has_bias):
    N, C = x.shape
    OC = w.shape[1]
    check_contiguous("linear backward", dout=dout, x=x)
    dx = np.empty_like(x)  # (N, C)
    dw = np.empty((C, OC), dtype=x.dtype) if w.flags.c_contiguous else np.empty((OC, C), dtype=x.dtype).T  # (C, OC)
    db = np.empty(OC, dtype=x.dtype) if has_bias else None  # (OC,)
    kernel("linear_backward", x.dtype)(ptr(dx), ptr(dw), ptr(db), ptr(dout), ptr(x), ptr(w), *strides(w), N, C, OC)
    return dx, dw, db
