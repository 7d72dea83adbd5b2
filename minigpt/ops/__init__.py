"""The layers of a GPT, one module each, forward and backward side by side: GPT-2's (embedding, layer norm, attention,
GELU, ...) and those Llama and Qwen use instead (RMSNorm, rotary embeddings, SwiGLU).

Every op has `forward(...) -> (out, cache)` and `backward(dout, cache) -> gradients`, in plain NumPy.
"""

from minigpt.ops import (attention, cross_entropy, dropout, embedding, gelu, layernorm, linear, q8_0, residual, rmsnorm,
                         rope, softmax, swiglu)

__all__ = ["attention", "cross_entropy", "dropout", "embedding", "gelu", "layernorm", "linear", "q8_0", "residual",
           "rmsnorm", "rope", "softmax", "swiglu"]
