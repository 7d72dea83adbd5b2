"""LoRA adapters on a model's linears (config.lora_rank, lora_alpha, lora_dropout, lora_targets): which linears, the
adapters' parameters and their initialisation, and the branch each block adds. Merging them into the weights, and
PEFT's files, are minigpt/peft.py's: a file format above the model.

    minigpt train --init-from out --data F.jsonl --lora-rank 8           # adapters on the attention projections
    minigpt export --out-dir RUN --peft DIR                              # the adapters, as PEFT saves them
    minigpt export --out-dir RUN --hf DIR                                # the model with the adapters merged in

Each adapted linear W of every block gets two parameters, named as PEFT names them after the module:
`<module>.lora_A.weight` (r, in) and `<module>.lora_B.weight` (out, r), and computes
linear(x) + (alpha / r) dropout(x) A^T B^T (minigpt/ops/lora.py). Every other weight is frozen, and the model names
them (GPT.frozen): they get no gradient (the blocks tell minigpt/ops/linear.py to skip dw) and no optimizer state
(minigpt/run.py), and their arrays are made read-only, so that nothing can change them. A classifier's head,
score.weight, trains with the adapters (PEFT's modules_to_save). The rows a fine-tune adds to the embedding for its
special tokens (config.lora_added_tokens) are saved with the adapters, as PEFT saves the embedding layers of a
vocabulary that grew (minigpt/peft.py).
Docs: docs/finetuning.md, docs/ops/lora.md. Tests: tests/test_adapters.py, tests/test_exports.py.
"""

import math

import numpy as np

from minigpt.block import Step
from minigpt.ops import lora as lora_op

# the linears of a block that adapters may go on, by family, named within the block (their shapes: in_out)
ATTENTION = {"gpt2": ("attn.c_attn", "attn.c_proj"),
             "llama": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")}
MLP = {"gpt2": ("mlp.c_fc", "mlp.c_proj"), "llama": ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
PREFIX = {"gpt2": "transformer.h.", "llama": "model.layers."}


def family(config) -> str:
    return "gpt2" if config.arch == "gpt2" else "llama"


def targets(config) -> tuple:
    """The adapted linears of each block (their names within it), from config.lora_targets."""
    f = family(config)
    known = ATTENTION[f] + MLP[f]
    spec = config.lora_targets
    if spec == "attention":
        return ATTENTION[f]
    if spec == "mlp":
        return MLP[f]
    if spec == "all":
        return known
    chosen = []
    for name in (s.strip() for s in spec.split(",")):
        matches = [m for m in known if m == name or m.endswith("." + name)]
        if not matches:
            raise ValueError(f"lora_targets: {name!r} is none of {config.arch}'s linears ({', '.join(known)}); "
                             f"or give attention, mlp or all")
        chosen += [m for m in matches if m not in chosen]
    return tuple(chosen)


def in_out(config, module: str) -> tuple:
    """(in, out) of a block's linear."""
    C, F = config.n_embd, config.intermediate_size
    q, kv = config.n_head * config.head_dim, config.n_kv_head * config.head_dim
    return {"attn.c_attn": (C, 3 * C), "attn.c_proj": (C, C), "mlp.c_fc": (C, F), "mlp.c_proj": (F, C),
            "self_attn.q_proj": (C, q), "self_attn.k_proj": (C, kv), "self_attn.v_proj": (C, kv),
            "self_attn.o_proj": (q, C), "mlp.gate_proj": (C, F), "mlp.up_proj": (C, F), "mlp.down_proj": (F, C)}[module]


def modules(config) -> list:
    """The full names of every adapted linear, block by block (transformer.h.0.attn.c_attn, ...)."""
    if config.lora_rank is None:
        return []
    return [f"{PREFIX[family(config)]}{l}.{m}" for l in range(config.n_layer) for m in targets(config)]


def param_shapes(config) -> dict:
    """Name -> shape of every adapter parameter, lora_A (r, in) and lora_B (out, r) of each adapted linear."""
    shapes = {}
    for name in modules(config):
        fan_in, fan_out = in_out(config, name.split(".", 3)[3])  # (transformer.h.0.attn.c_attn -> attn.c_attn)
        shapes[f"{name}.lora_A.weight"] = (config.lora_rank, fan_in)
        shapes[f"{name}.lora_B.weight"] = (fan_out, config.lora_rank)
    return shapes


def is_adapter(name: str) -> bool:
    return name.endswith((".lora_A.weight", ".lora_B.weight"))


def init_params(config, rng, dtype) -> dict:
    """PEFT's initialisation: A uniform in +-1/sqrt(in) (kaiming_uniform_ with a = sqrt(5)), B zero, so that the
    adapted model starts as the model."""
    params = {}
    for name, shape in param_shapes(config).items():
        if ".lora_A." in name:
            bound = 1.0 / math.sqrt(shape[1])
            params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
        else:
            params[name] = np.zeros(shape, dtype=dtype)
    return params


def scale(config) -> float:
    return config.lora_alpha / config.lora_rank


# --8<-- [start:adapt]
def adapt(p, module, x, out, step: Step):
    """out (B, T, out), the linear's output on x (B, T, in), plus the adapter's branch if `module` has one (its
    dropout step.lora_dropout); and the branch's cache (None without an adapter)."""
    A = p.get(module + ".lora_A.weight")
    if A is None:
        return out, None
    update, cache = lora_op.forward(x, A, p[module + ".lora_B.weight"], scale(step.config), step.lora_dropout,
                                    step.rng, step.kernels)  # (B, T, out)
    return out + update, cache


def adapt_backward(dout, cache, dx, module, grads, kernels):
    """dx (B, T, in), the linear's input gradient, plus the branch's; the adapter's gradients into grads."""
    if cache is None:
        return dx
    dx_branch, grads[module + ".lora_A.weight"], grads[module + ".lora_B.weight"] = lora_op.backward(dout, cache,
                                                                                                     kernels)
    return dx + dx_branch  # (B, T, in) x fed both paths: their gradients add
# --8<-- [end:adapt]

