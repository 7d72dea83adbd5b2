"""The `minigpt` command: `minigpt train`, `minigpt sample`, `minigpt plot`.

Every TrainConfig field is a `train` flag spelled with dashes. Settings are applied in this order, each
overriding the one before: TrainConfig's defaults (nanoGPT's Shakespeare CPU recipe), the task's preset
(--task), the config file (--config FILE.toml), the flags. A resumed run starts from its saved settings.
Errors end the command with status 1 and one line on stderr.
"""

import argparse
import codecs
import os
import sys
from dataclasses import fields
from pathlib import Path

from minigpt import runtime
from minigpt.config import BACKENDS, TASKS, TrainConfig, field_kind

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line like every other error of the command, and no
    abbreviated flags (argparse would take --max-iter for --max-iters)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message):
        self.exit(2, f"minigpt: error: {message} (see `{self.prog} --help`)\n")


def add_train_flags(parser: argparse.ArgumentParser) -> None:
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
            parser.add_argument(flag, choices=TASKS, default=argparse.SUPPRESS, help="a built-in synthetic task instead of text")
        elif f.name == "tokenizer":
            parser.add_argument(flag, default=argparse.SUPPRESS, metavar="char|bpe|DIR",
                                help="char (default), bpe (trained on the text, --vocab-size), or a tokenizer directory")
        elif f.name == "backend":
            parser.add_argument(flag, choices=BACKENDS, default=argparse.SUPPRESS, help=f"how the ops are computed {help_text}")
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            metavar = {int: "N", float: "X"}.get(kind, {"out_dir": "DIR", "init_from": "DIR", "data": "PATH"}.get(f.name, "VALUE"))
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, metavar=metavar, help=help_text)


