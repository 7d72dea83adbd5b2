"""Llama's and Qwen 3's parameters and block, which minigpt/model.py composes into the model:

    a = rmsnorm(x)                                              input_layernorm
    q, k, v = a Wq^T, a Wk^T, a Wv^T                            nh query heads, nkv key/value heads (grouped-query)
    q, k = rmsnorm(q), rmsnorm(k)     (qwen3 only)              QK-norm, over each head's hs channels
    q, k = rope(q), rope(k)                                     positions, as rotations of each head's channel pairs
    x = x + attend(q, k, v) Wo^T                                causal attention, no dropout on the residual
    m = rmsnorm(x)                                              post_attention_layernorm
    x = x + (silu(m Wgate^T) * m Wup^T) Wdown^T                 the SwiGLU MLP

There are no biases and no table of positions; the LM head is `lm_head.weight` (V, C) unless tie_word_embeddings,
when it is the token embedding, as in GPT-2. Parameters are named and laid out as in Hugging Face's LlamaForCausalLM
and Qwen3ForCausalLM state dicts: linear weights (out, in), so each linear op takes the transposed view `w.T` and its
weight's gradient is the transpose of the op's (linear.backward gives a dw laid out as the w it was given, so dw.T is
contiguous). Dropout (config.dropout, while training) drops attention probabilities only, as LlamaConfig's
attention_dropout does. GPT-2's block: minigpt/gpt2.py. Docs: docs/llama.md.
"""

import math
from typing import NamedTuple

import numpy as np

from minigpt import lora
from minigpt.config import GPTConfig
from minigpt.ops import attention, linear, rmsnorm, rope, swiglu

WTE, WPE, NORM = "model.embed_tokens.weight", None, "model.norm.weight"  # no WPE: rotary embeddings turn q and k
EMBEDDING_DROPOUT = False  # Hugging Face's Llama drops nothing on the embeddings


class BlockCache(NamedTuple):  # what each op of one block saved for its backward
    input_layernorm: tuple
    q_proj: tuple
    k_proj: tuple
    v_proj: tuple
    q_norm: tuple | None  # qwen3's QK-norm; None for llama
    k_norm: tuple | None
    rope: tuple  # the angles of these positions (the same arrays in every block)
    attend: tuple
    o_proj: tuple
    post_attention_layernorm: tuple
    gate_proj: tuple
    up_proj: tuple
    swiglu: tuple
    down_proj: tuple
    lora: dict  # LoRA's branch of each adapted linear, by name within the block (minigpt/lora.py); empty without


def param_shapes(config: GPTConfig) -> dict:
    """Name -> shape of every parameter, in Hugging Face LlamaForCausalLM (or Qwen3ForCausalLM) state-dict order."""
    V, C, L = config.vocab_size, config.n_embd, config.n_layer
    nh, nkv, hs, F = config.n_head, config.n_kv_head, config.head_dim, config.intermediate_size
    shapes = {WTE: (V, C)}
    for l in range(L):
        h = f"model.layers.{l}."
        shapes[h + "self_attn.q_proj.weight"] = (nh * hs, C)
        shapes[h + "self_attn.k_proj.weight"] = (nkv * hs, C)
        shapes[h + "self_attn.v_proj.weight"] = (nkv * hs, C)
        shapes[h + "self_attn.o_proj.weight"] = (C, nh * hs)
        if config.arch == "qwen3":
            shapes[h + "self_attn.q_norm.weight"] = (hs,)
            shapes[h + "self_attn.k_norm.weight"] = (hs,)
        shapes[h + "mlp.gate_proj.weight"] = (F, C)
        shapes[h + "mlp.up_proj.weight"] = (F, C)
        shapes[h + "mlp.down_proj.weight"] = (C, F)
        shapes[h + "input_layernorm.weight"] = (C,)
        shapes[h + "post_attention_layernorm.weight"] = (C,)
    shapes[NORM] = (C,)
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, C)
    return shapes


