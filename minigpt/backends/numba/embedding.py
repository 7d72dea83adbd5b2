"""Token + position embedding: the lookup, and the scatter-add of its backward, as loops over rows.
Reference: minigpt/ops/embedding.py; math: docs/ops/embedding.md."""

import numba
import numpy as np

from minigpt.backends.numba import OPTIONS, compile_once
from minigpt.validate import check_contiguous


@numba.njit(**OPTIONS)
def forward_loops(out, idx, wte, wpe, start):
    """idx (B, T) -> out (B, T, C) = wte[idx] + wpe[start:start+T], or wte[idx] for wpe None (numba compiles that
    case apart, the branch resolved when it compiles)."""
    B, T = idx.shape
    C = wte.shape[1]
    for b in range(B):
        for t in range(T):
            out_bt, wte_row = out[b, t], wte[idx[b, t]]  # (C,) each
            if wpe is None:
                for i in range(C):
                    out_bt[i] = wte_row[i]
            else:
                wpe_row = wpe[start + t]  # (C,)
                for i in range(C):
                    out_bt[i] = wte_row[i] + wpe_row[i]


@numba.njit(**OPTIONS)
def backward_loops(dwte, dwpe, dout, idx, start):
    """dout (B, T, C) -> added into dwte (V, C) and dwpe (block_size, C): a token that appears k times
    receives the sum of its k rows of dout."""
    B, T, C = dout.shape
    for b in range(B):
        for t in range(T):
            dout_bt, dwte_row = dout[b, t], dwte[idx[b, t]]  # (C,) each
            for i in range(C):
                dwte_row[i] += dout_bt[i]
            if dwpe is not None:
                dwpe_row = dwpe[start + t]  # (C,)
                for i in range(C):
                    dwpe_row[i] += dout_bt[i]


@compile_once
def forward_kernel(idx, wte, wpe, start):
    B, T = idx.shape
    check_contiguous("embedding", wte=wte, wpe=wpe)
    out = np.empty((B, T, wte.shape[1]), dtype=wte.dtype)  # (B, T, C)
    forward_loops(out, idx.astype(np.int64), wte, wpe, start)
    return out


@compile_once
def backward_kernel(dwte, dwpe, dout, idx, start):
    check_contiguous("embedding backward", dwte=dwte, dwpe=dwpe, dout=dout)
    backward_loops(dwte, dwpe, dout, idx.astype(np.int64), start)
