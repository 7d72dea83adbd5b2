"""Token + position embedding: out[b, t] = wte[idx[b, t]] + wpe[start + t].

Math and derivation: docs/ops/embedding.md. Test: tests/ops/test_embedding.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.validate import check_same_dtype, check_shape, check_token_ids


class EmbeddingCache(NamedTuple):
    idx: np.ndarray  # (B, T) token ids, to route each row of dout back to its row of wte
    wte_shape: tuple  # (V, C)
    wpe_shape: tuple  # (block_size, C)
    start: int  # the position of idx[:, 0]


# --8<-- [start:forward]
def forward(idx, wte, wpe, start=0, kernels=None):
    """idx (B, T) int, wte (V, C), wpe (block_size, C) -> out (B, T, C). The tokens sit at positions
    start..start+T-1 (start > 0 when earlier positions are in a KV cache). kernels: a backend's table
    (minigpt/backends); None: the NumPy kernel below."""
    V, C = wte.shape
    idx = check_token_ids(idx, V)
    B, T = idx.shape
    check_shape("embedding wpe", wpe, (None, C))
    check_same_dtype("embedding", wte=wte, wpe=wpe)
    if start + T > wpe.shape[0]:
        raise ValueError(f"positions up to {start + T} exceed the {wpe.shape[0]} positions of wpe (block_size)")
    kernel = forward_kernel if kernels is None else kernels.embedding.forward_kernel
    out = kernel(idx, wte, wpe, start)  # (B, T, C)
    return out, EmbeddingCache(idx, wte.shape, wpe.shape, start)


def forward_kernel(idx, wte, wpe, start):
    T = idx.shape[1]
    return wte[idx] + wpe[start:start + T]  # (B, T, C)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, dwte=None, kernels=None):
    """dout (B, T, C) -> dwte (V, C), dwpe (block_size, C). If dwte is given (a gradient of wte from
    another use of it, such as the tied LM head), the embedding's gradient is added into it."""
    if dwte is None:
        dwte = np.zeros(cache.wte_shape, dtype=dout.dtype)  # (V, C)
    check_shape("embedding dwte", dwte, cache.wte_shape)
    check_same_dtype("embedding backward", dout=dout, dwte=dwte)
    dwpe = np.zeros(cache.wpe_shape, dtype=dout.dtype)  # (block_size, C)
    kernel = backward_kernel if kernels is None else kernels.embedding.backward_kernel
    kernel(dwte, dwpe, dout, cache.idx, cache.start)
    return dwte, dwpe


def backward_kernel(dwte, dwpe, dout, idx, start):
    """Adds the gradients into dwte (V, C) and dwpe (block_size, C)."""
    T = idx.shape[1]
    # scatter-add: a token that appears k times receives the sum of its k rows of dout.
    # `dwte[idx] += dout` would keep only the last of them (the bug tests/test_gradcheck.py catches).
    np.add.at(dwte, idx, dout)  # (V, C)
    dwpe[start:start + T] += dout.sum(axis=0)  # (T, C): each position is used once per sequence
# --8<-- [end:backward]
