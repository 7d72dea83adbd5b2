"""Hugging Face model directories, safetensors only: `config.json` + `model.safetensors` (or shards listed in
`model.safetensors.index.json`), with a tokenizer when there is one (`vocab.json` + `merges.txt`, or
`tokenizer.json`; a classifier's appends <|extract|> itself): those of GPT2LMHeadModel, LlamaForCausalLM and
Qwen3ForCausalLM, and of their *ForSequenceClassification.

minigpt's parameters already have the names and layouts of Hugging Face's state dicts, so reading and writing
translate the configuration and move arrays; the few ways a Hugging Face state dict differs (a `transformer.` prefix
missing, buffers that are no parameters, a tied head's copy `lm_head.weight`) are handled here, in `to_minigpt`, and
nowhere else. A pickled `pytorch_model.bin` is never opened. A file format builds on the model, never the reverse:

    config = read_config("gpt2-dir/config.json")         # the GPTConfig, or what minigpt cannot represent, named
    weights = read_weights(Path("gpt2-dir"), config)     # minigpt's parameters, as stored
    save_pretrained(model, "out-hf", tokenizer)          # what AutoModelForCausalLM.from_pretrained reads

A model from a directory, read once and checked (its weights against its config): minigpt/load.py,
minigpt.load.build_model(minigpt.load.read("gpt2-dir")).

Docs: docs/gpt2.md, docs/llama.md. Tests: tests/test_hf.py, tests/test_hf_llama.py, tests/test_exports.py.
"""

import json
from pathlib import Path

import numpy as np

from minigpt import peft
from minigpt import weights as safetensors
from minigpt.config import ROPE_SCALING_KEYS, GPTConfig
from minigpt.files import directory_write
from minigpt.data import BYTE_TO_CHAR, BPETokenizer, CharTokenizer, HFTokenizer
from minigpt.data.records import EOT, EXTRACT, role_tokens
from minigpt.model import FAMILIES, GPT, HEAD
from minigpt.ops.layernorm import EPS
from minigpt.validate import check_object, read_json

MODEL_TYPES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM"}  # arch -> class
# a classifier's class (config.labels): the family's trunk with the head score.weight on the last token that is not
# padding (pad_token_id), the class names in id2label
CLASSIFIERS = {"gpt2": "GPT2ForSequenceClassification", "llama": "LlamaForSequenceClassification",
               "qwen3": "Qwen3ForSequenceClassification"}
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")  # both names mean GPT-2's tanh approximation
# the buffers of a Hugging Face state dict that are no parameters: GPT-2's causal mask, built on the fly here, and the
# rotary frequencies that older Llama checkpoints saved, computed from config.json here
BUFFERS = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")
INDEX = "model.safetensors.index.json"

# the keys of a GPT2Config that minigpt reads, and what each must hold (None: may be missing or null)
GPT2_FIELDS = {
    "vocab_size": int, "n_positions": int, "n_layer": int, "n_head": int, "n_embd": int,
    "model_type": (str, None), "activation_function": (str, None), "layer_norm_epsilon": (float, None),
    "n_inner": (int, None), "resid_pdrop": (float, None), "bias": (bool, None), "tie_word_embeddings": (bool, None),
    "add_cross_attention": (bool, None), "scale_attn_weights": (bool, None),
    "scale_attn_by_inverse_layer_idx": (bool, None), "architectures": (list, None), "id2label": (dict, None),
    "lora": (dict, None),
}
# the same for a LlamaConfig or Qwen3Config (transformers 4 writes rope_theta and rope_scaling, 5 rope_parameters)
LLAMA_FIELDS = {
    "vocab_size": int, "hidden_size": int, "intermediate_size": int, "num_hidden_layers": int,
    "num_attention_heads": int, "max_position_embeddings": int, "num_key_value_heads": (int, None),
    "head_dim": (int, None), "rms_norm_eps": (float, None), "tie_word_embeddings": (bool, None),
    "rope_theta": (float, None), "rope_scaling": (dict, None), "rope_parameters": (dict, None),
    "hidden_act": (str, None), "attention_bias": (bool, None), "mlp_bias": (bool, None),
    "attention_dropout": (float, None), "use_sliding_window": (bool, None), "layer_types": (list, None),
    "architectures": (list, None), "id2label": (dict, None), "lora": (dict, None),
}


