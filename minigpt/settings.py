"""Where the settings of a `minigpt train` run come from, merged here and nowhere else.

Each source overrides the ones before it:
    1. TrainConfig's defaults: nanoGPT's Shakespeare CPU recipe (minigpt/config.py);
    2. the preset (--preset speedrun or base, PRESETS below), then the task's (--task sort|add, TASK_PRESETS);
    3. the model of the checkpoint being fine-tuned (--init-from), whole: its shape need not be repeated, and only its
       dropout, its adapters and a shorter context may be changed (config.CHANGES_ON_FINE_TUNE);
    4. the config file (--config FILE.toml), whose keys are the settings' names (config.SETTINGS);
    5. the flags, the same names spelled with dashes.
A resumed run (--resume) starts from the settings saved with its latest checkpoint, and its model, instead of 1 to 3;
the file and the flags may change any of them but the model's shape and config.FIXED_ON_RESUME.

    given = settings.given(flags, "run.toml")            # 4 and 5: what the user wrote, and where
    cfg = settings.merge(given, Start("fine-tune", ckpt, model=checkpoint_model))   # the chain, into a TrainConfig

Every value is checked once, as the TrainConfig and its GPTConfig are built (minigpt/config.py); an error names the
value as its source gave it: the flag, the file and key, the preset, or the resumed run's train_config.json. Reading
what a run starts from (3, or a resumed run's settings and model) is minigpt/run.py's.
"""

import sys
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from minigpt.config import (CHANGES_ON_FINE_TUNE, CHANGES_ON_RESUME, FIXED_ON_RESUME, MODEL_SETTINGS, GPTConfig,
                            SettingError, TrainConfig, check_field, recipe_model, setting_field)
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
    # base: a Qwen 3-style model of 6.8M parameters (its BPE of 4,096 tokens: the corpus's) pretrained on the english
    # corpus (`minigpt data build`, `minigpt data tokenize`) with Muon for the blocks' matrices: 1,490 steps of 16
    # windows of 256 tokens, 6.1M tokens (1.07 passes over the corpus's 5.7M), the steps Muon takes in the wall time
    # of AdamW's 1,800 (a Muon step costs 1.21 of an AdamW one; Muon ends lower: docs/muon.md). About 30 minutes on 2
    # idle cores, under an hour on shared ones. docs/pretraining.md, "Pretraining the base model".
    "base": dict(corpus="english", arch="qwen3", n_layer=6, n_head=4, n_embd=256, block_size=256, batch_size=16,
                 optimizer="muon", max_iters=1490, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100,
                 eval_interval=200, eval_iters=20),
}


class Given(NamedTuple):
    """What the user set: each setting's value (by its name, config.SETTINGS), and where it was given (the flag, or
    the config file and key), for errors."""
    values: dict
    where: dict


class Start(NamedTuple):
    """What the run starts from, as the merge needs it: how ("new", "resume" or "fine-tune"), the checkpoint (or
    Hugging Face directory), a resumed run's saved settings, and the model it holds (resume, fine-tune)."""
    kind: str = "new"
    path: Path | None = None
    saved: TrainConfig | None = None
    model: GPTConfig | None = None


# The settings that choose what the others are merged over (a directory, a preset, a task): checked as they are given
CHOOSERS = ("out_dir", "resume", "init_from", "preset", "task")


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def read_toml(path) -> dict:
    """A config file's settings: TOML, UTF-8, known keys (the values are checked with the others, by merge)."""
    text = read_text(path, what="config file ", fix="save it as UTF-8")
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config file {path} is not valid TOML: {e}") from None
    TrainConfig.check_keys(d, source=f"{path}")
    return d


