"""Token + position embedding: out[b, t] = wte[idx[b, t]] + wpe[start + t]; token embedding alone without wpe (Llama and
Qwen have no table of positions: rotary embeddings turn their queries and keys instead, docs/ops/rope.md).

Math and derivation: docs/ops/embedding.md. Test: tests/ops/test_embedding.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.ops.reference import NUMPY
from minigpt.validate import check_same_dtype, check_shape, check_token_ids


class EmbeddingCache(NamedTuple):
    idx: np.ndarray  # (B, T) token ids, to route each row of dout back to its row of wte
    wte_shape: tuple  # (V, C)
    wpe_shape: tuple | None  # (block_size, C), or None without a table of positions
    start: int  # the position of idx[:, 0]


# --8<-- [start:forward]
def forward(idx, wte, wpe=None, start=0, kernels=NUMPY):
    """idx (B, T) int, wte (V, C), wpe (block_size, C) or None -> out (B, T, C). The tokens sit at positions
    start..start+T-1 (start > 0 when earlier positions are in a KV cache). kernels: a backend's table
    (minigpt/backends); NUMPY: the NumPy kernel below."""
    V, C = wte.shape
    idx = check_token_ids(idx, V)
    B, T = idx.shape
    if wpe is not None:
        check_shape("embedding wpe", wpe, (None, C))
        if start + T > wpe.shape[0]:
            raise ValueError(f"positions up to {start + T} exceed the {wpe.shape[0]} positions of wpe (block_size)")
    check_same_dtype("embedding", wte=wte, wpe=wpe)
    out = kernels.embedding.forward_kernel(idx, wte, wpe, start)  # (B, T, C)
    return out, EmbeddingCache(idx, wte.shape, None if wpe is None else wpe.shape, start)


def forward_kernel(idx, wte, wpe, start):
    T = idx.shape[1]
    out = wte[idx]  # (B, T, C) a copy: one row of wte per token
    if wpe is not None:
        out += wpe[start:start + T]  # (B, T, C)
    return out
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dout, cache, dwte=None, kernels=NUMPY):
    """dout (B, T, C) -> dwte (V, C), dwpe (block_size, C) or None. If dwte is given (a gradient of wte from
    another use of it, such as the tied LM head), the embedding's gradient is added into it."""
    if dwte is None:
        dwte = np.zeros(cache.wte_shape, dtype=dout.dtype)  # (V, C)
    check_shape("embedding dwte", dwte, cache.wte_shape)
    check_same_dtype("embedding backward", dout=dout, dwte=dwte)
    dwpe = None if cache.wpe_shape is None else np.zeros(cache.wpe_shape, dtype=dout.dtype)  # (block_size, C)
    kernels.embedding.backward_kernel(dwte, dwpe, dout, cache.idx, cache.start)
    return dwte, dwpe


def backward_kernel(dwte, dwpe, dout, idx, start):
    """Adds the gradients into dwte (V, C) and dwpe (block_size, C) (if there is one)."""
    T = idx.shape[1]
    # scatter-add: a token that appears k times receives the sum of its k rows of dout.
    # `dwte[idx] += dout` would keep only the last of them (the bug tests/test_gradcheck.py catches).
    np.add.at(dwte, idx, dout)  # (V, C)
    if dwpe is not None:
        dwpe[start:start + T] += dout.sum(axis=0)  # (T, C): each position is used once per sequence
# --8<-- [end:backward]