def hf_config(config: GPTConfig, eot_token: int | None = None) -> dict:
    """The model's shape as a Hugging Face GPT2Config, LlamaConfig or Qwen3Config; a classifier's with its labels
    (id2label) and pad_token_id, the eot token, which pads its batches (minigpt/data/records.py)."""
    d = gpt2_config(config) if config.arch == "gpt2" else llama_config(config)
    # null where the vocabulary has no end token: transformers' defaults (GPT-2's 50256, Llama's 1 and 2) would name
    # tokens this vocabulary lacks, or ordinary ones at which generate() would stop
    d.update(bos_token_id=eot_token, eos_token_id=eot_token)
    if config.lora_rank is not None:  # minigpt's own key: a checkpoint of a run that trains adapters (minigpt/lora.py)
        d["lora"] = {"rank": config.lora_rank, "alpha": config.lora_alpha, "dropout": config.lora_dropout,
                     "targets": config.lora_targets, "added_tokens": config.lora_added_tokens}
    if config.labels is not None:
        d.update(architectures=[CLASSIFIERS[config.arch]], id2label={str(i): name for i, name in enumerate(config.labels)},
                 label2id={name: i for i, name in enumerate(config.labels)}, pad_token_id=eot_token)
    return d


def read_lora(d: dict) -> dict:
    """The GPTConfig fields of minigpt's own "lora" key (a checkpoint of a LoRA run), or none."""
    lora = d.get("lora")
    if lora is None:
        return {}
    check_object(lora, "its lora", {"rank": int, "alpha": float, "dropout": float, "targets": str,
                                     "added_tokens": (int, None)})
    return {"lora_rank": lora["rank"], "lora_alpha": float(lora["alpha"]), "lora_dropout": float(lora["dropout"]),
            "lora_targets": lora["targets"], "lora_added_tokens": lora.get("added_tokens") or 0}


def read_labels(d: dict, path) -> tuple | None:
    """A *ForSequenceClassification config's class names (id2label, ids 0..K-1); None for any other model (a causal
    LM's config may hold transformers' default id2label, which means nothing)."""
    architectures = d.get("architectures") or []
    if not (architectures and isinstance(architectures[0], str) and architectures[0].endswith("ForSequenceClassification")):
        return None
    id2label = d.get("id2label") or {}
    if sorted(id2label, key=lambda i: int(i) if str(i).isdigit() else -1) != [str(i) for i in range(len(id2label))] \
            or not all(isinstance(v, str) for v in id2label.values()):
        raise ValueError(f"{path}: id2label must name the classes 0..K-1, got {id2label!r:.80}")
    return tuple(id2label[str(i)] for i in range(len(id2label)))


