"""LoRA adapters on a model's linears (config.lora_rank, lora_alpha, lora_dropout, lora_targets): which linears, the
adapters' parameters and their initialisation, the branch each block adds, merging, and PEFT's files.

    minigpt train --init-from out --data F.jsonl --lora-rank 8           # adapters on the attention projections
    minigpt export --out-dir RUN --peft DIR                              # the adapters, as PEFT saves them
    minigpt export --out-dir RUN --hf DIR                                # the model with the adapters merged in

Each adapted linear W of every block gets two parameters, named as PEFT names them after the module:
`<module>.lora_A.weight` (r, in) and `<module>.lora_B.weight` (out, r), and computes
linear(x) + (alpha / r) dropout(x) A^T B^T (minigpt/ops/lora.py). Every other weight is frozen: its array is made
read-only, so it gets no gradient (minigpt/ops/linear.py skips dw) and no optimizer state (minigpt/run.py), and nothing
can change it. A classifier's head, score.weight, trains with the adapters (PEFT's modules_to_save). The rows a
fine-tune adds to the embedding for its special tokens (config.lora_added_tokens) are saved with the adapters, as
PEFT saves the embedding layers of a vocabulary that grew.
Docs: docs/finetuning.md, docs/ops/lora.md. Tests: tests/test_adapters.py, tests/test_exports.py.
"""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from minigpt import weights as safetensors
from minigpt.ops import lora as lora_op
from minigpt.validate import check_object, read_json

