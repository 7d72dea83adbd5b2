"""What the model hands a block, the same for every family, and the initialisation every family shares.

Each family's module (minigpt/gpt2.py; minigpt/llama.py for Llama and Qwen 3) offers one interface, which
minigpt/model.py calls for each block l:

    x, cache = family.block_forward(p, l, x, step)             x (B, T, C) -> x (B, T, C)
    dx = family.block_backward(l, dx, cache, step, grads)      the reverse: dx (B, T, C) -> dx (B, T, C)

p holds the model's parameters by name, grads receives the block's gradients by the same names, and step is a Step:
everything else a block needs, built once per forward (GPT.forward) and kept for its backward.
"""

import math
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from minigpt.config import GPTConfig
from minigpt.ops import linear as linear_op, q8_0, rope


class Step(NamedTuple):
    """What one forward gives each of its blocks besides the parameters and the input."""
    config: GPTConfig
    kernels: SimpleNamespace  # the table of kernels every op computes with (minigpt/backends)
    dropout: float  # the probability of dropout: config.dropout in training mode, 0 in evaluation
    lora_dropout: float  # that of LoRA's adapters' input (config.lora_dropout), likewise
    rng: np.random.Generator  # draws the dropout masks
    kv_cache: list | None  # one attention.KVCache a layer, when decoding (no backward then); None
    angles: rope.RopeCache | None  # cos and sin (T, hs) of the rotary embeddings at these positions; None for GPT-2,
    # whose positions were added to the tokens
    frozen: frozenset  # the names of the parameters that do not train (LoRA's base): their ops compute no gradient
    quantized: dict  # weight name -> its Q8_0 bytes, for a model quantized for inference (GPT.quantize); else empty
    fused: dict  # a family's group of weight names (q, k, v; gate, up) -> the array they are rows of (GPT.fused)


def linear(p, name: str, x, b, step: Step, in_out: bool):
    """The linear layer of weight `name` (and bias b or None) on x (B, T, C) -> out (B, T, OC), and its cache: from
    the weight's Q8_0 bytes in a quantized model (minigpt/ops/q8_0.py; no cache, no backward), else from the float
    weight p[name], laid out (in, out) if in_out (GPT-2's, used as x @ w), else (out, in) (Llama's, used as x @ w^T)."""
    if name in step.quantized:
        return q8_0.forward(x, step.quantized[name], b, kernels=step.kernels)
    w = p[name]
    return linear_op.forward(x, w if in_out else w.T, b, kernels=step.kernels)


def linears(p, names: tuple, x, step: Step, in_out: bool) -> list:
    """The linear layers (without biases) of the weights `names` on the same x: a list of (out, cache), as `linear`
    gives each. Decoding (step.kv_cache), weights that lie side by side as rows of one array (step.fused: Llama's q,
    k and v; gate and up) are one product, whose output is cut into theirs: one pass over one longer stream of
    weights, where a product per weight would start the threads for each and read small matrices more slowly
    (docs/inference.md). Outside decoding each is its own product, whose cache its backward reads."""
    fused = step.fused.get(names) if step.kv_cache is not None else None
    if fused is None:
        return [linear(p, name, x, None, step, in_out) for name in names]
    if names[0] in step.quantized:  # (then every weight of the group is: GPT.quantize quantizes the group at once)
        out, _ = q8_0.forward(x, fused, kernels=step.kernels)  # (B, T, sum of the outs)
    else:
        out, _ = linear_op.forward(x, fused.T, kernels=step.kernels)  # (B, T, sum of the outs)
    outs = [len(step.quantized[name]) if name in step.quantized else len(p[name]) for name in names]
    return [(np.ascontiguousarray(part), None) for part in cut(out, outs, axis=2)]


def cut(a, lengths, axis: int = 0) -> list:
    """a cut along `axis` into consecutive parts of these lengths: views (a fused group's rows, or its outputs)."""
    return np.split(a, np.cumsum(lengths)[:-1], axis=axis)


def init_params(shapes: dict, n_layer: int, gains: tuple, residual: tuple, rng, dtype) -> dict:
    """GPT-2's initialisation, which every family follows, for the parameters of `shapes`, drawn in its order: weights
    N(0, 0.02) (LlamaConfig's initializer_range too); the projections that write into the residual stream (names
    ending in one of `residual`) N(0, 0.02 / sqrt(2 L)), so that its variance does not grow with depth; norms' gains
    (names ending in one of `gains`) 1; biases 0."""
    residual_std = 0.02 / math.sqrt(2 * n_layer)
    params = {}
    for name, shape in shapes.items():
        if name.endswith(".bias"):
            p = np.zeros(shape)
        elif name.endswith(gains):
            p = np.ones(shape)
        elif name.endswith(residual):
            p = rng.normal(0.0, residual_std, size=shape)
        else:
            p = rng.normal(0.0, 0.02, size=shape)
        params[name] = p.astype(dtype)
    return params
