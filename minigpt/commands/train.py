"""`minigpt train`: every TrainConfig field is a flag spelled with dashes; where a run's settings come from, and in
which order they override each other, is minigpt/settings.py."""

import argparse
from dataclasses import fields

HELP = "train a model (default: nanoGPT's Tiny Shakespeare CPU recipe)"
DESCRIPTION = "Train a GPT. Every setting is a flag; defaults are nanoGPT's CPU recipe for Tiny Shakespeare."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from minigpt.config import ARCHS, BACKENDS, PRESETS, TASKS, TrainConfig, field_kind

    parser.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file of TrainConfig keys")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind, _ = field_kind(f)
        help_text = f"(default: {getattr(defaults, f.name)})"
        if f.name == "data":
            help_text = "a UTF-8 text file (default: Tiny Shakespeare, found via $MINIGPT_DATA or the cache, or downloaded)"
        if f.name == "resume":
            parser.add_argument(flag, nargs="?", const=True, default=argparse.SUPPRESS, metavar="DIR",
                                help="continue the run in --out-dir (or in DIR) from its latest checkpoint")
        elif f.name == "task":
            parser.add_argument(flag, choices=TASKS, default=argparse.SUPPRESS,
                                help="a built-in synthetic task instead of text")
        elif f.name == "tokenizer":
            parser.add_argument(flag, default=argparse.SUPPRESS, metavar="char|bpe|DIR",
                                help="char (default), bpe (trained on the text, --vocab-size), or a tokenizer directory")
        elif f.name == "backend":
            parser.add_argument(flag, choices=BACKENDS, default=argparse.SUPPRESS,
                                help=f"how the ops are computed {help_text}")
        elif f.name == "preset":
            parser.add_argument(flag, choices=PRESETS, default=argparse.SUPPRESS,
                                help="speedrun: the CPU speedrun's record, the fastest way here to nanoGPT's Shakespeare "
                                     "loss (docs/speedrun.md); other flags still win")
        elif f.name == "arch":
            parser.add_argument(flag, choices=ARCHS, default=argparse.SUPPRESS,
                                help=f"the model's family: gpt2, llama (RMSNorm, rotary embeddings, SwiGLU, grouped-query "
                                     f"attention) or qwen3 (llama's, with QK-norm) {help_text}")
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            metavar = {int: "N", float: "X"}.get(kind, {"out_dir": "DIR", "init_from": "DIR", "data": "PATH"}.get(f.name, "VALUE"))
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, metavar=metavar, help=help_text)
    parser.add_argument("--allow-data-change", action="store_true",
                        help="with --resume: go on with a text file other than the one the run was trained on")


def run(args) -> int:
    from minigpt import settings
    from minigpt.config import TrainConfig
    from minigpt.train import train

    names = {f.name for f in fields(TrainConfig)}
    given = settings.given({k: v for k, v in vars(args).items() if k in names}, args.config)
    result = train(given, source=args.config, allow_data_change=args.allow_data_change)
    if result["rank"] != 0:  # under mpiexec, rank 0 reports for all
        return 0
    if result.get("reached_target"):
        print(f"reached the target validation loss {result['target_loss']} at iter {result['iter']}: val loss "
              f"{result['val_loss']:.4f}, {result['seconds']:.1f} s after the start")
    best = "none" if result["best_val_loss"] is None else f"{result['best_val_loss']:.4f}"
    summary = f"done: {result['iter']} iters in {result['seconds']:.0f} s, best val loss {best}"
    if "val_accuracy" in result:
        summary += f", held-out accuracy {result['val_accuracy']:.1%}"
    print(summary)
    print(f"checkpoints in {result['out_dir']}; sample with: minigpt sample --out-dir {result['out_dir']}")
    return 0