def gpt2_config(config: GPTConfig) -> dict:
    return {
        "model_type": "gpt2",
        "architectures": [MODEL_TYPES["gpt2"]],
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


def llama_config(config: GPTConfig) -> dict:
    rope_parameters = {"rope_type": "default", "rope_theta": config.rope_theta}
    if config.rope_scaling is not None:
        rope_parameters = {**config.rope_scaling, "rope_theta": config.rope_theta}
    d = {
        "model_type": config.arch,
        "architectures": [MODEL_TYPES[config.arch]],
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_kv_head,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.block_size,
        "rms_norm_eps": config.norm_eps,
        "tie_word_embeddings": config.tie_word_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": config.dropout,
        "rope_parameters": rope_parameters,  # transformers 5's key; 4's are the two below
        "rope_theta": config.rope_theta,
        "rope_scaling": config.rope_scaling,
    }
    if config.arch == "llama":
        d["mlp_bias"] = False
    else:
        d["use_sliding_window"] = False
    return d


def read_config(path) -> GPTConfig:
    """The GPTConfig of a config.json, or a ValueError naming the file and what minigpt cannot represent."""
    d = read_json(path)
    model_type = d.get("model_type") if isinstance(d, dict) else None
    if model_type is not None and (not isinstance(model_type, str) or model_type not in MODEL_TYPES):
        raise ValueError(f"{path}: model_type {model_type!r} is none of {', '.join(MODEL_TYPES)}, the families "
                         f"minigpt implements exactly; it cannot represent it")
    try:
        return read_llama_config(d, path) if model_type in ("llama", "qwen3") else read_gpt2_config(d, path)
    except ValueError as e:
        raise ValueError(e if str(e).startswith(f"{path}") else f"{path}: {e}") from None


def read_gpt2_config(d, path) -> GPTConfig:
    d = check_object(d, path, GPT2_FIELDS)
    get = lambda key, default: default if d.get(key) is None else d[key]  # noqa: E731  (null: the default)
    refuse = lambda what: ValueError(f"{path}: {what}; minigpt implements GPT-2 exactly and cannot represent it")  # noqa: E731
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
    return GPTConfig(vocab_size=d["vocab_size"], block_size=d["n_positions"], n_layer=d["n_layer"], n_head=d["n_head"],
                     n_embd=d["n_embd"], dropout=get("resid_pdrop", 0.0), bias=get("bias", True),
                     labels=read_labels(d, path), **read_lora(d))


def read_llama_config(d, path) -> GPTConfig:
    d = check_object(d, path, LLAMA_FIELDS)
    arch = d["model_type"]
    get = lambda key, default: default if d.get(key) is None else d[key]  # noqa: E731  (null: the default)
    refuse = lambda what: ValueError(f"{path}: {what}; minigpt implements {arch} as {MODEL_TYPES[arch]} "  # noqa: E731
                                     f"computes it by default and cannot represent it")
    if get("hidden_act", "silu") != "silu":
        raise refuse(f"hidden_act {d['hidden_act']!r} is not silu (SwiGLU's gate)")
    if get("attention_bias", False) or get("mlp_bias", False):
        raise refuse("its linear layers have biases")
    if get("use_sliding_window", False) or any(t != "full_attention" for t in get("layer_types", [])):
        raise refuse("some layers attend to a sliding window, not to every earlier position")
    rope = get("rope_parameters", None) or get("rope_scaling", None) or {}  # transformers 5's, or 4's rope_scaling
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "llama3"):
        raise refuse(f"its rotary embeddings are of type {rope_type!r}; minigpt implements the default and llama3")
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise refuse("its rotary embeddings turn only part of each head")
    scaling = None
    if rope_type == "llama3":
        scaling = {"rope_type": "llama3", **{key: rope.get(key) for key in ROPE_SCALING_KEYS}}
    return GPTConfig(arch=arch, vocab_size=d["vocab_size"], block_size=d["max_position_embeddings"],
                     n_layer=d["num_hidden_layers"], n_head=d["num_attention_heads"], n_embd=d["hidden_size"],
                     n_kv_head=get("num_key_value_heads", None), head_dim=get("head_dim", None),
                     intermediate_size=d["intermediate_size"], norm_eps=get("rms_norm_eps", 1e-6),
                     rope_theta=rope.get("rope_theta", get("rope_theta", 10000.0)), rope_scaling=scaling,
                     tie_word_embeddings=get("tie_word_embeddings", False), dropout=get("attention_dropout", 0.0),
                     labels=read_labels(d, path), **read_lora(d))


def read_weights(directory: Path, config: GPTConfig) -> dict:
    """The parameters of the model of `config` in a directory, named as minigpt names them (to_minigpt), as stored.
    A *ForSequenceClassification model has no LM head; minigpt's classifier keeps one for the auxiliary
    language-modelling loss, which starts as the token embedding."""
    arrays = to_minigpt(read_tensors(directory), config)
    wte = FAMILIES[config.arch].WTE
    if config.labels is not None and not config.tie_word_embeddings and HEAD not in arrays and wte in arrays:
        arrays[HEAD] = arrays[wte].copy()  # (V, C)
    return arrays


def read_tensors(directory: Path) -> dict:
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


