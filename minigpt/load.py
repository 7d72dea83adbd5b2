"""A model from whatever directory names one: a run directory (its best or latest checkpoint), a checkpoint of
minigpt's (verified against its manifest, minigpt/checkpoint.py), or a Hugging Face directory (GPT-2, Llama, Qwen 3:
minigpt/hf.py), local or named by its id on the Hugging Face Hub (fetched into its cache: minigpt/hub.py).

    ckpt = resolve("out", "best")              # out/ckpt-001750
    ckpt = resolve("gpt2")                     # ~/.cache/huggingface/hub/models--gpt2/snapshots/<sha> (no ./gpt2 here)
    model, tokenizer = load_model(ckpt)        # what `minigpt sample`, `inspect` and `export` work with

Tests: tests/test_checkpoint.py, tests/test_hf.py, tests/test_hub.py.
"""

from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from minigpt import hf, hub, lora
from minigpt import weights as safetensors
from minigpt.checkpoint import INTENT, NAME, POINTER, is_checkpoint, read_pointer, read_train_config, verified
from minigpt.config import GPTConfig
from minigpt.data import tokenizer_from_dict
from minigpt.model import FAMILIES, GPT, HEAD, SCORE
from minigpt.runlog import LOG
from minigpt.validate import read_json


def resolve(path, which: str = "best") -> Path:
    """The model directory `path` names: a run directory (then its `which` checkpoint, "best" or "latest"), a
    checkpoint directory, or a Hugging Face directory (GPT-2, Llama, Qwen 3), which may be named by its Hub id. The
    one place a name becomes a model directory: every command that reads a model, and train --init-from, call it."""
    name, path = str(path), Path(path)
    if not path.is_dir():
        if path.exists():
            raise NotADirectoryError(f"{path} is a file; give a run directory, a checkpoint or a Hugging Face "
                                     f"directory")
        if not hub.is_id(name):
            raise FileNotFoundError(f"{path} does not exist; give a run directory, a checkpoint, a Hugging Face "
                                    f"directory or a model's id on the Hugging Face Hub ({hub.EXAMPLES})")
        return hub.snapshot(name)  # as transformers' from_pretrained reads it: a name that is no directory is an id
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


class Checkpoint(NamedTuple):
    config: GPTConfig
    weights: dict  # name -> array, minigpt's (Hugging Face's) names
    tokenizer: object  # CharTokenizer or BPETokenizer; None for a Hugging Face directory without one


def read_config(ckpt: Path) -> GPTConfig:
    """The model's shape from a checkpoint's config.json (verified) or a Hugging Face directory's."""
    return hf.read_config(verified(ckpt, "config.json") if is_checkpoint(ckpt) else ckpt / "config.json")


def read(ckpt) -> Checkpoint:
    """The model of a checkpoint directory (verified against its manifest) or of a Hugging Face directory."""
    ckpt = Path(ckpt)
    if not is_checkpoint(ckpt):
        return Checkpoint(*hf.read(ckpt))
    config = read_config(ckpt)
    arrays = safetensors.read(verified(ckpt, "model.safetensors"))
    hf.check_matches(config, arrays, ckpt)
    tokenizer = tokenizer_from_dict(read_json(verified(ckpt, "tokenizer.json")), ckpt / "tokenizer.json")
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"{ckpt}: the tokenizer has {tokenizer.vocab_size} tokens but the model only {config.vocab_size}")
    return Checkpoint(config, arrays, tokenizer)


def load_model(ckpt, backend: str = "numpy"):
    """(model, tokenizer) of a checkpoint or Hugging Face directory, in evaluation mode, ready to sample from."""
    config, arrays, tokenizer = read(ckpt)
    if tokenizer is None:
        raise FileNotFoundError(f"{ckpt} has no tokenizer (tokenizer.json, or vocab.json and merges.txt); "
                                f"minigpt needs one to read and write text")
    model = GPT(config, dtype=arrays[FAMILIES[config.arch].WTE].dtype, backend=backend)
    try:
        model.load_state_dict(arrays)
    except ValueError as e:
        raise ValueError(f"{ckpt}: {e}") from None
    return model.eval(), tokenizer


