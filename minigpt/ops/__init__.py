"""The layers of a GPT, one module each, forward and backward side by side.

Every op has `forward(...) -> (out, cache)` and `backward(dout, cache) -> gradients`, in plain NumPy.
"""

from minigpt.ops import attention, cross_entropy, dropout, embedding, gelu, layernorm, linear, softmax

__all__ = ["attention", "cross_entropy", "dropout", "embedding", "gelu", "layernorm", "linear", "softmax"]
