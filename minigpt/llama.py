"""Llama's and Qwen 3's parameters and block, which minigpt/model.py composes into the model:

    a = rmsnorm(x)                                              input_layernorm
    q, k, v = a Wq^T, a Wk^T, a Wv^T                            nh query heads, nkv key/value heads (grouped-query)
    q, k = rmsnorm(q), rmsnorm(k)     (qwen3 only)              QK-norm, over each head's hs channels
    q, k = rope(q), rope(k)                                     positions, as rotations of each head's channel pairs
    x = x + attention(q, k, v) Wo^T                             causal attention, no dropout on the residual
    m = rmsnorm(x)                                              post_attention_layernorm
    x = x + (silu(m Wgate^T) * m Wup^T) Wdown^T                 the SwiGLU MLP

There are no biases and no table of positions; the LM head is `lm_head.weight` (V, C) unless tie_word_embeddings,
when it is the token embedding, as in GPT-2. Parameters are named and laid out as in Hugging Face's LlamaForCausalLM
and Qwen3ForCausalLM state dicts: linear weights (out, in), so each linear op takes the transposed view `w.T` and its
weight's gradient is the transpose of the op's (linear.backward gives a dw laid out as the w it was given, so dw.T is
contiguous). Dropout (config.dropout, while training) drops attention probabilities only, as LlamaConfig's
attention_dropout does. GPT-2's block: minigpt/gpt2.py. Docs: docs/llama.md.
"""

from typing import NamedTuple

from minigpt import block, lora
from minigpt.block import Step
from minigpt.config import GPTConfig
from minigpt.ops import attention, linear, residual, rmsnorm, rope, swiglu
from minigpt.ops.reference import NUMPY

