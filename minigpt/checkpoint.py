"""Checkpoints: safetensors for arrays, JSON for everything else; nothing is ever unpickled.

A run directory (--out-dir) holds

    log.jsonl                one JSON object per logged step
    checkpoints.json         {"latest": "ckpt-002000", "best": "ckpt-001750"}
    ckpt-001750/ ...         the checkpoint with the best validation loss
    ckpt-002000/             the latest checkpoint:
        model.safetensors        the weights, named as in Hugging Face's GPT-2 (float32 or float64)
        config.json              the model's shape, as a Hugging Face GPT2Config (model_type "gpt2")
        tokenizer.json           the vocabulary
        train_config.json        the TrainConfig of the run
        optimizer.safetensors    AdamW's moments
        state.json               step, best validation loss, and the random generators' states

A checkpoint directory is written under a temporary name and renamed when complete, and
checkpoints.json is replaced atomically after that, so a run killed at any moment leaves the
previous checkpoint intact and named.
"""

import json
import os
import shutil
from pathlib import Path

from safetensors.numpy import save_file

from minigpt import hf
from minigpt.config import TrainConfig

POINTER = "checkpoints.json"


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False), encoding="utf-8")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(run_dir: Path, name: str, model, tokenizer, train_config: TrainConfig,
         optimizer, state: dict, best: bool) -> Path:
    """Write checkpoint `name` into run_dir and point `latest` (and `best`, if best) at it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / name
    if not final.exists():
        tmp = run_dir / f"{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file(model.params, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        save_file(optimizer.state_dict(), str(tmp / "optimizer.safetensors"))
        write_json(tmp / "config.json", hf.hf_config(model.config, getattr(tokenizer, "eot_token", None)))
        (tmp / "tokenizer.json").write_text(tokenizer.to_json(), encoding="utf-8")
        write_json(tmp / "train_config.json", train_config.to_dict())
        write_json(tmp / "state.json", state)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.rename(tmp, final)
        fsync_dir(run_dir)
    pointer = read_pointer(run_dir) or {}
    pointer["latest"] = name
    if best or "best" not in pointer:
        pointer["best"] = name
    tmp_pointer = run_dir / f"{POINTER}.tmp-{os.getpid()}"
    write_json(tmp_pointer, pointer)
    with open(tmp_pointer, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp_pointer, run_dir / POINTER)
    fsync_dir(run_dir)
    for old in run_dir.glob("ckpt-*"):  # only the checkpoints named in the pointer are kept
        if old.name not in pointer.values():
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_pointer(run_dir: Path) -> dict | None:
    path = Path(run_dir) / POINTER
    if not path.is_file():
        return None
    try:
        pointer = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ValueError(f"{path} is corrupt (not JSON); delete it and resume from a checkpoint directory") from None
    return pointer


def resolve(path, which: str = "best") -> Path:
    """A checkpoint directory from either a checkpoint directory or a run directory (then its `which`
    checkpoint, "best" or "latest")."""
    path = Path(path)
    if (path / "model.safetensors").is_file():
        return path
    pointer = read_pointer(path)
    if pointer is None or which not in pointer:
        raise FileNotFoundError(f"no minigpt checkpoint in {path} (expected {POINTER} or model.safetensors)")
    ckpt = path / pointer[which]
    if not ckpt.is_dir():
        raise FileNotFoundError(f"{path / POINTER} names {pointer[which]}, which does not exist")
    return ckpt


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {path.parent} is not a complete minigpt checkpoint")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is corrupt ({e.__class__.__name__}); the checkpoint cannot be read") from None


def read_arrays(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {path.parent} is not a complete minigpt checkpoint")
    return hf.read_safetensors(path)


def load_model(ckpt: Path, backend: str = "numpy"):
    """The model and tokenizer of a checkpoint directory, or of a Hugging Face GPT-2 directory."""
    model, tokenizer = hf.load(ckpt, backend=backend)
    if tokenizer is None:
        raise FileNotFoundError(f"{ckpt} has no tokenizer (tokenizer.json, or vocab.json and merges.txt); "
                                f"minigpt needs one to read and write text")
    return model, tokenizer


def load_training_state(ckpt: Path, optimizer) -> tuple[TrainConfig, dict]:
    """Restore the optimizer from a checkpoint directory; return its TrainConfig and state.json."""
    train_config = TrainConfig.from_dict(read_json(ckpt / "train_config.json"), source="saved config")
    state = read_json(ckpt / "state.json")
    optimizer.load_state_dict(read_arrays(ckpt / "optimizer.safetensors"), t=state["optimizer_step"])
    return train_config, state
