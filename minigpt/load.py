"""A model from whatever names one, read once into one object, `Pretrained` (its config, weights and tokenizer), by
one route, `read`: a run directory (its best or latest checkpoint), a checkpoint of minigpt's (each file verified
against its manifest, minigpt/checkpoint.py), a Hugging Face directory (GPT-2, Llama, Qwen 3: minigpt/hf.py), local or
named by its id on the Hugging Face Hub (fetched into its cache: minigpt/hub.py), or an llm.c model file
(minigpt/llmc.py). `build_model` makes the model of it; every command that reads a model, and train --init-from and
--resume, go this way.

    pretrained = read("out", "best")           # out/ckpt-001750: its config, weights, tokenizer and run settings
    pretrained = read("gpt2")                  # ~/.cache/huggingface/hub/models--gpt2/snapshots/<sha> (no ./gpt2 here)
    model = build_model(pretrained)            # in evaluation mode: what `minigpt sample`, `inspect` and `export` use

What can be verified is verified here, once: a checkpoint's files against its manifest, an llm.c file's header against
its size, and for every kind the weights against the config (their names and shapes, before a model of the config's
size is built) and the tokenizer against the vocabulary. The weights stay as stored: build_model casts them, once.
PEFT adapters on a base model: with_adapters, a Pretrained with the adapters' overrides.

Tests: tests/test_checkpoint.py, tests/test_hf.py, tests/test_hub.py, tests/test_exports.py.
"""

from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import DTypeLike

from minigpt import hf, hub, llmc, lora, peft
from minigpt import weights as safetensors
from minigpt.checkpoint import INTENT, NAME, POINTER, is_checkpoint, read_pointer, read_train_config, verified
from minigpt.config import GPTConfig, TrainConfig
from minigpt.data import load_tokenizer, tokenizer_from_dict
from minigpt.model import FAMILIES, GPT, HEAD, SCORE, param_shapes
from minigpt.runlog import LOG
from minigpt.validate import read_json

CHECKPOINT, HUGGING_FACE, LLMC = "checkpoint", "hf", "llmc"  # the kinds of model a name can locate


class Pretrained(NamedTuple):
    """A model as it is stored, read and checked, not yet built (build_model)."""
    path: Path  # what it was read from: a checkpoint or Hugging Face directory, or an llm.c model file
    kind: str  # CHECKPOINT, HUGGING_FACE or LLMC
    config: GPTConfig
    weights: dict  # name -> array as stored, minigpt's (Hugging Face's) names: every one of the config's, in its shape
    tokenizer: object | None  # CharTokenizer, BPETokenizer or HFTokenizer; None where none is stored with the model
    train: TrainConfig | None  # a checkpoint's run settings (checkpoint.read_train_config); None for the others


def locate(name: str | Path, which: str = "best") -> Path:
    """The model `name` names: a run directory (then its `which` checkpoint, "best" or "latest"), a checkpoint
    directory, a Hugging Face directory (GPT-2, Llama, Qwen 3), which may be named by its Hub id, or an llm.c model
    file. The one place a name becomes where a model is (read's first step)."""
    text, path = str(name), Path(name)
    if not path.is_dir():
        if path.exists():
            if llmc.is_model_file(path):
                return path
            raise NotADirectoryError(f"{path} is a file, and no llm.c model file; give a run directory, a checkpoint, "
                                     f"a Hugging Face directory or an llm.c model file")
        if not hub.is_id(text):
            raise FileNotFoundError(f"{path} does not exist; give a run directory, a checkpoint, a Hugging Face "
                                    f"directory, an llm.c model file or a model's id on the Hugging Face Hub "
                                    f"({hub.EXAMPLES})")
        return hub.snapshot(text)  # as transformers' from_pretrained reads it: a name that is no directory is an id
    pointer = read_pointer(path)
    if pointer is not None:
        return path / pointer[which]
    if is_checkpoint(path) or (path / "config.json").is_file():
        return path
    held = sorted(p.name for p in path.glob("ckpt-*") if NAME.fullmatch(p.name) and is_checkpoint(p))
    if held and not (path / INTENT).exists():  # checkpoints.json lost, or a checkpoint copied in (not a first save
        # under way, which has its intent): each checkpoint is still a model directory
        pointer = read_pointer(path)  # (unless a first save committed since the pointer was read above: a save
        if pointer is not None:  # removes its intent only after its pointer is in place)
            return path / pointer[which]
        raise FileNotFoundError(f"{path} has no {POINTER} but holds {', '.join(held)}: read one of them "
                                f"(--out-dir {path / held[-1]}), or write {POINTER} again with minigpt train "
                                f"--resume --out-dir {path}")
    if not any(path.iterdir()) or (path / LOG).is_file():  # (a run that starts makes its directory, then its log)
        raise FileNotFoundError(f"no minigpt checkpoint in {path} yet: a run that has just started there saves its "
                                f"first at its first evaluation (--eval-interval); try again then")
    raise FileNotFoundError(f"no minigpt checkpoint in {path} (no {POINTER}, and no config.json with weights)")