class Opened(NamedTuple):
    model: GPT  # in evaluation mode
    tokenizer: object
    path: Path  # the checkpoint (or Hugging Face) directory it was read from
    train: object  # the checkpoint's TrainConfig; None for a Hugging Face directory


def open_model(path, which: str = "best", backend: str = "numpy", attempts: int = 5) -> Opened:
    """The model that `path` names (see resolve), for the commands that read one: `sample`, `chat`, `eval`,
    `inspect`, `export`. A run may be training in `path` at the same moment: between reading its pointer and reading
    the checkpoint it names, the run can commit a newer one and remove that one (docs/runs.md, step 4 of the
    protocol). A checkpoint is only ever read whole and verified, so a read that fails while the pointer has moved on
    is tried again on the checkpoint the pointer names now."""
    for attempt in range(attempts):
        ckpt = None
        try:
            ckpt = resolve(path, which)
            ours = is_checkpoint(ckpt)  # (asked first: once the run removes it, it is nothing)
            model, tokenizer = load_model(ckpt, backend)
            return Opened(model, tokenizer, ckpt, read_train_config(ckpt) if ours else None)
        except (ValueError, OSError):
            if attempt == attempts - 1 or (ckpt is not None and not moved(path, which, ckpt)):
                raise


def moved(path, which: str, ckpt: Path) -> bool:
    """Whether the pointer of the run in `path` names another checkpoint than `ckpt` now (or is being rewritten)."""
    try:
        return resolve(path, which) != ckpt
    except (ValueError, OSError):
        return True


def with_adapters(base, adapters, dtype=None, backend: str = "numpy", labels=None) -> GPT:
    """A model (in evaluation mode) from a base model's directory (Hugging Face's or minigpt's) and the PEFT adapters
    written for it (by peft's save_pretrained, or `minigpt export --peft`): minigpt/lora.py. labels: the class names
    of adapters that train a classifier's head on a language model (read_adapters)."""
    import numpy as np

    config, weights, _ = read(resolve(base))
    config, arrays = read_adapters(adapters, config, labels)
    weights = {**weights, **arrays}
    head = weights.get(HEAD)
    if config.labels is not None and head is not None and len(head) < config.vocab_size:
        # a classifier's adapters hold no LM head (a *ForSequenceClassification model has none); minigpt's keeps its
        # own for the auxiliary loss, and gives it the rows of the fine-tune's tokens as a run does (minigpt/run.py)
        new = np.repeat(head.mean(axis=0, keepdims=True), config.vocab_size - len(head), axis=0)  # (added, C)
        weights[HEAD] = np.concatenate([head, new])  # (V, C)
    hf.check_matches(config, weights, adapters)
    dtype = np.dtype(dtype or weights[FAMILIES[config.arch].WTE].dtype)
    model = GPT(config, dtype=dtype, backend=backend)
    model.load_state_dict({name: a.astype(dtype) for name, a in weights.items()})
    return model.eval()


def read_adapters(directory, base: GPTConfig, labels=None) -> tuple:
    """(config, arrays) of the PEFT adapters in `directory`, written for a model of config `base`: lora.read_peft's,
    with the whole layers saved beside the adapters checked against the model. An embedding with more rows than the
    base's holds the rows a fine-tune added for its special tokens (PEFT saves the embedding layers of a vocabulary
    that grew): the config's vocab_size and lora_added_tokens say so, and a tied head's copy of it is dropped
    (hf.to_minigpt). A classifier's head score.weight on a language model gets transformers' names for its classes
    (LABEL_0, LABEL_1, ..., as AutoModelForSequenceClassification.from_pretrained(base, num_labels=K) has them),
    unless `labels` names them."""
    where = Path(directory) / lora.WEIGHTS
    config, arrays = lora.read_peft(directory, base)
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
