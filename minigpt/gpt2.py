"""GPT-2's parameters and block, which minigpt/model.py composes into the model:

    x = x + dropout(attn(ln_1(x)))                       attention sub-block
    x = x + dropout(c_proj(gelu(c_fc(ln_2(x)))))         MLP sub-block

Parameters are named and laid out as in Hugging Face's GPT-2 state dict: linear weights (in, out), used as
`x @ w + b`; the token embedding `transformer.wte.weight` is also the LM head (tied), and `transformer.wpe.weight` is
the learned table of positions. Llama's and Qwen's block: minigpt/llama.py. Docs: docs/model.md.
"""

from typing import NamedTuple

import numpy as np

from minigpt import block, lora
from minigpt.block import Step
from minigpt.config import GPTConfig
from minigpt.ops import attention, dropout, gelu, layernorm, linear, residual
from minigpt.ops.reference import NUMPY

WTE, WPE = "transformer.wte.weight", "transformer.wpe.weight"  # wte is also the LM head (tied)
EMBEDDING_DROPOUT = True  # GPT-2 drops embeddings too (embd_pdrop)
GAINS = ("ln_1.weight", "ln_2.weight", "ln_f.weight")  # the layer norms' gains, initialised to 1
RESIDUAL = ("c_proj.weight",)  # the two projections into the residual stream, initialised smaller (block.init_params)
BLOCKS = "transformer.h."  # the prefix of every block's parameters
LINEAR_IN_OUT = True  # the linears' weights are (in, out) (Hugging Face's Conv1D), used as x @ w
FUSED = ()  # no groups of linears on the same input: GPT-2's q, k and v are one weight already (c_attn)


class BlockCache(NamedTuple):  # what each op of one block saved for its backward
    ln_1: tuple
    c_attn: tuple  # the fused q, k, v projection
    attention: tuple  # the attention between the projections: q, k, v and what its backward reads
    attn_c_proj: tuple
    attn_dropout: tuple
    ln_2: tuple
    c_fc: tuple
    gelu: tuple
    c_proj: tuple
    mlp_dropout: tuple
    lora: dict  # LoRA's branch of each adapted linear, by name within the block (minigpt/lora.py); empty without


def param_shapes(config: GPTConfig) -> dict:
    """Name -> shape of every parameter, in Hugging Face GPT-2 state-dict order."""
    V, C, L = config.vocab_size, config.n_embd, config.n_layer
    shapes = {WTE: (V, C), WPE: (config.block_size, C)}
    for l in range(L):
        h = f"transformer.h.{l}."
        shapes[h + "ln_1.weight"] = (C,)
        shapes[h + "ln_1.bias"] = (C,)
        shapes[h + "attn.c_attn.weight"] = (C, 3 * C)
        shapes[h + "attn.c_attn.bias"] = (3 * C,)
        shapes[h + "attn.c_proj.weight"] = (C, C)
        shapes[h + "attn.c_proj.bias"] = (C,)
        shapes[h + "ln_2.weight"] = (C,)
        shapes[h + "ln_2.bias"] = (C,)
        shapes[h + "mlp.c_fc.weight"] = (C, 4 * C)
        shapes[h + "mlp.c_fc.bias"] = (4 * C,)
        shapes[h + "mlp.c_proj.weight"] = (4 * C, C)
        shapes[h + "mlp.c_proj.bias"] = (C,)
    shapes["transformer.ln_f.weight"] = (C,)
    shapes["transformer.ln_f.bias"] = (C,)
    if not config.bias:
        shapes = {name: shape for name, shape in shapes.items() if not name.endswith(".bias")}
    return shapes