def read(name: str | Path, which: str = "best", attempts: int = 5) -> Pretrained:
    """The model `name` names (see locate), read once and checked. A run may be training in `name` at the same
    moment: between reading its pointer and reading the checkpoint it names, the run can commit a newer one and remove
    that one (docs/runs.md, step 4 of the protocol). A checkpoint is only ever read whole and verified, so a read that
    fails while the pointer has moved on is tried again on the checkpoint the pointer names now."""
    for attempt in range(attempts):
        path = None
        try:
            path = locate(name, which)
            return read_at(path)
        except (ValueError, OSError):
            if attempt == attempts - 1 or (path is not None and not moved(name, which, path)):
                raise


def moved(name: str | Path, which: str, path: Path) -> bool:
    """Whether the pointer of the run in `name` names another checkpoint than `path` now (or is being rewritten)."""
    try:
        return locate(name, which) != path
    except (ValueError, OSError):
        return True


def read_at(path: Path) -> Pretrained:
    """The model at `path`, as locate found it: a checkpoint (each file verified against its manifest), an llm.c model
    file (its header against its size) or a Hugging Face directory."""
    if is_checkpoint(path):  # (asked first: once a run removes it, it is nothing)
        kind, config = CHECKPOINT, hf.read_config(verified(path, "config.json"))
        weights = safetensors.read(verified(path, "model.safetensors"))
    elif path.is_file():
        kind, (config, weights) = LLMC, llmc.read(path)
    else:
        kind, config = HUGGING_FACE, hf.read_config(path / "config.json")
        weights = hf.read_weights(path, config)
    check_matches(config, weights, path)
    tokenizer = train = None
    if kind == CHECKPOINT:
        tokenizer = tokenizer_from_dict(read_json(verified(path, "tokenizer.json")), path / "tokenizer.json")
        train = read_train_config(path, config)
    elif kind == HUGGING_FACE:
        tokenizer = load_tokenizer(path)
    check_tokenizer(tokenizer, config, path)
    return Pretrained(path, kind, config, weights, tokenizer, train)


def check_matches(config: GPTConfig, weights: dict, where) -> None:
    """The weights have the names and shapes of the config's parameters, checked before a model of the config's size
    is built (a config.json that claims a billion layers is caught here, not by running out of memory)."""
    prefix = "transformer.h." if config.arch == "gpt2" else "model.layers."
    layers = {name[len(prefix):].split(".")[0] for name in weights if name.startswith(prefix)}
    if layers != {str(l) for l in range(len(layers))} or len(layers) != config.n_layer:
        raise ValueError(f"{where}: config.json says n_layer {config.n_layer} but the weights hold {len(layers)} blocks")
    for name, want in param_shapes(config).items():  # (a list as long as the weights', now that n_layer is theirs)
        if name not in weights:
            raise ValueError(f"{where}: the weights have no {name!r}, which config.json's model has")
        if weights[name].shape != want:
            raise ValueError(f"{where}: {name!r} has shape {weights[name].shape} but config.json describes {want}")


def check_tokenizer(tokenizer, config: GPTConfig, where) -> None:
    """A tokenizer (or None) whose every token has a row in the model's embedding."""
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"{where}: the tokenizer has {tokenizer.vocab_size} tokens but the model only {config.vocab_size}")


def build_model(pretrained: Pretrained, dtype: DTypeLike = None, backend: str = "numpy",
                quantize: str | None = None) -> GPT:
    """The model of `pretrained`, in evaluation mode (no dropout, as transformers' from_pretrained returns one), its
    weights cast once to `dtype`: None keeps float32 or float64 as stored, and computes half precision (widened when
    it was read) in float32. quantize ("q8_0"): its linears' weights then held in 8 bits, for inference only
    (GPT.quantize)."""
    weights, config = pretrained.weights, pretrained.config
    stored = weights[FAMILIES[config.arch].WTE].dtype
    dtype = np.dtype(dtype if dtype is not None else stored if stored in (np.float32, np.float64) else np.float32)
    model = GPT(config, dtype=dtype, backend=backend)
    try:
        model.load_state_dict({name: a.astype(dtype, copy=False) for name, a in weights.items()})
    except ValueError as e:  # (names and shapes were checked as it was read: a weight not finite, or one too many)
        raise ValueError(f"{pretrained.path}: {e}") from None
    if quantize is not None:
        model.quantize(quantize)
    return model.eval()


