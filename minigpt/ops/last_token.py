"""The last token's hidden state: the gather that feeds a classification head, as the GPT paper classified a
sequence from the transformer's output at its last token (Hugging Face's GPT2ForSequenceClassification and
LlamaForSequenceClassification take the last token that is not padding):

    h[b] = x[b, last[b]]                     x (B, T, C), last (B,) -> h (B, C)

Its backward puts each dh[b] back where it came from, and zeros everywhere else: the other positions did not reach
the head, so the head's loss does not depend on them through this path.

Math and derivation: docs/finetuning.md. Test: tests/ops/test_last_token.py.
"""

from typing import NamedTuple

import numpy as np

from minigpt.validate import check_shape


class LastTokenCache(NamedTuple):
    shape: tuple  # (B, T, C) of x
    last: np.ndarray  # (B,) int64 the position taken from each row


# --8<-- [start:forward]
def forward(x, last):
    """x (B, T, C), last (B,) int in [0, T) -> h (B, C) = x[b, last[b]]."""
    B, T, C = x.shape
    last = np.asarray(last)
    check_shape("last", last, (B,))
    if last.dtype.kind not in "iu" or (B and (last.min() < 0 or last.max() >= T)):
        raise ValueError(f"last must hold integer positions in [0, {T}), one per sequence, got {last!r:.60}")
    return x[np.arange(B), last], LastTokenCache(x.shape, last)  # (B, C)
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(dh, cache):
    """dh (B, C) -> dx (B, T, C): dh[b] at position last[b] of row b, zero elsewhere."""
    B, T, C = cache.shape
    check_shape("last_token dh", dh, (B, C))
    dx = np.zeros((B, T, C), dtype=dh.dtype)  # (B, T, C)
    dx[np.arange(B), cache.last] = dh
    return dx
# --8<-- [end:backward]
