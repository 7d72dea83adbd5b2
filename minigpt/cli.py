"""The `minigpt` command: `minigpt train`, `sample`, `export`, `tokenizer`, `plot`.

Every TrainConfig field is a `train` flag spelled with dashes; where a run's settings come from, and in which order
they override each other, is minigpt/settings.py. Every error ends the command with one line on stderr
(`minigpt: error: ...`) and the exit status below, never a traceback. Only the standard library is imported before
`main` runs, so that even a Ctrl-C during start-up ends in one line.
"""

import argparse
import os
import signal
import sys
import threading
import warnings

EXIT_CODES = """exit status:
  0    done
  1    error: one line on stderr, "minigpt: error: ..." says what is wrong and what to do
  2    usage: an unknown flag or a flag's value of the wrong kind
  130  interrupted (Ctrl-C); `train` first saves a checkpoint to --resume from"""


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line like every other error of the command, and no
    abbreviated flags (argparse would take --max-iter for --max-iters)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message):
        self.exit(2, f"minigpt: error: {message} (see `{self.prog} --help`)\n")

    def _get_values(self, action, arg_strings):
        # argparse (3.11) drops a "--" given as a flag's value (--seed=--) and hands the flag an empty list
        if arg_strings == ["--"] and action.nargs is None:
            self.error(f"argument {'/'.join(action.option_strings)}: expected a value, got '--'")
        return super()._get_values(action, arg_strings)


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    from dataclasses import fields

    from minigpt.config import BACKENDS, TASKS, TrainConfig, field_kind

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
    parser.add_argument("--allow-data-change", action="store_true",
                        help="with --resume: go on with a text file other than the one the run was trained on")


def train_config(args: argparse.Namespace):
    from dataclasses import fields

    from minigpt.config import TrainConfig
    from minigpt.settings import resolve

    names = {f.name for f in fields(TrainConfig)}
    return resolve({k: v for k, v in vars(args).items() if k in names}, args.config)


def cmd_train(args) -> int:
    from minigpt.train import train

    cfg = train_config(args)
    result = train(cfg, allow_data_change=args.allow_data_change, interrupted_earlier=lambda: _interrupted)
    if result["rank"] != 0:  # under mpiexec, rank 0 reports for all
        return 0
    best = "none" if result["best_val_loss"] is None else f"{result['best_val_loss']:.4f}"
    summary = f"done: {result['iter']} iters in {result['seconds']:.0f} s, best val loss {best}"
    if "val_accuracy" in result:
        summary += f", held-out accuracy {result['val_accuracy']:.1%}"
    print(summary)
    print(f"checkpoints in {cfg.out_dir}; sample with: minigpt sample --out-dir {cfg.out_dir}")
    return 0


def check_sample_flags(args) -> None:
    """The flags of `sample`, checked by name before anything is loaded."""
    import math

    from minigpt.config import MAX_THREADS

    def require(ok, flag, value, what):
        if not ok:
            raise ValueError(f"{flag} must be {what}, got {value!r}")

    require(args.max_new_tokens >= 0, "--max-new-tokens", args.max_new_tokens, "zero or positive")
    require(args.num_samples >= 1, "--num-samples", args.num_samples, "at least 1")
    require(args.seed >= 0, "--seed", args.seed, "zero or positive")
    require(args.threads is None or 1 <= args.threads <= MAX_THREADS, "--threads", args.threads, f"in [1, {MAX_THREADS}]")
    require(args.top_k is None or args.top_k >= 1, "--top-k", args.top_k, "at least 1")
    require(args.top_p is None or 0.0 < args.top_p <= 1.0, "--top-p", args.top_p, "in (0, 1]")
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        raise ValueError(f"--temperature must be a positive number, got {args.temperature!r}; to always take the most "
                         f"likely token, use --greedy")
    if args.prompt is not None and "\0" in args.prompt:
        raise ValueError("--prompt contains a NUL character")


def cmd_sample(args) -> int:
    import codecs

    from minigpt import checkpoint, runtime
    from minigpt.data.chars import CharTokenizer
    from minigpt.data.text import encode_text
    from minigpt.generate import stream

    check_sample_flags(args)
    runtime.set_threads(args.threads)
    ckpt = checkpoint.resolve(args.out_dir, args.checkpoint)
    model, tokenizer = checkpoint.load_model(ckpt, backend=args.backend)
    prompt = args.prompt
    if prompt is None:
        prompt = "\n"
        if isinstance(tokenizer, CharTokenizer) and "\n" not in tokenizer.chars:
            raise ValueError("this model's vocabulary has no newline to start from; give a --prompt")
    idx = encode_text(tokenizer, prompt)[None, :]  # (1, T)
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


