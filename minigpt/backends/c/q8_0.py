"""The Q8_0 linear layer through the C kernels (kernels/q8_0.c), which read the weight's bytes as they lie. Same
contract as minigpt/ops/q8_0.py."""

import numpy as np

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def forward_kernel(x, blocks, b):
    N, C = x.shape
    OC = blocks.shape[0]
    check_contiguous("q8_0", x=x, blocks=blocks, b=b)
    out = np.empty((N, OC), dtype=x.dtype)  # (N, OC)
    kernel("q8_0_linear_forward", x.dtype)(ptr(out), ptr(x), ptr(blocks), ptr(b), N, C, OC)
    return out
