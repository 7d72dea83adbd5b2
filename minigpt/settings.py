"""Where the settings of a `minigpt train` run come from, merged here and nowhere else.

Each source overrides the ones before it:
    1. TrainConfig's defaults: nanoGPT's Shakespeare CPU recipe (minigpt/config.py);
    2. the preset (--preset speedrun, PRESETS below), then the task's (--task sort|add, TASK_PRESETS);
    3. the model's shape from the checkpoint being fine-tuned (--init-from), so that it need not be repeated;
    4. the config file (--config FILE.toml), whose keys are TrainConfig's fields;
    5. the flags, TrainConfig's fields spelled with dashes.
A resumed run (--resume) starts from the settings saved with its latest checkpoint instead of 1 to 3; the file and the
flags may change any of them but FIXED_ON_RESUME (minigpt/config.py), which minigpt/run.py refuses to change.

    given = settings.given(flags, "run.toml")     # 4 and 5: what the user wrote, each value checked where it enters
    cfg = settings.resolve(given, origin)         # the chain, into a TrainConfig

Reading what a run starts from (3, or a resumed run's saved settings: `origin`) is minigpt/run.py's; this module
only merges values, and an error names a value as the user wrote it (the flag, or the file and key).
"""

import sys

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
    # records (minigpt/data/record_tasks.py): the synthetic two from scratch, the Shakespeare two from a model
    # pretrained by `minigpt train` (--init-from out), whose shape they keep
    "sort-instruct": dict(n_layer=3, n_head=3, n_embd=48, block_size=16, batch_size=64, max_iters=750,
                          learning_rate=5e-3, min_lr=5e-4, warmup_iters=50, eval_interval=250, eval_iters=10),
    "add-instruct": dict(n_layer=3, n_head=3, n_embd=48, block_size=16, batch_size=64, max_iters=3000,
                         learning_rate=5e-3, min_lr=5e-4, warmup_iters=100, eval_interval=500, eval_iters=10),
    "shakespeare-speakers": dict(batch_size=64, max_iters=300, learning_rate=5e-4, min_lr=1e-5, warmup_iters=20,
                                 eval_interval=50, eval_iters=20, dropout=0.2, lm_loss_weight=0.5),
    "shakespeare-instruct": dict(batch_size=32, max_iters=300, learning_rate=3e-4, min_lr=3e-5, warmup_iters=20,
                                 eval_interval=100, eval_iters=20),
}


# Settings that `--preset NAME` puts in place of the defaults (a task's preset, files and flags still win). speedrun:
# the CPU speedrun's current record, nanoGPT's Shakespeare validation loss (1.919) in the least wall time; what each
# setting buys, and the runs that measured it: docs/speedrun.md.
PRESETS = {
    "speedrun": dict(arch="qwen3", max_iters=550, eval_interval=550, eval_iters=200, target_loss=1.919),
}


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


def given(flags: dict, config_file: str | None = None) -> dict:
    """What the user set, checked: the flags (TrainConfig field -> value, only those given; `resume` may be True or a
    run directory) over the config file's keys."""
    flags = dict(flags)
    resume = flags.pop("resume", None)
    if isinstance(resume, str):  # --resume DIR
        resume, flags["out_dir"] = True, resume
    values = {**(read_toml(config_file) if config_file else {}), **checked(flags, flag)}
    if resume is not None:  # the flag wins over the file
        values["resume"] = resume
    return values


def resolve(given: dict, origin: dict | None = None, source: str | None = None) -> TrainConfig:
    """The TrainConfig of a run: the settings given over what the run starts from (origin: a resumed run's saved
    settings, which stand in for the defaults, the preset and the shape; or a fine-tuned checkpoint's shape), by the
    chain above. source: the config file, named in an error about settings that do not go together."""
    origin = origin or {}
    if given.get("resume"):
        merged = {**origin, **given}
    else:
        merged = {**PRESETS.get(given.get("preset"), {}), **TASK_PRESETS.get(given.get("task"), {}), **origin, **given}
    try:
        return TrainConfig.from_dict(merged)
    except ValueError as e:  # settings that do not go together; name the file if one was read
        raise ValueError(f"{e} (settings from {source} and the flags)" if source else str(e)) from None
