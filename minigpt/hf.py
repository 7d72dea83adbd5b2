"""Hugging Face GPT-2 directories, safetensors only: `config.json` + `model.safetensors` (or shards listed in
`model.safetensors.index.json`), with a tokenizer when there is one (`vocab.json` + `merges.txt`).

minigpt's parameters already have the names and (in, out) layouts of Hugging Face's GPT-2, so reading and writing
check the configuration and move arrays; the few ways a Hugging Face state dict differs (a `transformer.` prefix
missing, the causal-mask buffers, the tied `lm_head.weight`) are handled here, in `to_minigpt`, and nowhere else. A
pickled `pytorch_model.bin` is never opened. A file format builds on the model, never the reverse:

    model = minigpt.hf.from_pretrained("gpt2-dir")       # what GPT2LMHeadModel.from_pretrained reads
    minigpt.hf.save_pretrained(model, "out-hf", tokenizer)

Docs: docs/gpt2.md. Tests: tests/test_hf.py.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np

from minigpt import weights as safetensors
from minigpt.config import GPTConfig
from minigpt.data import load_tokenizer
from minigpt.model import GPT, HF_EXTRAS
from minigpt.ops.layernorm import EPS
from minigpt.validate import check_object, read_json

TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")  # both names mean GPT-2's tanh approximation
MASK_BUFFERS = tuple(name for name in HF_EXTRAS if name.startswith(".attn"))  # the causal mask, built on the fly
INDEX = "model.safetensors.index.json"

# the keys of a GPT2Config that minigpt reads, and what each must hold (None: may be missing or null)
CONFIG_FIELDS = {
    "vocab_size": int, "n_positions": int, "n_layer": int, "n_head": int, "n_embd": int,
    "model_type": (str, None), "activation_function": (str, None), "layer_norm_epsilon": (float, None),
    "n_inner": (int, None), "resid_pdrop": (float, None), "bias": (bool, None), "tie_word_embeddings": (bool, None),
    "add_cross_attention": (bool, None), "scale_attn_weights": (bool, None),
    "scale_attn_by_inverse_layer_idx": (bool, None),
}


def hf_config(config: GPTConfig, eot_token: int | None = None) -> dict:
    """The model's shape as a Hugging Face GPT2Config."""
    d = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": EPS,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "tie_word_embeddings": True,
        "bias": config.bias,  # minigpt's own key: false means no biases, which GPT2LMHeadModel cannot hold
    }
    if eot_token is not None:
        d.update(bos_token_id=eot_token, eos_token_id=eot_token)
    return d