def to_minigpt(state_dict: dict, config: GPTConfig | None = None) -> dict:
    """A Hugging Face state dict (NumPy arrays or CPU torch tensors) as minigpt's parameters: the buffers dropped, the
    prefix `transformer.` added where a GPT2Model left it out, and `lm_head.weight` dropped where it is the tied copy
    of the token embedding (checked): always in GPT-2, and in Llama and Qwen when their config says
    tie_word_embeddings (a state dict cannot tell: give the config when it holds lm_head.weight)."""
    if not isinstance(state_dict, dict):
        raise ValueError(f"a state dict must be a dict of name -> array, got {type(state_dict).__name__}")
    arrays = {name: np.asarray(value) for name, value in state_dict.items() if not name.endswith(BUFFERS)}
    if "wte.weight" in arrays:  # a GPT2Model (the released "gpt2" checkpoint is one): no "transformer." prefix
        arrays = {(k if k.startswith("lm_head.") else f"transformer.{k}"): v for k, v in arrays.items()}
    wte_name = FAMILIES["llama" if FAMILIES["llama"].WTE in arrays else "gpt2"].WTE
    if HEAD not in arrays:
        return arrays
    if wte_name == FAMILIES["llama"].WTE:
        if config is None:
            raise ValueError("a Llama or Qwen state dict holds lm_head.weight whether or not the head is tied: "
                             "give the model's config, to_minigpt(state_dict, config)")
        if not config.tie_word_embeddings:
            return arrays
    head, wte = arrays.pop(HEAD), arrays.get(wte_name)
    if not (wte is not None and head.shape == wte.shape and np.array_equal(head, wte)):
        raise ValueError(f"lm_head.weight differs from {wte_name}; this model's LM head is tied to it")
    return arrays


def save_pretrained(model: GPT, directory, tokenizer=None) -> None:
    """Write a directory that transformers' AutoModelForCausalLM.from_pretrained (GPT2LMHeadModel, LlamaForCausalLM
    or Qwen3ForCausalLM) and, with a tokenizer, GPT2TokenizerFast.from_pretrained read, as float32."""
    write(directory, model.config, model.params, tokenizer)


def write(directory, config: GPTConfig, params: dict, tokenizer=None) -> None:
    """Write a directory that AutoModelForCausalLM.from_pretrained and GPT2TokenizerFast.from_pretrained read. The files
    are written into a temporary directory beside it and moved in when all are complete (minigpt.files.directory_write),
    so that a failure (a full disk) or a stop leaves no half-written file."""
    if config.arch == "gpt2" and not config.bias:
        raise ValueError("a GPT-2 without biases (bias=False) has no GPT2LMHeadModel equivalent; it cannot be exported")
    if config.lora_rank is not None:  # a Hugging Face directory holds the merged model (minigpt.peft.merged)
        config, params = peft.merged(config, params)
    with directory_write(directory) as tmp:
        eot = getattr(tokenizer, "eot_token", None)
        d = hf_config(config, eot)
        if isinstance(tokenizer, HFTokenizer):  # the roles its tokenizer_config.json gives (Llama 3: bos and eos differ)
            d.update(tokenizer.role_ids())
        if config.labels is not None and tokenizer is not None:  # the token a classifier's batches are padded with
            d["pad_token_id"] = tokenizer.special_tokens.get(role_tokens(tokenizer)["eos_token"])
        (tmp / "config.json").write_text(json.dumps(d, indent=1))
        if config.labels is not None:  # a *ForSequenceClassification model has no LM head
            params = {name: p for name, p in params.items() if name != HEAD}
        safetensors.write(tmp / "model.safetensors", {name: p.astype(np.float32) for name, p in params.items()},
                          metadata={"format": "pt"})
        if tokenizer is not None:
            write_tokenizer(tokenizer, tmp, config)