# the linears of a block that adapters may go on, by family, named within the block (their shapes: in_out)
ATTENTION = {"gpt2": ("attn.c_attn", "attn.c_proj"),
             "llama": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")}
MLP = {"gpt2": ("mlp.c_fc", "mlp.c_proj"), "llama": ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
PREFIX = {"gpt2": "transformer.h.", "llama": "model.layers."}
PEFT_PREFIX = "base_model.model."  # PEFT's name for the model it wraps
CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


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
def adapt(p, config, module, x, out, p_drop, rng, k):
    """out (B, T, out), the linear's output on x (B, T, in), plus the adapter's branch if `module` has one; and the
    branch's cache (None without an adapter)."""
    A = p.get(module + ".lora_A.weight")
    if A is None:
        return out, None
    update, cache = lora_op.forward(x, A, p[module + ".lora_B.weight"], scale(config), p_drop, rng, k)  # (B, T, out)
    return out + update, cache


def adapt_backward(dout, cache, dx, module, grads, k):
    """dx (B, T, in), the linear's input gradient, plus the branch's; the adapter's gradients into grads."""
    if cache is None:
        return dx
    dx_branch, grads[module + ".lora_A.weight"], grads[module + ".lora_B.weight"] = lora_op.backward(dout, cache, k)
    return dx + dx_branch  # (B, T, in) x fed both paths: their gradients add
# --8<-- [end:adapt]


def without_adapters(config):
    """The config of the same model without adapters: what the adapters were trained on, and what merging gives."""
    return replace(config, lora_rank=None, lora_alpha=None, lora_dropout=0.0, lora_targets=None, lora_added_tokens=0)


def peft_base(config):
    """The config of the model PEFT puts the adapters on: without them, and without the rows the fine-tune added for
    its special tokens (which PEFT's user adds with resize_token_embeddings, and the adapters' file fills)."""
    return replace(without_adapters(config), vocab_size=config.vocab_size - config.lora_added_tokens)


def merged(config, params: dict) -> tuple:
    """(config, params) of the same model without adapters: each adapted weight W + (alpha / r) B A, in its layout
    (GPT-2's (in, out), Llama's (out, in))."""
    out = {name: p for name, p in params.items() if not is_adapter(name)}
    for name in modules(config):
        w = name + ".weight"
        out[w] = lora_op.merge(params[w], params[name + ".lora_A.weight"], params[name + ".lora_B.weight"],
                               scale(config), transposed=config.arch == "gpt2")
    return without_adapters(config), out


# --- PEFT's files ------------------------------------------------------------------------------------------------


def peft_config(config) -> dict:
    """adapter_config.json, as PEFT's LoraConfig writes it."""
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM" if config.labels is None else "SEQ_CLS",
        "r": config.lora_rank, "lora_alpha": config.lora_alpha, "lora_dropout": config.lora_dropout,
        "target_modules": modules(config), "fan_in_fan_out": config.arch == "gpt2",  # GPT-2's Conv1D: (in, out)
        "bias": "none", "use_rslora": False, "use_dora": False, "init_lora_weights": True, "inference_mode": True,
        "modules_to_save": None if config.labels is None else ["score"], "layers_to_transform": None,
        "base_model_name_or_path": None,
    }


def save_peft(config, params: dict, directory, embeddings: dict | None = None) -> None:
    """adapter_config.json and adapter_model.safetensors (PEFT's tensor names) into directory (which exists).

    A fine-tune that added tokens (config.lora_added_tokens) needs `embeddings`, the model's embedding layers by
    their Hugging Face names (minigpt.hf.embedding_layers): they are saved whole with the adapters, as PEFT's
    save_pretrained saves them when the vocabulary has grown (save_embedding_layers), so that the base model, resized
    to the tokenizer saved beside the adapters, gets the new rows as the fine-tune made them."""
    if config.lora_added_tokens and embeddings is None:
        raise ValueError(f"the fine-tune added {config.lora_added_tokens} tokens to its base's vocabulary: their rows "
                         f"must be saved with the adapters (give the embedding layers)")
    directory = Path(directory)
    (directory / CONFIG).write_text(json.dumps(peft_config(config), indent=1))
    tensors = {PEFT_PREFIX + name: p.astype(np.float32) for name, p in params.items() if is_adapter(name)}
    if config.labels is not None:
        tensors[PEFT_PREFIX + "score.weight"] = params["score.weight"].astype(np.float32)
    if config.lora_added_tokens:
        tensors.update({PEFT_PREFIX + name: p.astype(np.float32) for name, p in embeddings.items()})
    safetensors.write(directory / WEIGHTS, tensors, metadata={"format": "pt"})


PEFT_FIELDS = {"peft_type": str, "r": int, "lora_alpha": float, "lora_dropout": (float, None),
               "target_modules": (list, str), "fan_in_fan_out": (bool, None), "bias": (str, None),
               "use_rslora": (bool, None), "use_dora": (bool, None), "layers_to_transform": (list, int, None),
               "modules_to_save": (list, None), "rank_pattern": (dict, None), "alpha_pattern": (dict, None)}


def read_peft(directory, config) -> tuple:
    """(config with the adapters' settings, adapter arrays named as minigpt names them) of a PEFT directory written
    for a model of `config`, or a ValueError naming what minigpt cannot represent. The arrays hold, besides the
    adapters, the whole layers saved with them (a classifier's score.weight; the embedding layers of a vocabulary
    that grew), which minigpt.load.read_adapters checks against the model."""
    directory = Path(directory)
    where = directory / CONFIG
    d = check_object(read_json(where), where, PEFT_FIELDS)
    refuse = lambda what: ValueError(f"{where}: {what}; minigpt's LoRA cannot represent it")  # noqa: E731
    if d["peft_type"] != "LORA":
        raise refuse(f"peft_type is {d['peft_type']!r}, not LORA")
    for key in ("use_rslora", "use_dora"):
        if d.get(key):
            raise refuse(f"{key} is set")
    if d.get("bias", "none") != "none":
        raise refuse(f"bias is {d['bias']!r}: the adapters train biases")
    if d.get("layers_to_transform") is not None or d.get("rank_pattern") or d.get("alpha_pattern"):
        raise refuse("some layers are adapted differently from others")
    arrays = {}
    for name, a in safetensors.read(directory / WEIGHTS).items():
        name = name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name
        arrays[name.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")] = a
    adapted = sorted({name.rsplit(".", 2)[0] for name in arrays if is_adapter(name)})
    short = sorted({name.split(".", 3)[3] for name in adapted})
    try:
        adapted_config = replace(config, lora_rank=d["r"], lora_alpha=float(d["lora_alpha"]),
                                 lora_dropout=float(d.get("lora_dropout") or 0.0), lora_targets=",".join(short))
    except ValueError as e:
        raise refuse(str(e)) from None
    if sorted(modules(adapted_config)) != adapted:
        raise refuse("its adapters are not on the same linears of every block")
    for name, shape in param_shapes(adapted_config).items():
        if name not in arrays or arrays[name].shape != shape:
            raise ValueError(f"{directory / WEIGHTS}: {name!r} is missing or not of shape {shape}; the file is damaged "
                             f"or for another model")
    return adapted_config, arrays

