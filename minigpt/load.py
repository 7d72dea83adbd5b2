"""A model from whatever directory names one: a run directory (its best or latest checkpoint), a checkpoint of
minigpt's (verified against its manifest, minigpt/checkpoint.py), or a Hugging Face directory (GPT-2, Llama, Qwen 3: minigpt/hf.py).

    ckpt = resolve("out", "best")              # out/ckpt-001750
    model, tokenizer = load_model(ckpt)        # what `minigpt sample`, `inspect` and `export` work with

Tests: tests/test_checkpoint.py, tests/test_hf.py.
"""

from pathlib import Path
from typing import NamedTuple

from minigpt import hf
from minigpt import weights as safetensors
from minigpt.checkpoint import POINTER, is_checkpoint, read_pointer, read_train_config, verified
from minigpt.config import GPTConfig
from minigpt.data import tokenizer_from_dict
from minigpt.model import FAMILIES, GPT
from minigpt.runlog import LOG
from minigpt.validate import read_json


def resolve(path, which: str = "best") -> Path:
    """The model directory `path` names: a run directory (then its `which` checkpoint, "best" or "latest"), a
    checkpoint directory, or a Hugging Face directory (GPT-2, Llama, Qwen 3)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist; give a run directory, a checkpoint or a Hugging Face directory")
    pointer = read_pointer(path)
    if pointer is not None:
        return path / pointer[which]
    if is_checkpoint(path) or (path / "config.json").is_file():
        return path
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


def with_adapters(base, adapters, dtype=None, backend: str = "numpy") -> GPT:
    """A model (in evaluation mode) from a base model's directory (Hugging Face's or minigpt's) and the PEFT adapters
    written for it (by peft's save_pretrained, or `minigpt export --peft`): minigpt/lora.py."""
    import numpy as np

    from minigpt import lora
    from minigpt.model import SCORE

    config, weights, _ = read(resolve(base))
    config, arrays = lora.read_peft(adapters, config)
    if SCORE in arrays and config.labels is None:
        raise ValueError(f"{adapters} trains a classifier's head, but {base} is not a classifier")
    weights = {**weights, **arrays}
    dtype = np.dtype(dtype or weights[FAMILIES[config.arch].WTE].dtype)
    model = GPT(config, dtype=dtype, backend=backend)
    model.load_state_dict({name: a.astype(dtype) for name, a in weights.items()})
    return model.eval()
