"""The commands of `minigpt`, one module each: `add_arguments(parser)` declares its flags, `run(args)` does it and
returns the exit status. minigpt/cli.py builds the parser from them and turns every error into one line. Each module
imports what it computes with inside `run`, so that `minigpt --help`, and a Ctrl-C while the command starts, cost
only the standard library."""

import argparse


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line like every other error of the command, and no
    abbreviated flags (argparse would take --max-iter for --max-iters)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message):
        self.exit(2, f"minigpt: error: {message} (see `{self.prog} --help`)\n")

    def parse_known_args(self, args=None, namespace=None):
        # argparse hands a command's unknown flags up to `minigpt`, whose error would point to `minigpt --help`; the
        # command that was given them says so, and points to its own help (`minigpt train --help`)
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    def _get_values(self, action, arg_strings):
        # argparse (3.11) drops a "--" given as a flag's value (--seed=--) and hands the flag an empty list
        if arg_strings == ["--"] and action.nargs is None:
            self.error(f"argument {'/'.join(action.option_strings)}: expected a value, got '--'")
        return super()._get_values(action, arg_strings)


def model_arguments(p) -> None:
    """The flags of a command that runs a model: where it is (--out-dir, --checkpoint) and how it computes
    (--backend, --threads)."""
    from minigpt.config import BACKENDS

    p.add_argument("--out-dir", "--init-from", dest="out_dir", default="out", metavar="DIR",
                   help="a run directory, a checkpoint directory, a Hugging Face directory, or a model's id on the "
                        "Hugging Face Hub, read from its cache or downloaded into it (default: out)")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best", help="which checkpoint of a run (default: best)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="how the ops are computed (default: auto)")
    p.add_argument("--threads", type=thread_count, default=None, metavar="N",
                   help="threads for BLAS, numba and OpenMP, at most the cores (default: $MINIGPT_THREADS, "
                        "else the cores that other programs leave free)")


def quantize_argument(p) -> None:
    """--quantize: the flag of a command that runs a model for inference only (sample, chat, eval)."""
    from minigpt.config import QUANTIZATIONS

    p.add_argument("--quantize", choices=QUANTIZATIONS, default=None,
                   help="hold the linear layers' weights in 8 bits (GGUF's Q8_0: about 4x fewer bytes to read for "
                        "each token; docs/inference.md) (default: float, as stored)")


def sampling_arguments(p, max_new_tokens: int, what: str) -> None:
    """The flags of a command that samples (sample, chat): how many tokens at most, and how each is drawn."""
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens, metavar="N",
                   help=f"{what} (default: {max_new_tokens})")
    p.add_argument("--temperature", type=float, default=0.8, metavar="X",
                   help="divides the logits: below 1 sharper, above 1 flatter (default: 0.8)")
    p.add_argument("--top-k", type=int, default=200, metavar="K",
                   help="sample among the K likeliest tokens (default: 200)")
    p.add_argument("--top-p", type=float, default=None, metavar="P",
                   help="sample among the likeliest tokens whose probabilities add up to P (default: off)")
    p.add_argument("--greedy", action="store_true",
                   help="always take the most likely token (ignores temperature, top-k, top-p)")
    p.add_argument("--seed", type=int, default=1337, metavar="N", help="the sampling's random seed (default: 1337)")
    p.add_argument("--num-beams", type=int, default=1, metavar="N",
                   help="beam search with N beams, as transformers' generate(num_beams=N): the best-scoring "
                        "continuation, deterministic, ended by the model's end token; it keeps the prompt and the "
                        "continuation within the context; 1 samples as the flags above say (default: 1)")
    p.add_argument("--length-penalty", type=float, default=1.0, metavar="X",
                   help="beam search: a finished continuation scores its log-probability / length**X; above 0 "
                        "favours longer ones (default: 1.0)")
    p.add_argument("--early-stopping", action="store_true",
                   help="beam search: stop as soon as N continuations have ended (default: when no running beam "
                        "could beat them)")


# the sampling flags' defaults: a different value beside --num-beams is a flag that beam search would ignore
SAMPLING_DEFAULTS = {"--temperature": 0.8, "--top-k": 200, "--top-p": None, "--seed": 1337, "--greedy": False}


def beam_flags(args):
    """--num-beams N as a minigpt.beam.Beams, or None for N = 1 (sampling, or --greedy), its flags checked by name.
    Beam search samples nothing, so a sampling flag given beside it is refused rather than ignored, and so are
    beam search's own flags without it."""
    from minigpt.beam import Beams, check_beam_args

    check_beam_args(args.num_beams, args.length_penalty, args.early_stopping, flags=True)
    if args.num_beams == 1:
        if args.length_penalty != 1.0 or args.early_stopping:
            raise ValueError("--length-penalty and --early-stopping are beam search's; give --num-beams N (N > 1) "
                             "with them, or drop them")
        return None
    given = {"--temperature": args.temperature, "--top-k": args.top_k, "--top-p": args.top_p, "--seed": args.seed,
             "--greedy": args.greedy}
    for flag, value in given.items():
        if value != SAMPLING_DEFAULTS[flag]:
            raise ValueError(f"{flag} does not apply to beam search (--num-beams {args.num_beams}), which samples "
                             f"nothing: it keeps the best-scoring continuation; drop {flag}, or --num-beams")
    return Beams(args.num_beams, args.length_penalty, args.early_stopping)


def use_threads(threads: int | None) -> None:
    """The --threads of a command that runs a model (None: the runtime's default), at most the cores: a larger count
    is capped and said (minigpt/runtime.py, within_cores)."""
    from minigpt import runtime

    runtime.set_threads(runtime.within_cores(threads, report))


def thread_count(value: str) -> int:
    """--threads N (argparse's type): 1 to MAX_THREADS; more than the cores is capped when it is used
    (minigpt/runtime.py, within_cores)."""
    from minigpt.config import MAX_THREADS

    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {value!r}") from None
    if not 1 <= n <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be in [1, {MAX_THREADS}], got {n}")
    return n


def report(line: str) -> None:
    """One line on stderr; a file name's undecodable bytes (surrogates) are shown escaped, whatever stderr's encoding."""
    import sys

    print(line.encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr)