WTE, WPE, NORM = "model.embed_tokens.weight", None, "model.norm.weight"  # no WPE: rotary embeddings turn q and k
EMBEDDING_DROPOUT = False  # Hugging Face's Llama drops nothing on the embeddings
GAINS = ("norm.weight", "layernorm.weight")  # the RMSNorms' gains, initialised to 1
RESIDUAL = ("o_proj.weight", "down_proj.weight")  # the projections into the residual stream (block.init_params)
BLOCKS = "model.layers."  # the prefix of every block's parameters
LINEAR_IN_OUT = False  # the linears' weights are (out, in) (torch's nn.Linear), used as x @ w.T
# the linears of a block that multiply the same input: their weights lie side by side in one array (GPT.fused), and a
# decoding step makes one product of each group (block.linears)
FUSED = (("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ("mlp.gate_proj", "mlp.up_proj"))


class BlockCache(NamedTuple):  # what each op of one block saved for its backward
    input_layernorm: tuple
    q_proj: tuple
    k_proj: tuple
    v_proj: tuple
    q_norm: tuple | None  # qwen3's QK-norm; None for llama
    k_norm: tuple | None
    rope: tuple  # the angles of these positions (the same arrays in every block)
    attention: tuple  # the attention between the projections: q, k, v and what its backward reads
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


# --8<-- [start:block_forward]
def block_forward(p, l, x, step: Step):
    """One block: x (B, T, C) -> x (B, T, C), with the parameters p and what the forward gives every block, step
    (minigpt/block.py): among it step.angles, the rotary embeddings' cos and sin of these T positions (rope.angles).
    Each linear adds its LoRA branch where the model has adapters (lora.adapt): out unchanged without."""
    cfg, kernels = step.config, step.kernels
    h, eps = f"model.layers.{l}.", cfg.norm_eps
    B, T, C = x.shape
    nh, nkv, hs = cfg.n_head, cfg.n_kv_head, cfg.head_dim
    branches = {}

    def project(modules, x):  # linears of one input (weights (out, in), used transposed), and their LoRA branches
        done = block.linears(p, tuple(h + module + ".weight" for module in modules), x, step, LINEAR_IN_OUT)
        outs = []
        for module, (out, cache) in zip(modules, done):
            out, branches[module] = lora.adapt(p, h + module, x, out, step)
            outs.append((out, cache))
        return outs

    a, input_layernorm = rmsnorm.forward(x, p[h + "input_layernorm.weight"], eps, kernels=kernels)  # (B, T, C)
    # (B, T, nh hs), (B, T, nkv hs) x2
    (q, q_proj), (k, k_proj), (v, v_proj) = project(("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), a)
    q_norm = k_norm = None
    if cfg.arch == "qwen3":  # QK-norm: each head's query and key, hs channels, is one row of an RMSNorm
        q, q_norm = rmsnorm.forward(q.reshape(B, T * nh, hs), p[h + "self_attn.q_norm.weight"], eps,
                                    kernels=kernels)  # (B, T nh, hs)
        k, k_norm = rmsnorm.forward(k.reshape(B, T * nkv, hs), p[h + "self_attn.k_norm.weight"], eps,
                                    kernels=kernels)  # (B, T nkv, hs)
    q, rope_cache = rope.forward(q.reshape(B, T, nh, hs), step.angles, kernels=kernels)  # (B, T, nh, hs)
    k, _ = rope.forward(k.reshape(B, T, nkv, hs), step.angles, kernels=kernels)  # (B, T, nkv, hs)
    kv_cache = None if step.kv_cache is None else step.kv_cache[l]
    y, attention_cache = attention.forward(q, k, v.reshape(B, T, nkv, hs), step.dropout, step.rng, kv_cache,
                                           kernels=kernels)  # (B, T, nh hs)
    [(a, o_proj)] = project(("self_attn.o_proj",), y)  # (B, T, C)
    x = residual.add(x, a, kernels=kernels)  # (B, T, C) into a's new array (nothing else holds it)
    m, post_attention_layernorm = rmsnorm.forward(x, p[h + "post_attention_layernorm.weight"], eps,
                                                  kernels=kernels)  # (B, T, C)
    (g, gate_proj), (u, up_proj) = project(("mlp.gate_proj", "mlp.up_proj"), m)  # (B, T, F) x2
    m, swiglu_cache = swiglu.forward(g, u, kernels=kernels)  # (B, T, F) silu(g) * u
    [(m, down_proj)] = project(("mlp.down_proj",), m)  # (B, T, C)
    x = residual.add(x, m, kernels=kernels)  # (B, T, C) into m's new array
    return x, BlockCache(input_layernorm, q_proj, k_proj, v_proj, q_norm, k_norm, rope_cache, attention_cache, o_proj,
                         post_attention_layernorm, gate_proj, up_proj, swiglu_cache, down_proj,
                         {name: c for name, c in branches.items() if c is not None})
# --8<-- [end:block_forward]


# --8<-- [start:block_backward]
def block_backward(l, dx, c, step: Step, grads):
    """The reverse of block_forward: dx (B, T, C) -> dx (B, T, C); writes this block's grads (none for a frozen
    weight, step.frozen: minigpt/lora.py). A weight W (out, in) entered its linear op as W.T, so its gradient is the
    transpose of the op's dw."""
    h, kernels = f"model.layers.{l}.", step.kernels

    def project_backward(module, dout, cache):  # linear's backward, and its LoRA branch's
        trains = h + module + ".weight" not in step.frozen
        din, dw, _ = linear.backward(dout, cache, kernels=kernels, weight_grad=trains)
        if trains:
            grads[h + module + ".weight"] = dw.T  # (out, in)
        return lora.adapt_backward(dout, c.lora.get(module), din, h + module, grads, kernels=kernels)

    # x = x + m: the residual passes dx through unchanged and also feeds it into the MLP branch
    dm = project_backward("mlp.down_proj", dx, c.down_proj)  # (B, T, F)
    dg, du = swiglu.backward(dm, c.swiglu, kernels=kernels)  # (B, T, F) x2
    dm_up = project_backward("mlp.up_proj", du, c.up_proj)  # (B, T, C)
    dm = project_backward("mlp.gate_proj", dg, c.gate_proj)  # (B, T, C)
    dm = dm + dm_up  # (B, T, C) m fed both projections: their gradients add
    dm, grads[h + "post_attention_layernorm.weight"] = rmsnorm.backward(dm, c.post_attention_layernorm,
                                                                        kernels=kernels)  # (B, T, C)
    dx = residual.add(dx, dm, kernels=kernels)  # (B, T, C) into dm's new array
    # x = x + a: the same for the attention branch
    dy = project_backward("self_attn.o_proj", dx, c.o_proj)  # (B, T, nh hs)
    dq, dk, dv = attention.backward(dy, c.attention, kernels=kernels)  # (B, T, nh, hs), (B, T, nkv, hs) x2
    B, T, nh, hs = dq.shape
    nkv = dk.shape[2]
    dq = rope.backward(dq, c.rope, kernels=kernels)  # (B, T, nh, hs)
    dk = rope.backward(dk, c.rope, kernels=kernels)  # (B, T, nkv, hs)
    if c.q_norm is not None:
        dq, grads[h + "self_attn.q_norm.weight"] = rmsnorm.backward(dq.reshape(B, T * nh, hs), c.q_norm,
                                                                    kernels=kernels)  # (B, T nh, hs)
        dk, grads[h + "self_attn.k_norm.weight"] = rmsnorm.backward(dk.reshape(B, T * nkv, hs), c.k_norm,
                                                                    kernels=kernels)  # (B, T nkv, hs)
    da_v = project_backward("self_attn.v_proj", dv.reshape(B, T, nkv * hs), c.v_proj)  # (B, T, C)
    da_k = project_backward("self_attn.k_proj", dk.reshape(B, T, nkv * hs), c.k_proj)  # (B, T, C)
    da = project_backward("self_attn.q_proj", dq.reshape(B, T, nh * hs), c.q_proj)  # (B, T, C)
    da = da + da_k + da_v  # (B, T, C) a fed all three projections
    da, grads[h + "input_layernorm.weight"] = rmsnorm.backward(da, c.input_layernorm, kernels=kernels)  # (B, T, C)
    dx = residual.add(dx, da, kernels=kernels)  # (B, T, C) into da's new array
    return dx
# --8<-- [end:block_backward]


def final_norm(p, config, x, kernels=NUMPY):
    """model.norm: x (B, T, C) -> (B, T, C), and its cache."""
    return rmsnorm.forward(x, p[NORM], config.norm_eps, kernels=kernels)


def final_norm_backward(dx, cache, grads, kernels=NUMPY):
    """The reverse of final_norm: dx (B, T, C) -> dx (B, T, C); model.norm's gradient into grads."""
    dx, grads[NORM] = rmsnorm.backward(dx, cache, kernels=kernels)
    return dx