# --8<-- [start:block_forward]
def block_forward(p, l, x, step: Step):
    """One pre-LN transformer block: x (B, T, C) -> x (B, T, C), with the parameters p and what the forward gives
    every block, step (minigpt/block.py). Each linear adds its LoRA branch where the model has adapters (lora.adapt):
    out unchanged without."""
    h, kernels, p_drop, rng = f"transformer.h.{l}.", step.kernels, step.dropout, step.rng
    B, T, C = x.shape
    nh, hs = step.config.n_head, step.config.head_dim
    branches = {}

    def project(module, x):  # linear, and its LoRA branch
        out, cache = block.linear(p, h + module + ".weight", x, p.get(h + module + ".bias"), step, LINEAR_IN_OUT)
        out, branches[module] = lora.adapt(p, h + module, x, out, step)
        return out, cache

    a, ln_1 = layernorm.forward(x, p[h + "ln_1.weight"], p.get(h + "ln_1.bias"), kernels=kernels)  # (B, T, C)
    qkv, c_attn = project("attn.c_attn", a)  # (B, T, 3C)
    q, k, v = (part.reshape(B, T, nh, hs) for part in np.split(qkv, 3, axis=2))  # (B, T, nh, hs) each: views of qkv
    kv_cache = None if step.kv_cache is None else step.kv_cache[l]
    y, attention_cache = attention.forward(q, k, v, p_drop, rng, kv_cache, kernels=kernels)  # (B, T, C)
    a, attn_c_proj = project("attn.c_proj", y)  # (B, T, C)
    a, attn_drop = dropout.forward(a, p_drop, rng, kernels=kernels)  # (B, T, C)
    x = residual.add(x, a, kernels=kernels)  # (B, T, C) into a's new array (nothing else holds it)
    m, ln_2 = layernorm.forward(x, p[h + "ln_2.weight"], p.get(h + "ln_2.bias"), kernels=kernels)  # (B, T, C)
    m, c_fc = project("mlp.c_fc", m)  # (B, T, 4C)
    m, gelu_cache = gelu.forward(m, kernels=kernels)  # (B, T, 4C)
    m, c_proj = project("mlp.c_proj", m)  # (B, T, C)
    m, mlp_drop = dropout.forward(m, p_drop, rng, kernels=kernels)  # (B, T, C)
    x = residual.add(x, m, kernels=kernels)  # (B, T, C) into m's new array
    return x, BlockCache(ln_1, c_attn, attention_cache, attn_c_proj, attn_drop, ln_2, c_fc, gelu_cache, c_proj,
                         mlp_drop, {name: c for name, c in branches.items() if c is not None})
# --8<-- [end:block_forward]


# --8<-- [start:block_backward]
def block_backward(l, dx, c, step: Step, grads):
    """The reverse of block_forward: dx (B, T, C) -> dx (B, T, C); writes this block's grads (none for a frozen
    weight, step.frozen: minigpt/lora.py)."""
    h, kernels = f"transformer.h.{l}.", step.kernels
    B, T, C = dx.shape
    nh, hs = step.config.n_head, step.config.head_dim

    def project_backward(module, dout, cache):  # linear's backward, and its LoRA branch's
        trains = h + module + ".weight" not in step.frozen
        din, dw, db = linear.backward(dout, cache, kernels=kernels, weight_grad=trains)
        if trains:
            grads[h + module + ".weight"], grads[h + module + ".bias"] = dw, db
        return lora.adapt_backward(dout, c.lora.get(module), din, h + module, grads, kernels=kernels)

    # x = x + m: the residual passes dx through unchanged and also feeds it into the MLP branch
    dm = dropout.backward(dx, c.mlp_dropout, kernels=kernels)  # (B, T, C)
    dm = project_backward("mlp.c_proj", dm, c.c_proj)  # (B, T, 4C)
    dm = gelu.backward(dm, c.gelu, kernels=kernels)  # (B, T, 4C)
    dm = project_backward("mlp.c_fc", dm, c.c_fc)  # (B, T, C)
    dm, grads[h + "ln_2.weight"], grads[h + "ln_2.bias"] = layernorm.backward(dm, c.ln_2, kernels=kernels)  # (B, T, C)
    dx = residual.add(dx, dm, kernels=kernels)  # (B, T, C) into dm's new array
    # x = x + a: the same for the attention branch
    da = dropout.backward(dx, c.attn_dropout, kernels=kernels)  # (B, T, C)
    dy = project_backward("attn.c_proj", da, c.attn_c_proj)  # (B, T, C)
    dqkv = np.empty((B, T, 3 * C), dtype=dx.dtype)  # (B, T, 3C) the split's backward: dq, dk, dv side by side
    attention.backward(dy, c.attention, kernels=kernels, out=dqkv.reshape(B, T, 3 * nh, hs))  # (B, T, nh, hs) x3
    da = project_backward("attn.c_attn", dqkv, c.c_attn)  # (B, T, C)
    da, grads[h + "ln_1.weight"], grads[h + "ln_1.bias"] = layernorm.backward(da, c.ln_1, kernels=kernels)  # (B, T, C)
    dx = residual.add(dx, da, kernels=kernels)  # (B, T, C) into da's new array
    return dx
# --8<-- [end:block_backward]


def final_norm(p, config, x, kernels=NUMPY):
    """ln_f: x (B, T, C) -> (B, T, C), and its cache."""
    return layernorm.forward(x, p["transformer.ln_f.weight"], p.get("transformer.ln_f.bias"), kernels=kernels)


def final_norm_backward(dx, cache, grads, kernels=NUMPY):
    """The reverse of final_norm: dx (B, T, C) -> dx (B, T, C); ln_f's gradients into grads."""
    dx, grads["transformer.ln_f.weight"], grads["transformer.ln_f.bias"] = layernorm.backward(dx, cache,
                                                                                              kernels=kernels)
    return dx