def check_export_target(path, force: bool, directory: bool) -> None:
    """An export never writes inside a run directory, and never replaces a file or fills a non-empty directory
    unless --force says so."""
    from pathlib import Path

    from minigpt import checkpoint

    path = Path(path).expanduser().resolve()
    for parent in (path, *path.parents):
        if parent.is_dir() and (checkpoint.read_pointer(parent) is not None or checkpoint.is_checkpoint(parent)):
            raise ValueError(f"{path} is inside the run directory {parent}; export somewhere else (e.g. {parent}-export)")
    if directory:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file; --hf needs a directory")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise ValueError(f"{path} is not empty; choose a new directory, or give --force to write into it")
    else:
        if path.is_dir():
            raise ValueError(f"{path} is a directory; --llmc needs a file name")
        if path.exists() and not force:
            raise ValueError(f"{path} exists; choose another name, or give --force to replace it")


def cmd_export(args) -> int:
    import numpy as np

    from minigpt import checkpoint, hf, llmc

    if (args.hf is None) == (args.llmc is None):
        raise ValueError("give --hf DIR (a Hugging Face GPT-2 directory) or --llmc FILE (llm.c's model file)")
    check_export_target(args.hf or args.llmc, args.force, directory=args.hf is not None)
    ckpt = checkpoint.resolve(args.out_dir, args.checkpoint)
    model, tokenizer = checkpoint.load_model(ckpt)
    if args.hf is not None:
        model.save_pretrained(args.hf, tokenizer)
        config, back, back_tokenizer = hf.read(args.hf)  # it reads back as what was written
        same = config == model.config and back_tokenizer == tokenizer
    else:
        llmc.save(model, args.llmc)
        back = llmc.load(args.llmc).params
        same = True
    same = same and all(np.array_equal(back[name], p.astype(np.float32)) for name, p in model.params.items())
    if not same:
        raise RuntimeError(f"{args.hf or args.llmc} does not read back as the checkpoint it was written from")
    if args.hf is not None:
        print(f"wrote {args.hf}: GPT2LMHeadModel.from_pretrained, GPT2TokenizerFast.from_pretrained and "
              f"minigpt sample --init-from read it")
    else:
        print(f"wrote {args.llmc} (llm.c model file, version {llmc.VERSION})")
    return 0


def cmd_tokenizer(args) -> int:
    from pathlib import Path

    from minigpt.data import load_tokenizer
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
        tokenizer = load_tokenizer(args.tokenizer)
        if tokenizer is None:
            raise FileNotFoundError(f"{args.tokenizer} holds no tokenizer (tokenizer.json, or vocab.json and "
                                    f"merges.txt); make one with minigpt tokenizer train")
        print(" ".join(str(i) for i in tokenizer.encode(args.text)))
    return 0


def cmd_inspect(args) -> int:
    from pathlib import Path

    from minigpt import checkpoint, inspect, runtime
    from minigpt.plot import read_log

    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    inspect.plotly()  # before any work: without plotly, say so at once
    runtime.set_threads(args.threads)
    ckpt = checkpoint.resolve(args.out_dir, args.checkpoint)
    is_run = checkpoint.read_pointer(Path(args.out_dir)) is not None
    model, tokenizer = checkpoint.load_model(ckpt, backend=args.backend)
    task = None
    if (ckpt / "train_config.json").is_file():  # a checkpoint of minigpt's (not a Hugging Face directory)
        task = checkpoint.read_train_config(ckpt).task
    prompt = args.prompt if args.prompt is not None else inspect.default_prompt(model, tokenizer, task)
    records = read_log(args.out_dir) if is_run and (Path(args.out_dir) / checkpoint.LOG).is_file() else None
    page = inspect.report(model, tokenizer, prompt, args.top_k, records, title=f"minigpt inspect: {ckpt}",
                          say=lambda notice: report(f"minigpt: {notice}"))
    html_path = Path(args.html) if args.html else (Path(args.out_dir) if is_run else Path.cwd()) / "inspect.html"
    print(inspect.write(page, html_path))
    return 0