def embedding_layers(config: GPTConfig, params: dict) -> dict:
    """The model's embedding layers, named as a transformers model's get_input_embeddings and get_output_embeddings
    are in its state dict, which is how PEFT saves them with adapters when the vocabulary has grown: the token
    embedding and, in a causal LM, lm_head.weight (a tied head's is the embedding itself; a
    *ForSequenceClassification model has no LM head)."""
    wte = FAMILIES[config.arch].WTE
    layers = {wte: params[wte]}  # (V, C)
    if config.labels is None:
        layers[HEAD] = params[wte] if config.tie_word_embeddings else params[HEAD]  # (V, C)
    return layers


# --- tokenizers ---------------------------------------------------------------------------------------------------


def write_tokenizer(tokenizer, directory: Path, config: GPTConfig) -> None:
    """The tokenizer's files as transformers' AutoTokenizer reads them, for a model of `config` (exported_tokenizer):
    GPT-2's vocab.json and merges.txt with tokenizer_config.json (a character vocabulary as one without merges), or
    the Hugging Face files it came from; a classifier's a tokenizer.json too, which appends <|extract|> itself."""
    tokenizer = exported_tokenizer(tokenizer, config)
    if isinstance(tokenizer, HFTokenizer):  # the Hugging Face files (a BPE classifier's made here), whole
        tokenizer.save(directory)
    elif isinstance(tokenizer, BPETokenizer):
        tokenizer.save_gpt2_files(directory)
        write_tokenizer_config(tokenizer, directory, config.block_size)
    elif isinstance(tokenizer, CharTokenizer):
        write_char_vocab(tokenizer, directory, config.block_size, classifier=appends_extract(tokenizer, config))


def appends_extract(tokenizer, config: GPTConfig) -> bool:
    """Whether the model is a classifier that reads a text at the <|extract|> its records end with (every classifier
    trained here; one from elsewhere, without the token, reads a text at its last token)."""
    return config.labels is not None and EXTRACT in tokenizer.special_tokens


def exported_tokenizer(tokenizer, config: GPTConfig):
    """The tokenizer as an export writes it, and as minigpt.data.load_tokenizer reads it back: the run's own, but a
    classifier's appends <|extract|> to every text, where the head reads it (minigpt/data/records.py), by the
    post-processor of a tokenizer.json (TemplateProcessing, as Llama's tokenizers put BOS in front), so that
    transformers' pipeline("text-classification") and AutoTokenizer read a text where minigpt does. A classifier's
    BPE tokenizer becomes the Hugging Face tokenizer.json that encodes as it does; a character vocabulary stays
    itself (write_char_vocab adds the tokenizer.json)."""
    if not appends_extract(tokenizer, config) or isinstance(tokenizer, CharTokenizer):
        return tokenizer
    extract = extract_template(tokenizer.special_tokens[EXTRACT])
    if isinstance(tokenizer, BPETokenizer):
        printable = lambda token: "".join(BYTE_TO_CHAR[b] for b in token)  # noqa: E731  GPT-2's form of bytes
        vocab = {printable(token): i for token, i in tokenizer.ranks.items()}
        merges = [[printable(left), printable(right)] for left, right in tokenizer.merges()]
        spec = byte_level_spec(vocab, merges, tokenizer.special_tokens, tokenizer.regex.pattern, extract)
        return HFTokenizer(spec, tokenizer_config(tokenizer, config.block_size, classifier=True), "tokenizer.json")
    # a Hugging Face tokenizer: its TemplateProcessing (Llama 3's BOS) gives way to the extract token, since minigpt
    # puts nothing before a classifier's text; ByteLevel's offset trimming stays. transformers rebuilds the
    # post-processor from add_bos_token and add_eos_token where tokenizer_config.json sets them: they go.
    processors = tokenizer.spec.get("post_processor") or {"type": "Sequence", "processors": []}
    kept = [p for p in (processors["processors"] if processors.get("type") == "Sequence" else [processors])
            if p.get("type") != "TemplateProcessing"]
    spec = {**tokenizer.spec, "post_processor": {"type": "Sequence", "processors": [*kept, extract]}}
    options = {key: value for key, value in tokenizer.config.items()
               if key not in ("tokenizer_class", "add_bos_token", "add_eos_token")}
    options["pad_token"] = role_tokens(tokenizer)["eos_token"]  # (what pads its batches: pad_token_id)
    return HFTokenizer(spec, options, tokenizer.where)