def text_tokenizer(pretrained: Pretrained):
    """The tokenizer of `pretrained`, which a command that reads or writes text needs."""
    if pretrained.tokenizer is None:
        where = ("llm.c's model file holds none" if pretrained.kind == LLMC
                 else "tokenizer.json, or vocab.json and merges.txt")
        raise FileNotFoundError(f"{pretrained.path} has no tokenizer ({where}); minigpt needs one to read and write "
                                f"text")
    return pretrained.tokenizer


def with_adapters(base: Pretrained, adapters, labels=None) -> Pretrained:
    """The base model `base` (as read) with the PEFT adapters written for it (by peft's
    save_pretrained, or `minigpt export --peft`) in `adapters`: minigpt/peft.py. Its tokenizer is the one saved
    beside the adapters, where there is one (which encodes the tokens a fine-tune added), else the base's. labels:
    the class names of adapters that train a classifier's head on a language model (read_adapters)."""
    config, arrays = read_adapters(adapters, base.config, labels)
    weights = {**base.weights, **arrays}
    head = weights.get(HEAD)
    if config.labels is not None and head is not None and len(head) < config.vocab_size:
        # a classifier's adapters hold no LM head (a *ForSequenceClassification model has none); minigpt's keeps its
        # own for the auxiliary loss, and gives it the rows of the fine-tune's tokens as a run does (minigpt/run.py)
        new = np.repeat(head.mean(axis=0, keepdims=True), config.vocab_size - len(head), axis=0)  # (added, C)
        weights[HEAD] = np.concatenate([head, new])  # (V, C)
    check_matches(config, weights, adapters)
    tokenizer = load_tokenizer(adapters)
    tokenizer = base.tokenizer if tokenizer is None else tokenizer
    check_tokenizer(tokenizer, config, adapters)
    return base._replace(config=config, weights=weights, tokenizer=tokenizer, train=None)  # (no run of the base's)


def read_adapters(directory, base: GPTConfig, labels=None) -> tuple:
    """(config, arrays) of the PEFT adapters in `directory`, written for a model of config `base`: peft.read_peft's,
    with the whole layers saved beside the adapters checked against the model. An embedding with more rows than the
    base's holds the rows a fine-tune added for its special tokens (PEFT saves the embedding layers of a vocabulary
    that grew): the config's vocab_size and lora_added_tokens say so, and a tied head's copy of it is dropped
    (hf.to_minigpt). A classifier's head score.weight on a language model gets transformers' names for its classes
    (LABEL_0, LABEL_1, ..., as AutoModelForSequenceClassification.from_pretrained(base, num_labels=K) has them),
    unless `labels` names them."""
    where = Path(directory) / peft.WEIGHTS
    config, arrays = peft.read_peft(directory, base)
    layers = {name: a for name, a in arrays.items() if not lora.is_adapter(name)}
    wte = FAMILIES[config.arch].WTE
    unknown = sorted(set(layers) - {wte, HEAD, SCORE})
    if unknown:
        raise ValueError(f"{where} holds the whole layer {unknown[0]!r}; minigpt's LoRA keeps every weight but the "
                         f"embeddings and a classifier's head as the base model has it, and cannot represent it")
    if wte in layers:
        shape = layers[wte].shape
        if len(shape) != 2 or shape[0] < base.vocab_size:
            raise ValueError(f"{where}: {wte!r} has shape {shape}, not (V, {base.n_embd}) with V at least the base "
                             f"model's vocabulary of {base.vocab_size}; the adapters were written for another model")
        config = replace(config, vocab_size=shape[0], lora_added_tokens=shape[0] - base.vocab_size)
    try:
        layers = hf.to_minigpt(layers, config)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if SCORE in layers and config.labels is None:
        names = tuple(labels) if labels is not None else tuple(f"LABEL_{i}" for i in range(len(layers[SCORE])))
        config = replace(config, labels=names)
    return config, {**{name: a for name, a in arrays.items() if lora.is_adapter(name)}, **layers}
