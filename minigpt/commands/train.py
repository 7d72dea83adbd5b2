"""`minigpt train`: every setting (TrainConfig's, and its model's) is a flag spelled with dashes; where a run's
settings come from, and in which order they override each other, is minigpt/settings.py."""

import argparse

HELP = "train a model (default: nanoGPT's Tiny Shakespeare CPU recipe)"
DESCRIPTION = "Train a GPT. Every setting is a flag; defaults are nanoGPT's CPU recipe for Tiny Shakespeare."

# What a setting left out (None in TrainConfig) means, for --help: "(default: None)" would say nothing
UNSET = {
    "vocab_size": "512, with --tokenizer bpe",
    "bias": "the family's: gpt2 true, llama and qwen3 false",
    "n_kv_head": "--n-head, one key/value head per query head",
    "head_dim": "--n-embd / --n-head",
    "intermediate_size": "the family's: gpt2 4 x --n-embd; llama and qwen3 8/3 x --n-embd, rounded up to a multiple "
                         "of 8",
    "norm_eps": "the family's: gpt2 1e-5, llama and qwen3 1e-6",
    "rope_theta": "10000, for llama and qwen3 (gpt2 has no rotary embeddings)",
    "tie_word_embeddings": "the family's: gpt2 true, llama and qwen3 false",
    "lora_rank": "no adapters, every weight trains",
    "lora_alpha": "8, as PEFT",
    "lora_targets": "attention, once --lora-rank is given",
    "min_lr": "--learning-rate / 10",
    "lr_decay_iters": "--max-iters",
    "target_loss": "none, every --max-iters step runs",
    "threads": "$MINIGPT_THREADS, else the cores that other programs leave free; more than the cores is capped",
    "init_from": "none, a new model from random weights",
    "corpus": "none, the text of --data",
}
# what a flag does, where its name does not say it
ABOUT = {
    "truncate": "records longer than the context (--block-size): cut to fit, an instruction's completion on the right, "
                "a classified text before <|extract|>; dropped if no completion token is left; without it they are "
                "refused",
    "out_dir": "where the checkpoints and log.jsonl go",
    "max_iters": "optimizer steps",
    "corpus": "train on a corpus tokenized by minigpt data tokenize, by its name (english) or directory; the model "
              "takes its tokenizer, and reports bits per byte",
    "eval_interval": "evaluate and save a checkpoint every N steps, and after the last",
    "eval_iters": "batches per split in each evaluation",
    "warmup_iters": "steps of linear warmup",
    "lr_decay_iters": "the step where the cosine decay reaches --min-lr",
    "min_lr": "the learning rate the cosine decays to",
    "lora_rank": "fine-tune LoRA adapters of this rank, the model's weights frozen",
    "target_loss": "stop at the first evaluation whose validation loss is at most this",
    "muon_lr": "with --optimizer muon: the blocks' matrices' peak learning rate, under the same schedule",
    "muon_momentum": "with --optimizer muon: its Nesterov momentum",
    "muon_weight_decay": "with --optimizer muon: the matrices' decoupled weight decay",
    "method": "what a step minimises: sft, the targets' cross-entropy; dpo, direct preference optimisation on "
              "{prompt, chosen, rejected} records; rl, the policy gradient on completions the model samples for "
              "instruction records' prompts, rewarded where exactly the record's (docs/preference.md)",
    "dpo_beta": "with --method dpo: how far from the reference (the starting model) the model may move",
    "rpo_alpha": "with --method dpo: the weight of the chosen completions' cross-entropy added to the loss (RPO)",
    "rl_group": "with --method rl: completions sampled per prompt, each the others' baseline",
    "rl_temperature": "with --method rl: the sampling temperature",
    "rl_advantage": "with --method rl: leave-one-out (unbiased) or grpo (the group's rewards normalised)",
    "init_from": "start from the weights of a run, a checkpoint, a Hugging Face directory or a Hub id such as gpt2 "
                 "(fine-tuning)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from minigpt.config import (ADVANTAGES, ARCHS, BACKENDS, METHODS, OPTIMIZERS, PRESET_NAMES, RECIPE_MODEL, SETTINGS,
                                TASK_NAMES, field_kind, setting_field)

    parser.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file of the settings' names")
    for f in map(setting_field, SETTINGS):
        flag = "--" + f.name.replace("_", "-")
        kind, _ = field_kind(f)
        default = RECIPE_MODEL.get(f.name, f.default)  # (the field's, not a TrainConfig()'s, which fills in min_lr)
        help_text = f"(default: {UNSET.get(f.name) if default is None else default})"  # (the rest: their own below)
        if f.name in ABOUT:
            help_text = f"{ABOUT[f.name]} {help_text}"
        if f.name == "data":
            help_text = "a UTF-8 text file (default: Tiny Shakespeare, found via $MINIGPT_DATA or the cache, or downloaded)"
        if f.name == "resume":
            parser.add_argument(flag, nargs="?", const=True, default=argparse.SUPPRESS, metavar="DIR",
                                help="continue the run in --out-dir (or in DIR) from its latest checkpoint")
        elif f.name == "task":
            parser.add_argument(flag, choices=TASK_NAMES, default=argparse.SUPPRESS,
                                help="a built-in task instead of text: synthetic (sort, add) or records to fine-tune on "
                                     "(default: none, the text of --data)")
        elif f.name == "tokenizer":
            parser.add_argument(flag, default=argparse.SUPPRESS, metavar="char|bpe|DIR",
                                help="char, bpe (trained on the text, --vocab-size), or a tokenizer directory "
                                     "(default: char)")
        elif f.name == "backend":
            parser.add_argument(flag, choices=BACKENDS, default=argparse.SUPPRESS,
                                help=f"how the ops are computed {help_text}")
        elif f.name == "preset":
            parser.add_argument(flag, choices=PRESET_NAMES, default=argparse.SUPPRESS,
                                help="speedrun: the CPU speedrun's record, the fastest way here to nanoGPT's Shakespeare "
                                     "loss (docs/speedrun.md); base: a Qwen 3-style model pretrained on the english "
                                     "corpus (docs/pretraining.md); other flags still win (default: none)")
        elif f.name == "arch":
            parser.add_argument(flag, choices=ARCHS, default=argparse.SUPPRESS,
                                help=f"the model's family: gpt2, llama (RMSNorm, rotary embeddings, SwiGLU, grouped-query "
                                     f"attention) or qwen3 (llama's, with QK-norm) {help_text}")
        elif f.name == "optimizer":
            parser.add_argument(flag, choices=OPTIMIZERS, default=argparse.SUPPRESS,
                                help=f"adamw for every parameter, or muon for the blocks' weight matrices and adamw for "
                                     f"the rest (docs/muon.md) {help_text}")
        elif f.name in ("method", "rl_advantage"):
            parser.add_argument(flag, choices=METHODS if f.name == "method" else ADVANTAGES, default=argparse.SUPPRESS,
                                help=f"{ABOUT[f.name]} {help_text}")
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            metavar = {int: "N", float: "X"}.get(kind, {"out_dir": "DIR", "init_from": "DIR", "data": "PATH", "corpus": "NAME|DIR"}.get(f.name, "VALUE"))
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, metavar=metavar, help=help_text)
    parser.add_argument("--allow-data-change", action="store_true",
                        help="with --resume: go on with a text file other than the one the run was trained on")