def given(flags: dict, config_file: str | None = None) -> Given:
    """What the user set: the flags (setting -> value, only those given; `resume` may be True or a run directory)
    over the config file's keys."""
    flags = dict(flags)
    resume = flags.pop("resume", None)
    if isinstance(resume, str):  # --resume DIR
        resume, flags["out_dir"] = True, resume
    if resume is not None:
        flags["resume"] = resume
    from_file = read_toml(config_file) if config_file else {}
    for key in from_file.keys() & flags.keys():  # a value of the file that a flag hides never reaches the config,
        check(key, from_file[key], f"{config_file}: {key}")  # which checks the others: checked here, as the file is read
    where = {**{key: f"{config_file}: {key}" for key in from_file}, **{key: flag(key) for key in flags}}
    values = {**from_file, **flags}
    for key in CHOOSERS:
        if key in values:
            check(key, values[key], where[key])
    return Given(values, where)


def check(key: str, value, where: str):
    """One setting's value, checked as its field checks it, named as `where` gave it."""
    try:
        return check_field(setting_field(key), value)
    except SettingError as e:
        raise ValueError(f"{where} {e.problem}") from None


def merge(given: Given, start: Start = Start(), source: str | None = None) -> TrainConfig:
    """The TrainConfig of a run: the settings given over what the run starts from, by the chain above. source: the
    config file, named in an error about settings that do not go together."""
    values, where = {}, {}

    def put(layer: dict, said) -> None:
        values.update(layer)
        where.update({key: said(key) for key in layer})

    if start.kind == "resume":
        saved = f"{start.path / 'train_config.json'}: "
        put({key: value for key, value in start.saved.to_dict().items() if key not in MODEL_SETTINGS},
            lambda key: saved + key)
    else:
        preset, task = given.values.get("preset"), given.values.get("task")
        put(PRESETS.get(preset, {}), lambda key: f"the {preset} preset's {key}")
        put(TASK_PRESETS.get(task, {}), lambda key: f"the {task} task's {key}")
        if start.kind == "fine-tune":  # the checkpoint's model, whole, but its dropout: a setting of the run (0, or
            # a preset's), as for a new model
            values = {"dropout": 0.0, **{key: value for key, value in values.items()
                                         if key not in MODEL_SETTINGS or key == "dropout"}}
    put(given.values, given.where.get)
    model_settings = {key: value for key, value in values.items() if key in MODEL_SETTINGS}
    own = {key: value for key, value in values.items() if key not in MODEL_SETTINGS}
    try:
        if start.model is None:
            model = recipe_model(**model_settings)
        else:
            check_changes(model_settings, start)
            model = replace(start.model, **model_settings)
        cfg = TrainConfig(model=model, **own)
    except SettingError as e:
        raise ValueError(f"{where.get(e.key, e.key)} {e.problem}") from None
    except ValueError as e:  # settings that do not go together; name the file if one was read
        raise ValueError(f"{e} (settings from {source} and the flags)" if source else str(e)) from None
    if start.kind == "resume":
        for key in FIXED_ON_RESUME:
            if getattr(start.saved, key) != getattr(cfg, key):
                raise ValueError(f"cannot change {key} when resuming ({getattr(start.saved, key)!r} in {start.path}, "
                                 f"{getattr(cfg, key)!r} now); start a new run in another --out-dir")
    return cfg


def check_changes(model_settings: dict, start: Start) -> None:
    """The model a run starts from changes only as a run may change it: a resumed run's, its dropout alone; a
    fine-tune's, its dropout, its adapters and a shorter context (CHANGES_ON_RESUME, CHANGES_ON_FINE_TUNE)."""
    may = CHANGES_ON_RESUME if start.kind == "resume" else CHANGES_ON_FINE_TUNE
    for key, want in model_settings.items():
        have = getattr(start.model, key)
        if want == have or (key in may and (key != "block_size" or (isinstance(want, int) and want < have))):
            continue
        if start.kind == "resume":
            raise ValueError(f"cannot change {key} when resuming ({have!r} in {start.path}, {want!r} now); start a new "
                             f"run in another --out-dir")
        raise ValueError(f"the checkpoint {start.path} has {key} {have!r}; it cannot be fine-tuned with {key} {want!r}")