def extract_template(extract: int) -> dict:
    """tokenizer.json's TemplateProcessing that appends <|extract|> (id `extract`) to a text, and to each of a pair,
    as the tokenizers library writes it."""
    text = lambda name, type_id: {"Sequence": {"id": name, "type_id": type_id}}  # noqa: E731
    token = lambda type_id: {"SpecialToken": {"id": EXTRACT, "type_id": type_id}}  # noqa: E731
    return {"type": "TemplateProcessing", "single": [text("A", 0), token(0)],
            "pair": [text("A", 0), token(0), text("B", 1), token(1)],
            "special_tokens": {EXTRACT: {"id": EXTRACT, "ids": [extract], "tokens": [EXTRACT]}}}


def byte_level_spec(vocab: dict, merges: list, special_tokens: dict, pattern: str | None, post_processor: dict) -> dict:
    """A tokenizer.json of a byte-level BPE vocabulary (tokens in GPT-2's printable form of bytes): the text split by
    `pattern` (minigpt's BPE: its regex; None for characters), each piece to bytes, and BPE by the merges, a piece
    that is a token taken whole first (ignore_merges, as minigpt's BPE does)."""
    split = [] if pattern is None else [{"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
                                         "invert": False}]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for s, i in special_tokens.items()],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            *split, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": {**vocab, **special_tokens}, "merges": merges},
    }


def write_char_vocab(tokenizer, directory: Path, block_size: int, classifier: bool = False) -> None:
    """A character vocabulary of single-byte characters as a byte-level BPE vocabulary without merges:
    GPT2TokenizerFast then encodes text made of those characters as minigpt does, and
    minigpt.data.load_tokenizer reads it back as the character vocabulary. A classifier's also as tokenizer.json,
    which appends <|extract|> (exported_tokenizer)."""
    multibyte = [c for c in tokenizer.chars if len(c.encode("utf-8")) != 1]
    if multibyte:
        raise ValueError(f"character {multibyte[0]!r} is more than one byte in UTF-8: this character vocabulary "
                         f"has no byte-level (GPT-2) equivalent, so it cannot be exported with --hf")
    vocab = {BYTE_TO_CHAR[c.encode("utf-8")[0]]: i for i, c in enumerate(tokenizer.chars)}
    vocab.update(tokenizer.special_tokens)  # after the characters, as added tokens (below)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    if classifier:
        characters = {s: i for s, i in vocab.items() if s not in tokenizer.special_tokens}
        spec = byte_level_spec(characters, [], tokenizer.special_tokens, None,
                               extract_template(tokenizer.special_tokens[EXTRACT]))
        (directory / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    write_tokenizer_config(tokenizer, directory, block_size, classifier)


def tokenizer_config(tokenizer, block_size: int, classifier: bool = False) -> dict:
    """tokenizer_config.json for GPT2TokenizerFast: the special tokens as added tokens (split out of a text before
    anything else, as minigpt does), <|endoftext|> as bos, eos and unk where there is one, and the chat template. A
    classifier's is read from its tokenizer.json whole (PreTrainedTokenizerFast), with <|endoftext|> padding its
    batches, as pad_token_id in config.json says."""
    config = {"tokenizer_class": "PreTrainedTokenizerFast" if classifier else "GPT2Tokenizer",
              "model_max_length": block_size, "add_prefix_space": False,
              "added_tokens_decoder": {str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                                "single_word": False, "special": True}
                                       for s, i in tokenizer.special_tokens.items()}}
    if tokenizer.eot_token is not None:
        config.update(bos_token=EOT, eos_token=EOT, unk_token=EOT)
        if classifier:
            config["pad_token"] = EOT
    if tokenizer.chat_template is not None:
        config["chat_template"] = tokenizer.chat_template
    return config


def write_tokenizer_config(tokenizer, directory: Path, block_size: int, classifier: bool = False) -> None:
    config = tokenizer_config(tokenizer, block_size, classifier)
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=1, ensure_ascii=False), encoding="utf-8")