def cmd_plot(args) -> int:
    from minigpt.plot import plot_run

    print(plot_run(args.run_dir, args.output))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from minigpt.config import BACKENDS

    parser = Parser(prog="minigpt", description="Train and sample a GPT written from first principles in NumPy.",
                    epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--force", action="store_true", help="replace an existing file, or write into a non-empty directory")
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

    p = sub.add_parser("inspect", help="one self-contained HTML page of what each layer and head does (needs plotly)",
                       description="Write one HTML page (everything inline: it opens offline) showing, for a prompt, "
                                   "every attention head, the predictions, the logit lens, activations, gradients "
                                   "and, for a run directory, its training curves. Docs: docs/inspect.md.")
    p.add_argument("--out-dir", "--init-from", dest="out_dir", default="out", metavar="DIR",
                   help="a run directory, a checkpoint directory, or a Hugging Face GPT-2 directory (default: out)")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best", help="which checkpoint of a run (default: best)")
    p.add_argument("--prompt", help="the text to inspect (default: a held-out problem of a task run, else the model's own greedy "
                        "continuation of a newline)")
    p.add_argument("--html", metavar="FILE", help="where to write the page (default: DIR/inspect.html for a run, "
                                                  "else ./inspect.html)")
    p.add_argument("--top-k", type=int, default=5, help="next tokens shown at each position (default: 5)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="how the ops are computed (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="threads for BLAS and OpenMP (default: every core)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("plot", help="plot a run's loss curves to a PNG (needs matplotlib)")
    p.add_argument("run_dir")
    p.add_argument("--output", help="the PNG to write (default: RUN_DIR/loss.png)")
    p.set_defaults(func=cmd_plot)
    return parser


_interrupted = False  # a Ctrl-C arrived (numpy turns one that lands in its import into an ImportError)


def on_ctrl_c(signum, frame):
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def quiet_ctrl_c(unraisable) -> None:
    """A Ctrl-C that lands in a callback Python cannot raise from (a weakref callback of the import lock, a __del__) is
    printed by the interpreter as "Exception ignored" with a traceback; it is remembered in _interrupted instead."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def main(argv=None) -> int:
    global _interrupted
    _interrupted = False
    rank = os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    prefix = "minigpt"
    Diverged = TrainingInterrupted = ()  # (until they are imported, nothing is caught as them)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_ctrl_c) if main_thread else None
    previous_hook, sys.unraisablehook = sys.unraisablehook, quiet_ctrl_c
    try:
        from minigpt import runtime
        from minigpt.distributed import launched_ranks
        from minigpt.train import Diverged, TrainingInterrupted

        prefix = f"minigpt[rank {rank}]" if launched_ranks() > 1 else "minigpt"
        # a diverging run overflows; the loop checks its numbers and stops it in one line (minigpt/train.py)
        warnings.filterwarnings("ignore", message="(overflow|invalid value) encountered", category=RuntimeWarning)

        args = build_parser().parse_args(argv)
        runtime.configure()  # threads, memory: the settings that make minigpt fast (minigpt/runtime.py)
        if _interrupted:  # a Ctrl-C whose KeyboardInterrupt an import swallowed
            raise KeyboardInterrupt
        return args.func(args)
    except TrainingInterrupted as e:  # every rank stops at the same step; rank 0 says so
        if rank == "0":
            report(f"minigpt: {e}")
        return 130
    except KeyboardInterrupt:
        return interrupted(prefix)
    except BrokenPipeError:  # e.g. `minigpt sample | head`
        return 0
    except (ValueError, OSError, FloatingPointError, ImportError, RuntimeError, MemoryError) as e:
        if _interrupted:
            return interrupted(prefix)
        if isinstance(e, Diverged) and rank != "0":  # every rank finds it; rank 0 says so
            return 1
        report(f"{prefix}: error: {' '.join(str(e).split()) or e.__class__.__name__}")
        abort(1)
        return 1
    except Exception as e:  # anything else is a bug of minigpt's: still one line, and it says so
        if _interrupted:
            return interrupted(prefix)
        report(f"{prefix}: error: internal error, a bug in minigpt (please report it with the command that led to it): "
               f"{e.__class__.__name__}: {' '.join(str(e).split())}")
        abort(1)
        return 1
    finally:
        sys.unraisablehook = previous_hook
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def report(line: str) -> None:
    """One line on stderr; a file name's undecodable bytes (surrogates) are shown escaped, whatever stderr's encoding."""
    print(line.encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr)


def interrupted(prefix: str) -> int:
    report(f"{prefix}: interrupted")
    abort(130)
    return 130


def entry() -> None:
    """The `minigpt` command: main(), then exit with its status. A Ctrl-C that lands while CPython runs code on behalf
    of a C extension's import can leave CPython set to kill itself with SIGINT at exit, which reports -2 rather than
    130: after a Ctrl-C the process ends at once, its output flushed."""
    code = main()
    if code == 130:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:
                pass
        os._exit(130)
    sys.exit(code)


def abort(code: int) -> None:
    """Under mpiexec, end the other ranks too (minigpt/distributed.py); nothing otherwise."""
    if "minigpt.distributed" in sys.modules:
        sys.modules["minigpt.distributed"].abort_job(code)


if __name__ == "__main__":
    entry()
