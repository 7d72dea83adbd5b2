"""LoRA adapters in files: PEFT's (adapter_config.json and adapter_model.safetensors, as peft's save_pretrained writes
them and PeftModel.from_pretrained reads them), and the model with its adapters merged in, which the formats that
hold no adapters write (minigpt/hf.py, minigpt/gguf.py). A file format builds on the model, never the reverse:
minigpt/lora.py says which linears carry adapters and what they compute, and knows nothing of files.

    minigpt export --out-dir RUN --peft DIR                              # the adapters, as PEFT saves them
    minigpt export --out-dir RUN --hf DIR                                # the model with the adapters merged in

PEFT names each adapter after the module it wraps, under its own prefix for the model (`base_model.model.`):
`base_model.model.transformer.h.0.attn.c_attn.lora_A.weight` is minigpt's `transformer.h.0.attn.c_attn.lora_A.weight`.
A classifier's head, score.weight, is saved whole beside them (PEFT's modules_to_save), and so are the embedding
layers of a fine-tune that added tokens (config.lora_added_tokens), as PEFT saves those of a vocabulary that grew.
Adapters read back onto a base model: minigpt/load.py (read_adapters, with_adapters).
Docs: docs/finetuning.md. Tests: tests/test_adapters.py, tests/test_exports.py.
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from minigpt import lora
from minigpt import weights as safetensors
from minigpt.config import GPTConfig
from minigpt.ops import lora as lora_op
from minigpt.validate import check_object, read_json

PEFT_PREFIX = "base_model.model."  # PEFT's name for the model it wraps
CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
# the keys of an adapter_config.json that minigpt reads, and what each must hold (None: may be missing or null)
PEFT_FIELDS = {"peft_type": str, "r": int, "lora_alpha": float, "lora_dropout": (float, None),
               "target_modules": (list, str), "fan_in_fan_out": (bool, None), "bias": (str, None),
               "use_rslora": (bool, None), "use_dora": (bool, None), "layers_to_transform": (list, int, None),
               "modules_to_save": (list, None), "rank_pattern": (dict, None), "alpha_pattern": (dict, None)}


def without_adapters(config: GPTConfig) -> GPTConfig:
    """The config of the same model without adapters: what the adapters were trained on, and what merging gives."""
    return replace(config, lora_rank=None, lora_alpha=None, lora_dropout=0.0, lora_targets=None, lora_added_tokens=0)


def peft_base(config: GPTConfig) -> GPTConfig:
    """The config of the model PEFT puts the adapters on: without them, and without the rows the fine-tune added for
    its special tokens (which PEFT's user adds with resize_token_embeddings, and the adapters' file fills)."""
    return replace(without_adapters(config), vocab_size=config.vocab_size - config.lora_added_tokens)


def merged(config: GPTConfig, params: dict) -> tuple:
    """(config, params) of the same model without adapters: each adapted weight W + (alpha / r) B A, in its layout
    (GPT-2's (in, out), Llama's (out, in))."""
    out = {name: p for name, p in params.items() if not lora.is_adapter(name)}
    for name in lora.modules(config):
        w = name + ".weight"
        out[w] = lora_op.merge(params[w], params[name + ".lora_A.weight"], params[name + ".lora_B.weight"],
                               lora.scale(config), transposed=config.arch == "gpt2")
    return without_adapters(config), out


def peft_config(config: GPTConfig) -> dict:
    """adapter_config.json, as PEFT's LoraConfig writes it."""
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM" if config.labels is None else "SEQ_CLS",
        "r": config.lora_rank, "lora_alpha": config.lora_alpha, "lora_dropout": config.lora_dropout,
        "target_modules": lora.modules(config), "fan_in_fan_out": config.arch == "gpt2",  # GPT-2's Conv1D: (in, out)
        "bias": "none", "use_rslora": False, "use_dora": False, "init_lora_weights": True, "inference_mode": True,
        "modules_to_save": None if config.labels is None else ["score"], "layers_to_transform": None,
        "base_model_name_or_path": None,
    }


def save_peft(config: GPTConfig, params: dict, directory, embeddings: dict | None = None) -> None:
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
    tensors = {PEFT_PREFIX + name: p.astype(np.float32) for name, p in params.items() if lora.is_adapter(name)}
    if config.labels is not None:
        tensors[PEFT_PREFIX + "score.weight"] = params["score.weight"].astype(np.float32)
    if config.lora_added_tokens:
        tensors.update({PEFT_PREFIX + name: p.astype(np.float32) for name, p in embeddings.items()})
    safetensors.write(directory / WEIGHTS, tensors, metadata={"format": "pt"})


def read_peft(directory, config: GPTConfig) -> tuple:
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
    adapted = sorted({name.rsplit(".", 2)[0] for name in arrays if lora.is_adapter(name)})
    short = sorted({name.split(".", 3)[3] for name in adapted})
    try:
        adapted_config = replace(config, lora_rank=d["r"], lora_alpha=float(d["lora_alpha"]),
                                 lora_dropout=float(d.get("lora_dropout") or 0.0), lora_targets=",".join(short))
    except ValueError as e:
        raise refuse(str(e)) from None
    if sorted(lora.modules(adapted_config)) != adapted:
        raise refuse("its adapters are not on the same linears of every block")
    for name, shape in lora.param_shapes(adapted_config).items():
        if name not in arrays or arrays[name].shape != shape:
            raise ValueError(f"{directory / WEIGHTS}: {name!r} is missing or not of shape {shape}; the file is damaged "
                             f"or for another model")
    return adapted_config, arrays
