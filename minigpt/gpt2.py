"""GPT-2's parameters and block, which minigpt/model.py composes into the model:

    x = x + dropout(attn(ln_1(x)))                       attention sub-block
    x = x + dropout(c_proj(gelu(c_fc(ln_2(x)))))         MLP sub-block

Parameters are named and laid out as in Hugging Face's GPT-2 state dict: linear weights (in, out), used as
`x @ w + b`; the token embedding `transformer.wte.weight` is also the LM head (tied), and `transformer.wpe.weight` is
the learned table of positions. Llama's and Qwen's block: minigpt/llama.py. Docs: docs/model.md.
"""

import math
from typing import NamedTuple

import numpy as np

from minigpt import lora
from minigpt.config import GPTConfig
from minigpt.ops import attention, dropout, gelu, layernorm, linear

WTE, WPE = "transformer.wte.weight", "transformer.wpe.weight"  # wte is also the LM head (tied)
EMBEDDING_DROPOUT = True  # GPT-2 drops embeddings too (embd_pdrop)


class BlockCache(NamedTuple):  # what each op of one block saved for its backward
    ln_1: tuple
    c_attn: tuple  # the fused q, k, v projection
    attend: tuple
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


def num_params(config: GPTConfig) -> int:
    """The number of parameters of param_shapes(config), counted without listing them."""
    V, C, L = config.vocab_size, config.n_embd, config.n_layer
    per_block = 2 * C + C * 3 * C + 3 * C + C * C + C + 2 * C + C * 4 * C + 4 * C + 4 * C * C + C
    biases = L * (C + 3 * C + C + C + 4 * C + C) + C  # ln_1, c_attn, attn.c_proj, ln_2, c_fc, mlp.c_proj; ln_f
    return V * C + config.block_size * C + L * per_block + 2 * C - (0 if config.bias else biases)


def init_params(config: GPTConfig, rng, dtype) -> dict:
    """GPT-2's initialisation: weights N(0, 0.02), the two residual projections of each block
    N(0, 0.02 / sqrt(2 L)) so the residual stream's variance does not grow with depth,
    biases 0, layer-norm gains 1."""
    residual_std = 0.02 / math.sqrt(2 * config.n_layer)
    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith(".bias"):
            p = np.zeros(shape)
        elif ".ln_" in name:
            p = np.ones(shape)
        elif name.endswith("c_proj.weight"):
            p = rng.normal(0.0, residual_std, size=shape)
        else:
            p = rng.normal(0.0, 0.02, size=shape)
        params[name] = p.astype(dtype)
    return params


# --8<-- [start:block_forward]
def block_forward(p, config, k, l, x, p_drop, rng, kv_cache=None, angles=None, lora_drop=0.0):
    """One pre-LN transformer block: x (B, T, C) -> x (B, T, C), with the parameters p, the kernels k. (angles, the
    rotary embeddings' of Llama's block, has no use here: GPT-2's positions were added to the tokens.) Each linear
    adds its LoRA branch where the model has adapters (lora.adapt; their dropout lora_drop): out unchanged without."""
    h = f"transformer.h.{l}."
    branches = {}

    def project(module, x):  # linear, and its LoRA branch
        out, cache = linear.forward(x, p[h + module + ".weight"], p.get(h + module + ".bias"), k)
        out, branches[module] = lora.adapt(p, config, h + module, x, out, lora_drop, rng, k)
        return out, cache

    a, ln_1 = layernorm.forward(x, p[h + "ln_1.weight"], p.get(h + "ln_1.bias"), kernels=k)  # (B, T, C)
    qkv, c_attn = project("attn.c_attn", a)  # (B, T, 3C)
    y, attend = attention.attend(qkv, config.n_head, config.n_head, p_drop, rng, kv_cache, k)  # (B, T, C)
    a, attn_c_proj = project("attn.c_proj", y)  # (B, T, C)
    a, attn_drop = dropout.forward(a, p_drop, rng, k)  # (B, T, C)
    x = x + a  # (B, T, C) residual
    m, ln_2 = layernorm.forward(x, p[h + "ln_2.weight"], p.get(h + "ln_2.bias"), kernels=k)  # (B, T, C)
    m, c_fc = project("mlp.c_fc", m)  # (B, T, 4C)
    m, gelu_cache = gelu.forward(m, k)  # (B, T, 4C)
    m, c_proj = project("mlp.c_proj", m)  # (B, T, C)
    m, mlp_drop = dropout.forward(m, p_drop, rng, k)  # (B, T, C)
    x = x + m  # (B, T, C) residual
    return x, BlockCache(ln_1, c_attn, attend, attn_c_proj, attn_drop, ln_2, c_fc, gelu_cache, c_proj, mlp_drop,
                         {name: c for name, c in branches.items() if c is not None})
# --8<-- [end:block_forward]


# --8<-- [start:block_backward]
def block_backward(k, l, dx, c, grads):
    """The reverse of block_forward: dx (B, T, C) -> dx (B, T, C); writes this block's grads (a frozen weight's are
    None: minigpt/lora.py)."""
    h = f"transformer.h.{l}."

    def project_backward(module, dout, cache):  # linear's backward, and its LoRA branch's
        din, grads[h + module + ".weight"], grads[h + module + ".bias"] = linear.backward(dout, cache, k)
        return lora.adapt_backward(dout, c.lora.get(module), din, h + module, grads, k)

    # x = x + m: the residual passes dx through unchanged and also feeds it into the MLP branch
    dm = dropout.backward(dx, c.mlp_dropout, k)  # (B, T, C)
    dm = project_backward("mlp.c_proj", dm, c.c_proj)  # (B, T, 4C)
    dm = gelu.backward(dm, c.gelu, k)  # (B, T, 4C)
    dm = project_backward("mlp.c_fc", dm, c.c_fc)  # (B, T, C)
    dm, grads[h + "ln_2.weight"], grads[h + "ln_2.bias"] = layernorm.backward(dm, c.ln_2, k)  # (B, T, C)
    dx = dx + dm  # (B, T, C)
    # x = x + a: the same for the attention branch
    da = dropout.backward(dx, c.attn_dropout, k)  # (B, T, C)
    dy = project_backward("attn.c_proj", da, c.attn_c_proj)  # (B, T, C)
    dqkv = attention.attend_backward(dy, c.attend, k)  # (B, T, 3C)
    da = project_backward("attn.c_attn", dqkv, c.c_attn)  # (B, T, C)
    da, grads[h + "ln_1.weight"], grads[h + "ln_1.bias"] = layernorm.backward(da, c.ln_1, k)  # (B, T, C)
    dx = dx + da  # (B, T, C)
    return dx
# --8<-- [end:block_backward]


def final_norm(p, config, k, x):
    """ln_f: x (B, T, C) -> (B, T, C), and its cache."""
    return layernorm.forward(x, p["transformer.ln_f.weight"], p.get("transformer.ln_f.bias"), kernels=k)


def final_norm_backward(k, dx, cache, grads):
    dx, grads["transformer.ln_f.weight"], grads["transformer.ln_f.bias"] = layernorm.backward(dx, cache, k)
    return dx