def num_params(config: GPTConfig) -> int:
    """The number of parameters of param_shapes(config), counted without listing them."""
    V, C, L = config.vocab_size, config.n_embd, config.n_layer
    nh, nkv, hs, F = config.n_head, config.n_kv_head, config.head_dim, config.intermediate_size
    attn = 2 * nh * hs * C + 2 * nkv * hs * C + (2 * hs if config.arch == "qwen3" else 0)  # q, o; k, v; QK-norm
    per_block = attn + 3 * F * C + 2 * C  # the MLP's three matrices, the two norms
    return V * C + L * per_block + C + (0 if config.tie_word_embeddings else V * C)


def init_params(config: GPTConfig, rng, dtype) -> dict:
    """Weights N(0, 0.02) (LlamaConfig's initializer_range), the two projections into the residual stream of each
    block (o_proj, down_proj) N(0, 0.02 / sqrt(2 L)) as in GPT-2, so its variance does not grow with depth; RMSNorm
    gains 1."""
    residual_std = 0.02 / math.sqrt(2 * config.n_layer)
    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith(("norm.weight", "layernorm.weight")):
            p = np.ones(shape)
        elif name.endswith(("o_proj.weight", "down_proj.weight")):
            p = rng.normal(0.0, residual_std, size=shape)
        else:
            p = rng.normal(0.0, 0.02, size=shape)
        params[name] = p.astype(dtype)
    return params


# --8<-- [start:block_forward]
def block_forward(p, config, k, l, x, p_drop, rng, kv_cache=None, angles=None, lora_drop=0.0):
    """One block: x (B, T, C) -> x (B, T, C), with the parameters p, the kernels k, and angles, the rotary
    embeddings' cos and sin of these T positions (rope.angles). Each linear adds its LoRA branch where the model has
    adapters (lora.adapt; their dropout lora_drop): out unchanged without."""
    h, eps = f"model.layers.{l}.", config.norm_eps
    B, T, C = x.shape
    nh, nkv, hs = config.n_head, config.n_kv_head, config.head_dim
    branches = {}

    def project(module, x):  # linear (a weight (out, in), used as its transpose), and its LoRA branch
        out, cache = linear.forward(x, p[h + module + ".weight"].T, None, k)
        out, branches[module] = lora.adapt(p, config, h + module, x, out, lora_drop, rng, k)
        return out, cache

    a, input_layernorm = rmsnorm.forward(x, p[h + "input_layernorm.weight"], eps, k)  # (B, T, C)
    q, q_proj = project("self_attn.q_proj", a)  # (B, T, nh hs)
    kk, k_proj = project("self_attn.k_proj", a)  # (B, T, nkv hs)
    v, v_proj = project("self_attn.v_proj", a)  # (B, T, nkv hs)
    q_norm = k_norm = None
    if config.arch == "qwen3":  # QK-norm: each head's query and key, hs channels, is one row of an RMSNorm
        q, q_norm = rmsnorm.forward(q.reshape(B, T * nh, hs), p[h + "self_attn.q_norm.weight"], eps, k)  # (B, T nh, hs)
        kk, k_norm = rmsnorm.forward(kk.reshape(B, T * nkv, hs), p[h + "self_attn.k_norm.weight"], eps, k)  # (B, T nkv, hs)
    q, rope_cache = rope.forward(q.reshape(B, T, nh, hs), angles, k)  # (B, T, nh, hs)
    kk, _ = rope.forward(kk.reshape(B, T, nkv, hs), angles, k)  # (B, T, nkv, hs)
    qkv = np.concatenate([q.reshape(B, T, nh * hs), kk.reshape(B, T, nkv * hs), v], axis=2)  # (B, T, (nh + 2 nkv) hs)
    y, attend = attention.attend(qkv, nh, nkv, p_drop, rng, kv_cache, k)  # (B, T, nh hs)
    a, o_proj = project("self_attn.o_proj", y)  # (B, T, C)
    x = x + a  # (B, T, C) residual
    m, post_attention_layernorm = rmsnorm.forward(x, p[h + "post_attention_layernorm.weight"], eps, k)  # (B, T, C)
    g, gate_proj = project("mlp.gate_proj", m)  # (B, T, F)
    u, up_proj = project("mlp.up_proj", m)  # (B, T, F)
    m, swiglu_cache = swiglu.forward(g, u, k)  # (B, T, F) silu(g) * u
    m, down_proj = project("mlp.down_proj", m)  # (B, T, C)
    x = x + m  # (B, T, C) residual
    return x, BlockCache(input_layernorm, q_proj, k_proj, v_proj, q_norm, k_norm, rope_cache, attend, o_proj,
                         post_attention_layernorm, gate_proj, up_proj, swiglu_cache, down_proj,
                         {name: c for name, c in branches.items() if c is not None})