def read_config(path) -> GPTConfig:
    """The GPTConfig of a config.json, or a ValueError naming the file and what minigpt cannot represent."""
    d = check_object(read_json(path), path, CONFIG_FIELDS)
    get = lambda key, default: default if d.get(key) is None else d[key]  # noqa: E731  (null: the default)
    refuse = lambda what: ValueError(f"{path}: {what}; minigpt implements GPT-2 exactly and cannot represent it")  # noqa: E731
    if get("model_type", "gpt2") != "gpt2":
        raise refuse(f"model_type {d['model_type']!r} is not gpt2")
    if get("activation_function", "gelu_new") not in TANH_GELUS:
        raise refuse(f"activation_function {d['activation_function']!r} is not GPT-2's tanh GELU (gelu_new)")
    if get("add_cross_attention", False):
        raise refuse("the model has cross-attention (an encoder-decoder); GPT-2 is decoder-only")
    if abs(get("layer_norm_epsilon", EPS) - EPS) > 1e-12:
        raise refuse(f"layer_norm_epsilon {d['layer_norm_epsilon']} is not GPT-2's {EPS}")
    if get("n_inner", 4 * d["n_embd"]) != 4 * d["n_embd"]:
        raise refuse(f"n_inner {d['n_inner']} is not 4 * n_embd")
    if not get("scale_attn_weights", True) or get("scale_attn_by_inverse_layer_idx", False):
        raise refuse("its attention scores are not scaled by 1 / sqrt(head size) alone")
    if not get("tie_word_embeddings", True):
        raise refuse("its LM head is not tied to the token embedding")
    try:
        return GPTConfig(vocab_size=d["vocab_size"], block_size=d["n_positions"], n_layer=d["n_layer"],
                         n_head=d["n_head"], n_embd=d["n_embd"], dropout=get("resid_pdrop", 0.0), bias=get("bias", True))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def read_weights(directory: Path) -> dict:
    """The arrays of a directory's model.safetensors, or of the shards its index lists, as the files name them."""
    index = directory / INDEX
    if (directory / "model.safetensors").is_file():
        return safetensors.read(directory / "model.safetensors")
    if index.is_file():
        weight_map = check_object(read_json(index), index, {"weight_map": dict})["weight_map"]
        shards = sorted(set(weight_map.values()), key=str)
        if not all(isinstance(s, str) and s == Path(s).name and s.endswith(".safetensors") for s in shards):
            raise ValueError(f"{index}: every shard must be a .safetensors file in {directory}; the file is damaged")
        arrays = {}
        for shard in shards:
            arrays.update(safetensors.read(directory / shard))
        if set(arrays) != set(weight_map):
            missing = sorted(set(weight_map) - set(arrays)) or sorted(set(arrays) - set(weight_map))
            raise ValueError(f"{index} and its shards disagree about {missing[0]!r}; the directory is incomplete")
        return arrays
    pickles = sorted(directory.glob("*.bin")) + sorted(directory.glob("*.pt"))
    if pickles:
        raise ValueError(f"{directory} has only PyTorch pickle weights ({pickles[0].name}); minigpt never unpickles "
                         f"files: convert them to model.safetensors first (transformers: "
                         f"model.save_pretrained(dir, safe_serialization=True))")
    raise FileNotFoundError(f"{directory} has no model.safetensors (nor {INDEX}); it is not a model directory")


def to_minigpt(state_dict: dict) -> dict:
    """A Hugging Face GPT-2 state dict (NumPy arrays or CPU torch tensors) as minigpt's parameters: the prefix
    `transformer.` added where a GPT2Model left it out, the causal-mask buffers dropped, and `lm_head.weight`
    dropped after checking that it is the token embedding (minigpt's LM head is tied to it)."""
    if not isinstance(state_dict, dict):
        raise ValueError(f"a state dict must be a dict of name -> array, got {type(state_dict).__name__}")
    arrays = {name: np.asarray(value) for name, value in state_dict.items() if not name.endswith(MASK_BUFFERS)}
    if "wte.weight" in arrays:  # a GPT2Model (the released "gpt2" checkpoint is one): no "transformer." prefix
        arrays = {(k if k.startswith("lm_head.") else f"transformer.{k}"): v for k, v in arrays.items()}
    head = arrays.pop("lm_head.weight", None)
    wte = arrays.get("transformer.wte.weight")
    if head is not None and not (wte is not None and head.shape == wte.shape and np.array_equal(head, wte)):
        raise ValueError("lm_head.weight differs from transformer.wte.weight; minigpt's LM head is tied to wte")
    return arrays


def check_matches(config: GPTConfig, arrays: dict, where) -> None:
    """The embeddings and the number of blocks agree with the config, checked before a model of the config's
    size is built (a config.json that claims a billion layers is caught here, not by running out of memory)."""
    C = config.n_embd
    for name, want in (("transformer.wte.weight", (config.vocab_size, C)), ("transformer.wpe.weight", (config.block_size, C))):
        if name not in arrays:
            raise ValueError(f"{where}: the weights have no {name!r}")
        if arrays[name].shape != want:
            raise ValueError(f"{where}: {name!r} has shape {arrays[name].shape} but config.json describes {want}")
    layers = {name.split(".")[2] for name in arrays if name.startswith("transformer.h.")}
    if layers != {str(l) for l in range(len(layers))} or len(layers) != config.n_layer:
        raise ValueError(f"{where}: config.json says n_layer {config.n_layer} but the weights hold {len(layers)} blocks")