def read_toml(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config file {path} is not valid TOML: {e}") from None


def train_config(args: argparse.Namespace) -> TrainConfig:
    from minigpt.train import TASK_PRESETS, resume_config

    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    from_file = read_toml(args.config) if args.config else {}
    TrainConfig.check_keys(from_file, source=f"{args.config}")
    resume = given.pop("resume", from_file.pop("resume", False))
    if resume:
        out_dir = resume if isinstance(resume, str) else given.get("out_dir", from_file.get("out_dir", TrainConfig.out_dir))
        given["out_dir"] = out_dir
        return resume_config(out_dir, {**from_file, **given})
    task = given.get("task", from_file.get("task"))
    init_from = given.get("init_from", from_file.get("init_from"))
    shape = pretrained_shape(init_from) if init_from else {}  # fine-tuning: the checkpoint's, unless given
    return TrainConfig.from_dict({**TASK_PRESETS.get(task, {}), **shape, **from_file, **given})


def pretrained_shape(init_from: str) -> dict:
    from minigpt import checkpoint
    from minigpt.hf import config_from_hf
    from minigpt.train import MODEL_KEYS

    path = checkpoint.resolve(init_from, "best") / "config.json"
    config = config_from_hf(checkpoint.read_json(path), str(path))
    return {key: getattr(config, key) for key in MODEL_KEYS}


def cmd_train(args) -> int:
    from minigpt.train import train

    cfg = train_config(args)
    result = train(cfg)
    if result["rank"] != 0:  # under mpiexec, rank 0 reports for all
        return 0
    summary = f"done: {result['iter']} iters in {result['seconds']:.0f} s, best val loss {result['best_val_loss']:.4f}"
    if "val_accuracy" in result:
        summary += f", held-out accuracy {result['val_accuracy']:.1%}"
    print(summary)
    print(f"checkpoints in {cfg.out_dir}; sample with: minigpt sample --out-dir {cfg.out_dir}")
    return 0


def cmd_sample(args) -> int:
    from minigpt import checkpoint
    from minigpt.data.chars import CharTokenizer
    from minigpt.data.text import encode_text
    from minigpt.generate import stream

    runtime.set_threads(args.threads)
    ckpt = checkpoint.resolve(args.out_dir, args.checkpoint)
    model, tokenizer = checkpoint.load_model(ckpt, backend=args.backend)
    prompt = args.prompt
    if prompt is None:
        prompt = "\n"
        if isinstance(tokenizer, CharTokenizer) and "\n" not in tokenizer.chars:
            raise ValueError("this model's vocabulary has no newline to start from; give a --prompt")
    idx = encode_text(tokenizer, prompt)[None, :]  # (1, T)
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be at least 1, got {args.num_samples}")
    steps = stream(model, idx.repeat(args.num_samples, axis=0), args.max_new_tokens, do_sample=not args.greedy,
                   temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    # tokens are decoded to bytes and the bytes to text incrementally: a BPE token can end inside a character
    decoders = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in range(args.num_samples)]
    if args.num_samples == 1:  # one sample: print each token as it comes
        out = prompt
        sys.stdout.write(prompt)
        for next_id in steps:
            piece = decoders[0].decode(tokenizer.decode_bytes(next_id))
            out += piece
            if args.stop and args.stop in out[len(prompt):]:
                end = out.index(args.stop, len(prompt)) + len(args.stop)
                sys.stdout.write(piece[: len(piece) - (len(out) - end)])
                break
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write(decoders[0].decode(b"", final=True) + "\n")
        return 0
    texts = [prompt] * args.num_samples  # several: generated together, printed one after another
    for next_id in steps:
        texts = [t + d.decode(tokenizer.decode_bytes([i])) for t, d, i in zip(texts, decoders, next_id)]
    for i, text in enumerate(texts):
        text += decoders[i].decode(b"", final=True)
        if args.stop and args.stop in text[len(prompt):]:
            text = text[: text.index(args.stop, len(prompt)) + len(args.stop)]
        print(text)
        if i < len(texts) - 1:
            print("-" * 40)
    return 0


def cmd_export(args) -> int:
    from minigpt import checkpoint, llmc

    if (args.hf is None) == (args.llmc is None):
        raise ValueError("give --hf DIR (a Hugging Face GPT-2 directory) or --llmc FILE (llm.c's model file)")
    ckpt = checkpoint.resolve(args.out_dir, args.checkpoint)
    model, tokenizer = checkpoint.load_model(ckpt)
    if args.hf is not None:
        model.save_pretrained(args.hf, tokenizer)
        print(f"wrote {args.hf}: GPT2LMHeadModel.from_pretrained and GPT2TokenizerFast.from_pretrained read it")
    else:
        llmc.save(model, args.llmc)
        print(f"wrote {args.llmc} (llm.c model file, version {llmc.VERSION})")
    return 0


def cmd_tokenizer(args) -> int:
    from minigpt.data import tokenizer_from_json
    from minigpt.data.bpe import BPETokenizer
    from minigpt.data.text import find_text

    if args.action == "train":
        source = find_text(args.data)
        tokenizer = BPETokenizer.train(source.read_text(encoding="utf-8"), args.vocab_size, args.pattern, progress=True)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "tokenizer.json").write_text(tokenizer.to_json())
        tokenizer.save_gpt2_files(out)
        tokenizer.save_tiktoken(out / "tokenizer.tiktoken")
        print(f"wrote {out}: tokenizer.json (minigpt), vocab.json + merges.txt (GPT-2), tokenizer.tiktoken (tiktoken)")
    else:
        path = Path(args.tokenizer)
        if not (path / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{path / 'tokenizer.json'} does not exist; make one with minigpt tokenizer train")
        tokenizer = tokenizer_from_json((path / "tokenizer.json").read_text(encoding="utf-8"))
        print(" ".join(str(i) for i in tokenizer.encode(args.text)))
    return 0


def cmd_plot(args) -> int:
    from minigpt.plot import plot_run

    print(plot_run(args.run_dir, args.output))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="minigpt", description="Train and sample a GPT written from first principles in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train a model (default: nanoGPT's Tiny Shakespeare CPU recipe)",
                       description="Train a GPT. Every setting is a flag; defaults are nanoGPT's CPU recipe for Tiny Shakespeare.")
    add_train_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="generate text from a trained model")
    p.add_argument("--out-dir", "--init-from", dest="out_dir", default="out", metavar="DIR",
                   help="a run directory, a checkpoint directory, or a Hugging Face GPT-2 directory (default: out)")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best", help="which checkpoint of a run (default: best)")
    p.add_argument("--prompt", help="text to continue (default: a newline)")
    p.add_argument("--max-new-tokens", type=int, default=500)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=200)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--greedy", action="store_true", help="always take the most likely token (ignores temperature, top-k, top-p)")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--stop", help="stop a sample once it contains this text")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="how the ops are computed (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="threads for BLAS, numba and OpenMP (default: every core)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("export", help="write a checkpoint as a Hugging Face GPT-2 directory or an llm.c model file")
    p.add_argument("--out-dir", default="out", metavar="DIR", help="the run or checkpoint to export (default: out)")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    p.add_argument("--hf", metavar="DIR", help="write config.json, model.safetensors and the tokenizer's files here")
    p.add_argument("--llmc", metavar="FILE", help="write llm.c's model file (version 3, float32) here")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer, or encode text with one")
    tok = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    t = tok.add_parser("train", help="learn a BPE vocabulary from a text file")
    t.add_argument("--data", help="a UTF-8 text file (default: Tiny Shakespeare)")
    t.add_argument("--vocab-size", type=int, required=True)
    t.add_argument("--pattern", choices=("r50k", "cl100k"), default="r50k", help="the regex pre-split (default: GPT-2's)")
    t.add_argument("--out", required=True, metavar="DIR")
    t = tok.add_parser("encode", help="print the token ids of a text")
    t.add_argument("--tokenizer", required=True, metavar="DIR", help="a directory written by minigpt tokenizer train")
    t.add_argument("text")
    p.set_defaults(func=cmd_tokenizer)

    p = sub.add_parser("plot", help="plot a run's loss curves to a PNG (needs matplotlib)")
    p.add_argument("run_dir")
    p.add_argument("--output", help="the PNG to write (default: RUN_DIR/loss.png)")
    p.set_defaults(func=cmd_plot)
    return parser


def main(argv=None) -> int:
    from minigpt.distributed import abort_job, launched_ranks
    from minigpt.train import TrainingInterrupted

    args = build_parser().parse_args(argv)
    runtime.configure()  # threads, memory: the settings that make minigpt fast (minigpt/runtime.py)
    rank = os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    prefix = f"minigpt[rank {rank}]" if launched_ranks() > 1 else "minigpt"
    try:
        return args.func(args)
    except TrainingInterrupted as e:  # every rank stops at the same step; rank 0 says so
        if rank == "0":
            print(f"minigpt: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        abort_job(130)
        return 130
    except BrokenPipeError:  # e.g. `minigpt sample | head`
        return 0
    except (ValueError, OSError, FloatingPointError, ImportError, RuntimeError) as e:
        message = " ".join(str(e).split()) or e.__class__.__name__
        print(f"{prefix}: error: {message}", file=sys.stderr)
        abort_job(1)
        return 1


if __name__ == "__main__":
    sys.exit(main())
