"""Hugging Face GPT-2 directories, safetensors only: `config.json` + `model.safetensors` (or shards listed in
`model.safetensors.index.json`), with `vocab.json` + `merges.txt` when there is a tokenizer.

minigpt's parameters already have the names and (in, out) layouts of Hugging Face's GPT-2, so loading and
saving only check the configuration and move arrays. A pickled `pytorch_model.bin` is never opened.
Docs: docs/gpt2.md. Tests: tests/test_hf.py.
"""

import json
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from minigpt.config import GPTConfig
from minigpt.ops.layernorm import EPS

TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")  # both names mean GPT-2's tanh approximation


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


def config_from_hf(d: dict, where: str = "config.json") -> GPTConfig:
    """A GPTConfig from a Hugging Face GPT2Config, or a ValueError naming what minigpt cannot represent."""
    refuse = lambda what: ValueError(f"{where}: {what}; minigpt implements GPT-2 exactly and cannot represent it")  # noqa: E731
    if d.get("model_type", "gpt2") != "gpt2":
        raise refuse(f"model_type {d['model_type']!r} is not gpt2")
    if d.get("activation_function", "gelu_new") not in TANH_GELUS:
        raise refuse(f"activation_function {d['activation_function']!r} is not GPT-2's tanh GELU (gelu_new)")
    if d.get("add_cross_attention", False):
        raise refuse("the model has cross-attention (an encoder-decoder); GPT-2 is decoder-only")
    if abs(d.get("layer_norm_epsilon", EPS) - EPS) > 1e-12:
        raise refuse(f"layer_norm_epsilon {d['layer_norm_epsilon']} is not GPT-2's {EPS}")
    if d.get("n_inner") not in (None, 4 * d.get("n_embd", 0)):
        raise refuse(f"n_inner {d['n_inner']} is not 4 * n_embd")
    if not d.get("scale_attn_weights", True) or d.get("scale_attn_by_inverse_layer_idx", False):
        raise refuse("its attention scores are not scaled by 1 / sqrt(head size) alone")
    if not d.get("tie_word_embeddings", True):
        raise refuse("its LM head is not tied to the token embedding")
    try:
        return GPTConfig(vocab_size=d["vocab_size"], block_size=d["n_positions"], n_layer=d["n_layer"],
                         n_head=d["n_head"], n_embd=d["n_embd"], dropout=d.get("resid_pdrop", 0.0),
                         bias=d.get("bias", True))
    except KeyError as e:
        raise ValueError(f"{where} is not a GPT-2 config: {e.args[0]} is missing") from None


def read_safetensors(path: Path) -> dict:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise ValueError(f"{path} is corrupt or truncated ({reason}); the weights cannot be read") from None


def load_weights(directory: Path, dtype=None) -> dict:
    """The weights of a Hugging Face GPT-2 directory, named as minigpt (and GPT2LMHeadModel) names them, in
    `dtype` (None: float32 and float64 as they are, half precision widened to float32)."""
    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    if (directory / "model.safetensors").is_file():
        weights = read_safetensors(directory / "model.safetensors")
    elif index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        weights = {}
        for name in files:
            weights.update(read_safetensors(directory / name))
    elif list(directory.glob("*.bin")) or list(directory.glob("*.pt")):
        raise ValueError(f"{directory} has only PyTorch pickle weights ({next(iter(directory.glob('*.bin')), 'a .pt file')}); "
                         f"minigpt never unpickles files: convert them to model.safetensors first "
                         f"(transformers: model.save_pretrained(dir, safe_serialization=True))")
    else:
        raise FileNotFoundError(f"{directory} has no model.safetensors")
    if "wte.weight" in weights:  # a GPT2Model checkpoint (the released "gpt2" one is): no "transformer." prefix
        weights = {(k if k.startswith("lm_head.") else f"transformer.{k}"): v for k, v in weights.items()}
    if dtype is None:
        dtype = weights["transformer.wte.weight"].dtype if "transformer.wte.weight" in weights else np.float32
        dtype = dtype if dtype in (np.float32, np.float64) else np.float32
    return {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in weights.items()}


def load(directory, dtype=None, backend: str = "numpy"):
    """The model and the tokenizer (None if there is none) of a Hugging Face GPT-2 directory, or of a
    minigpt checkpoint directory, which is one too with minigpt's own tokenizer.json."""
    from minigpt.data import BPETokenizer, tokenizer_from_json
    from minigpt.model import GPT

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} has no config.json; it is not a model directory")
    try:
        config = config_from_hf(json.loads((directory / "config.json").read_text()), str(directory / "config.json"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{directory / 'config.json'} is corrupt (not JSON); the model cannot be read") from None
    weights = load_weights(directory, dtype)
    model = GPT(config, dtype=weights["transformer.wte.weight"].dtype if "transformer.wte.weight" in weights else np.float32,
                backend=backend)
    try:
        model.load_state_dict(weights)
    except ValueError as e:
        raise ValueError(f"{directory}: {e}") from None
    tokenizer = None
    if (directory / "tokenizer.json").is_file():
        try:
            tokenizer = tokenizer_from_json((directory / "tokenizer.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, ValueError, KeyError) as e:
            raise ValueError(f"{directory / 'tokenizer.json'} is corrupt ({e})") from None
    elif (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        tokenizer = BPETokenizer.from_gpt2_files(directory / "vocab.json", directory / "merges.txt")
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"{directory}: the tokenizer has {tokenizer.vocab_size} tokens but the model only {config.vocab_size}")
    return model, tokenizer


def save(model, directory, tokenizer=None) -> None:
    """Write a directory that GPT2LMHeadModel.from_pretrained and GPT2TokenizerFast.from_pretrained read."""
    from minigpt.data.bpe import BPETokenizer
    from minigpt.data.chars import CharTokenizer

    if not model.config.bias:
        raise ValueError("a model without biases (bias=False) has no GPT2LMHeadModel equivalent; it cannot be exported")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    eot = tokenizer.eot_token if isinstance(tokenizer, BPETokenizer) else None
    (directory / "config.json").write_text(json.dumps(hf_config(model.config, eot), indent=1))
    weights = {name: np.ascontiguousarray(p, dtype=np.float32) for name, p in model.params.items()}
    save_file(weights, str(directory / "model.safetensors"), metadata={"format": "pt"})
    if isinstance(tokenizer, BPETokenizer):
        tokenizer.save_gpt2_files(directory)
        special = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"} if eot is not None else {}
        tokenizer_config = {"tokenizer_class": "GPT2Tokenizer", "model_max_length": model.config.block_size,
                            "add_prefix_space": False, **special}
        (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    elif isinstance(tokenizer, CharTokenizer):
        write_char_vocab(tokenizer, directory, model.config.block_size)


def write_char_vocab(tokenizer, directory: Path, block_size: int) -> None:
    """A character vocabulary of single-byte characters as a byte-level BPE vocabulary without merges:
    GPT2TokenizerFast then encodes text made of those characters as minigpt does."""
    from minigpt.data.bpe import BYTE_TO_CHAR

    multibyte = [c for c in tokenizer.chars if len(c.encode("utf-8")) != 1]
    if multibyte:
        raise ValueError(f"character {multibyte[0]!r} is more than one byte in UTF-8: this character vocabulary "
                         f"has no byte-level (GPT-2) equivalent; export the weights without --tokenizer")
    vocab = {BYTE_TO_CHAR[c.encode("utf-8")[0]]: i for i, c in enumerate(tokenizer.chars)}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer", "model_max_length": block_size, "add_prefix_space": False}, indent=1))