def read(directory, dtype=None) -> tuple:
    """(config, weights, tokenizer) of a Hugging Face GPT-2 directory: the GPTConfig, the parameters named as
    minigpt names them in `dtype` (None: float32 or float64 as stored, half precision widened to float32), and
    the tokenizer (None if the directory has none)."""
    directory = Path(directory)
    config = read_config(directory / "config.json")
    arrays = to_minigpt(read_weights(directory))
    check_matches(config, arrays, directory)
    stored = arrays["transformer.wte.weight"].dtype
    dtype = np.dtype(dtype if dtype is not None else stored if stored in (np.float32, np.float64) else np.float32)
    arrays = {name: a.astype(dtype, copy=False) for name, a in arrays.items()}
    tokenizer = load_tokenizer(directory)
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"{directory}: the tokenizer has {tokenizer.vocab_size} tokens but the model only {config.vocab_size}")
    return config, arrays, tokenizer


def from_pretrained(directory, dtype=None, backend: str = "numpy") -> GPT:
    """A model from a Hugging Face GPT-2 directory (config.json + model.safetensors, or its shards) or a minigpt
    checkpoint, in evaluation mode (no dropout) as transformers returns it. Its tokenizer:
    minigpt.data.load_tokenizer(directory)."""
    config, weights, _ = read(directory, dtype)
    model = GPT(config, dtype=weights["transformer.wte.weight"].dtype, backend=backend)
    model.load_state_dict(weights)
    return model.eval()


def save_pretrained(model: GPT, directory, tokenizer=None) -> None:
    """Write a directory that transformers' GPT2LMHeadModel.from_pretrained (and, with a tokenizer,
    GPT2TokenizerFast.from_pretrained) reads, as float32."""
    write(directory, model.config, model.params, tokenizer)


def write(directory, config: GPTConfig, params: dict, tokenizer=None) -> None:
    """Write a directory that GPT2LMHeadModel.from_pretrained and GPT2TokenizerFast.from_pretrained read. The files
    are written into a temporary directory beside it and moved in when all are complete, so that a failure (a full
    disk) leaves no half-written file."""
    from minigpt.data.bpe import BPETokenizer
    from minigpt.data.chars import CharTokenizer

    if not config.bias:
        raise ValueError("a model without biases (bias=False) has no GPT2LMHeadModel equivalent; it cannot be exported")
    directory = Path(directory)
    tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        eot = tokenizer.eot_token if isinstance(tokenizer, BPETokenizer) else None
        (tmp / "config.json").write_text(json.dumps(hf_config(config, eot), indent=1))
        safetensors.write(tmp / "model.safetensors", {name: p.astype(np.float32) for name, p in params.items()},
                          metadata={"format": "pt"})
        if isinstance(tokenizer, BPETokenizer):
            tokenizer.save_gpt2_files(tmp)
            special = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"} if eot is not None else {}
            tokenizer_config = {"tokenizer_class": "GPT2Tokenizer", "model_max_length": config.block_size,
                                "add_prefix_space": False, **special}
            (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
        elif isinstance(tokenizer, CharTokenizer):
            write_char_vocab(tokenizer, tmp, config.block_size)
        if not directory.exists():
            os.rename(tmp, directory)
        else:  # as transformers does, other files in the directory stay; each of ours is replaced whole
            for f in tmp.iterdir():
                os.replace(f, directory / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_char_vocab(tokenizer, directory: Path, block_size: int) -> None:
    """A character vocabulary of single-byte characters as a byte-level BPE vocabulary without merges:
    GPT2TokenizerFast then encodes text made of those characters as minigpt does, and
    minigpt.data.load_tokenizer reads it back as the character vocabulary."""
    from minigpt.data.bpe import BYTE_TO_CHAR

    multibyte = [c for c in tokenizer.chars if len(c.encode("utf-8")) != 1]
    if multibyte:
        raise ValueError(f"character {multibyte[0]!r} is more than one byte in UTF-8: this character vocabulary "
                         f"has no byte-level (GPT-2) equivalent, so it cannot be exported with --hf")
    vocab = {BYTE_TO_CHAR[c.encode("utf-8")[0]]: i for i, c in enumerate(tokenizer.chars)}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer", "model_max_length": block_size, "add_prefix_space": False}, indent=1))