# --8<-- [end:block_forward]


# --8<-- [start:block_backward]
def block_backward(k, l, dx, c, grads):
    """The reverse of block_forward: dx (B, T, C) -> dx (B, T, C); writes this block's grads. A weight W (out, in)
    entered its linear op as W.T, so its gradient is the transpose of the op's dw (a frozen weight's is None:
    minigpt/lora.py)."""
    h = f"model.layers.{l}."
    B, T, C = dx.shape
    nh, nkv = c.attend.n_head, c.attend.n_kv_head

    def project_backward(module, dout, cache):  # linear's backward, and its LoRA branch's
        din, dw, _ = linear.backward(dout, cache, k)
        grads[h + module + ".weight"] = None if dw is None else dw.T
        return lora.adapt_backward(dout, c.lora.get(module), din, h + module, grads, k)

    # x = x + m: the residual passes dx through unchanged and also feeds it into the MLP branch
    dm = project_backward("mlp.down_proj", dx, c.down_proj)  # (B, T, F)
    dg, du = swiglu.backward(dm, c.swiglu, k)  # (B, T, F) x2
    dm_up = project_backward("mlp.up_proj", du, c.up_proj)  # (B, T, C)
    dm = project_backward("mlp.gate_proj", dg, c.gate_proj)  # (B, T, C)
    dm = dm + dm_up  # (B, T, C) m fed both projections: their gradients add
    dm, grads[h + "post_attention_layernorm.weight"] = rmsnorm.backward(dm, c.post_attention_layernorm, k)  # (B, T, C)
    dx = dx + dm  # (B, T, C)
    # x = x + a: the same for the attention branch
    dy = project_backward("self_attn.o_proj", dx, c.o_proj)  # (B, T, nh hs)
    dqkv = attention.attend_backward(dy, c.attend, k)  # (B, T, (nh + 2 nkv) hs)
    hs = dqkv.shape[2] // (nh + 2 * nkv)
    dq, dk, dv = np.split(dqkv, [nh * hs, (nh + nkv) * hs], axis=2)  # (B, T, nh hs), (B, T, nkv hs) x2
    dq, dk, dv = (np.ascontiguousarray(d) for d in (dq, dk, dv))  # each its own array: the kernels read contiguous ones
    dq = rope.backward(dq.reshape(B, T, nh, hs), c.rope, k)  # (B, T, nh, hs)
    dk = rope.backward(dk.reshape(B, T, nkv, hs), c.rope, k)  # (B, T, nkv, hs)
    if c.q_norm is not None:
        dq, grads[h + "self_attn.q_norm.weight"] = rmsnorm.backward(dq.reshape(B, T * nh, hs), c.q_norm, k)  # (B, T nh, hs)
        dk, grads[h + "self_attn.k_norm.weight"] = rmsnorm.backward(dk.reshape(B, T * nkv, hs), c.k_norm, k)  # (B, T nkv, hs)
    da_v = project_backward("self_attn.v_proj", dv, c.v_proj)  # (B, T, C)
    da_k = project_backward("self_attn.k_proj", dk.reshape(B, T, nkv * hs), c.k_proj)  # (B, T, C)
    da = project_backward("self_attn.q_proj", dq.reshape(B, T, nh * hs), c.q_proj)  # (B, T, C)
    da = da + da_k + da_v  # (B, T, C) a fed all three projections
    da, grads[h + "input_layernorm.weight"] = rmsnorm.backward(da, c.input_layernorm, k)  # (B, T, C)
    dx = dx + da  # (B, T, C)
    return dx
# --8<-- [end:block_backward]


def final_norm(p, config, k, x):
    """model.norm: x (B, T, C) -> (B, T, C), and its cache."""
    return rmsnorm.forward(x, p[NORM], config.norm_eps, k)


def final_norm_backward(k, dx, cache, grads):
    dx, grads[NORM] = rmsnorm.backward(dx, cache, k)
    return dx