def run(args) -> int:
    from minigpt import settings
    from minigpt.config import SETTINGS
    from minigpt.train import train

    given = settings.given({k: v for k, v in vars(args).items() if k in SETTINGS}, args.config)
    result = train(given, source=args.config, allow_data_change=args.allow_data_change)
    if result["rank"] != 0:  # under mpiexec, rank 0 reports for all
        return 0
    if result.get("reached_target"):
        print(f"reached the target validation loss {result['target_loss']} at iter {result['iter']}: val loss "
              f"{result['val_loss']:.4f}, {result['seconds']:.1f} s after the start")
    best = "none" if result["best_val_loss"] is None else f"{result['best_val_loss']:.4f}"
    if result["steps"] == 0:  # a resumed run that had finished: not "done in 0 s", as if it had trained
        print(f"nothing to train: the run in {result['out_dir']} has done its {result['iter']} iters (--max-iters), "
              f"best val loss {best}; give a larger --max-iters to continue it")
    else:
        summary = f"done: {result['iter']} iters in {result['seconds']:.0f} s, best val loss {best}"
        if "val_accuracy" in result:
            summary += f", held-out accuracy {result['val_accuracy']:.1%}"
        print(summary)
    print(f"checkpoints in {result['out_dir']}; {result['next']}")
    return 0
