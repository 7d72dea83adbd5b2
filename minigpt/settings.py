"""Where the settings of a `minigpt train` run come from: one function, `resolve`, walks the whole chain.

Each source overrides the ones before it:
    1. TrainConfig's defaults: nanoGPT's Shakespeare CPU recipe (minigpt/config.py);
    2. the task's preset (--task sort|add, TASK_PRESETS below);
    3. the model's shape from the checkpoint being fine-tuned (--init-from), so that it need not be repeated;
    4. the config file (--config FILE.toml), whose keys are TrainConfig's fields;
    5. the flags, TrainConfig's fields spelled with dashes.
A resumed run (--resume) starts from the settings saved with its latest checkpoint instead of 1 to 3; the file and the
flags may change any of them but FIXED_ON_RESUME, which minigpt.train refuses to change. Every value is checked where
it enters, and an error names it as the user wrote it (the flag, or the file and key).
"""

import sys
from pathlib import Path

from minigpt import checkpoint, hf
from minigpt.config import TrainConfig, check_setting
from minigpt.validate import read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Settings that `--task NAME` puts in place of the Shakespeare recipe (files and flags still win).
TASK_PRESETS = {
    "sort": dict(n_layer=3, n_head=3, n_embd=48, block_size=11, batch_size=64, max_iters=1500, learning_rate=5e-3,
                 min_lr=5e-4, warmup_iters=50, eval_interval=250, eval_iters=10, weight_decay=0.1, beta2=0.99),
    "add": dict(n_layer=3, n_head=3, n_embd=48, block_size=6, batch_size=64, max_iters=2000, learning_rate=5e-3,
                min_lr=5e-4, warmup_iters=100, eval_interval=500, eval_iters=10, weight_decay=0.1, beta2=0.99),
}
MODEL_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "bias")
# What a resumed run cannot change, because its checkpoint was made with it. (The data file may move, but not
# change: minigpt.train compares its size and SHA-256 with the ones saved.)
FIXED_ON_RESUME = ("task", "tokenizer", "vocab_size", "n_layer", "n_head", "n_embd", "block_size", "bias", "dtype", "seed")


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def checked(values: dict, name) -> dict:
    """values, each checked against its TrainConfig field; an error calls a value name(key)."""
    out = {}
    for key, value in values.items():
        try:
            out[key] = check_setting(key, value)
        except ValueError as e:
            raise ValueError(f"{name(key)} {e}") from None
    return out


def read_toml(path) -> dict:
    """A config file's settings, checked: TOML, UTF-8, known keys, valid values."""
    text = read_text(path, what="config file ", fix="save it as UTF-8")
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config file {path} is not valid TOML: {e}") from None
    TrainConfig.check_keys(d, source=f"{path}")
    return checked(d, lambda key: f"{path}: {key}")


def pretrained_shape(init_from: str) -> dict:
    """The model shape of the checkpoint (or Hugging Face directory) a fine-tuning run starts from."""
    ckpt = checkpoint.resolve(init_from, "best")
    config_json = checkpoint.verified(ckpt, "config.json") if checkpoint.is_checkpoint(ckpt) else ckpt / "config.json"
    config = hf.read_config(config_json)
    return {key: getattr(config, key) for key in MODEL_KEYS}


def resolve(flags: dict, config_file: str | None = None) -> TrainConfig:
    """The TrainConfig of a run from its flags (TrainConfig field -> value, only those given; `resume` may be True
    or a run directory) and its config file, by the chain above."""
    flags = dict(flags)
    resume = flags.pop("resume", None)
    if isinstance(resume, str):  # --resume DIR
        resume, flags["out_dir"] = True, resume
    given = checked(flags, flag)
    from_file = read_toml(config_file) if config_file else {}
    resume_in_file = from_file.pop("resume", False)
    if resume is None:  # the flag wins over the file
        resume = resume_in_file
    if resume:
        out_dir = Path(given.get("out_dir", from_file.get("out_dir", TrainConfig.out_dir)))
        pointer = checkpoint.read_pointer(out_dir) if out_dir.is_dir() else None
        if pointer is None:
            raise FileNotFoundError(f"nothing to resume in {out_dir}: it holds no checkpoint; start the run without --resume")
        saved = checkpoint.read_train_config(out_dir / pointer["latest"]).to_dict()
        saved["init_from"] = None  # (the weights a fine-tuning run started from are in its checkpoints now)
        merged = {**saved, **from_file, **given, "resume": True, "out_dir": str(out_dir)}
    else:
        task = given.get("task", from_file.get("task"))
        init_from = given.get("init_from", from_file.get("init_from"))
        shape = pretrained_shape(init_from) if init_from else {}  # fine-tuning: the checkpoint's, unless given
        merged = {**TASK_PRESETS.get(task, {}), **shape, **from_file, **given}
    try:
        return TrainConfig.from_dict(merged)
    except ValueError as e:  # settings that do not go together; name the file if one was read
        raise ValueError(f"{e} (settings from {config_file} and the flags)" if config_file else str(e)) from None
