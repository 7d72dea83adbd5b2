"""The `minigpt` command: `minigpt train`, `sample`, `chat`, `eval`, `export`, `tokenizer`, `inspect`, `plot`, `data`,
one module each in minigpt/commands.

Every error ends the command with one line on stderr (`minigpt: error: ...`) and the exit status below, never a
traceback. Only the standard library is imported before `main` runs, and a Ctrl-C is handled from its first line
(minigpt/interrupt.py), so that even a Ctrl-C during start-up ends in one line.
"""

import os
import sys
import warnings

EXIT_CODES = """exit status:
  0    done
  1    error: one line on stderr, "minigpt: error: ..." says what is wrong and what to do
  2    usage: an unknown flag or a flag's value of the wrong kind
  130  interrupted (Ctrl-C); `train` first saves a checkpoint to --resume from
  143  stopped by SIGTERM (kill, docker stop, a scheduler): as a Ctrl-C, a checkpoint saved first
  129  stopped by SIGHUP (the terminal closed): the same"""


def build_parser():
    import argparse

    from minigpt import __version__
    from minigpt.commands import Parser, applications, chat, data, eval, export, inspect, plot, sample, tokenizer, train

    parser = Parser(prog="minigpt", description="Train and sample a GPT written from first principles in NumPy.",
                    epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"minigpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, command in (("train", train), ("sample", sample), ("chat", chat), ("eval", eval), ("export", export),
                          ("tokenizer", tokenizer), ("inspect", inspect), ("plot", plot), ("data", data),
                          ("applications", applications)):
        p = sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv=None) -> int:
    from minigpt import interrupt

    rank = os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    prefix = "minigpt"
    Diverged = Interrupted = ()  # (until they are imported, nothing is caught as them)
    with interrupt.handled():
        try:
            from minigpt import runtime
            from minigpt.commands import report

            # threads, waiting, memory: the settings that make minigpt fast (minigpt/runtime.py), first, before NumPy
            # loads (it loads NumPy): NumPy's OpenBLAS reads how its threads wait once, as it loads
            runtime.configure()
            from minigpt.distributed import launched_ranks
            from minigpt.interrupt import Diverged, Interrupted

            prefix = f"minigpt[rank {rank}]" if launched_ranks() > 1 else "minigpt"
            # a diverging run overflows; the loop checks its numbers and stops it in one line (minigpt/train.py)
            warnings.filterwarnings("ignore", message="(overflow|invalid value) encountered", category=RuntimeWarning)

            args = build_parser().parse_args(argv)
            interrupt.check()  # a Ctrl-C whose KeyboardInterrupt an import swallowed
            return args.run(args)
        except Interrupted as e:  # every rank stops at the same step; rank 0 says so
            if rank == "0":
                report(f"minigpt: {e}")
            return interrupt.exit_status()
        except KeyboardInterrupt:
            return interrupted(prefix)
        except BrokenPipeError:  # e.g. `minigpt sample | head`
            return 0
        except (ValueError, OSError, FloatingPointError, ImportError, RuntimeError, MemoryError) as e:
            if interrupt.requested():  # an error a Ctrl-C caused (NumPy makes one in its import an ImportError)
                return interrupted(prefix)
            if isinstance(e, Diverged) and rank != "0":  # every rank finds it; rank 0 says so
                return 1
            report(f"{prefix}: error: {' '.join(str(e).split()) or e.__class__.__name__}")
            abort(1)
            return 1
        except Exception as e:  # anything else is a bug of minigpt's: still one line, and it says so
            if interrupt.requested():
                return interrupted(prefix)
            report(f"{prefix}: error: internal error, a bug in minigpt (please report it with the command that led to "
                   f"it): {e.__class__.__name__}: {' '.join(str(e).split())}")
            abort(1)
            return 1


def interrupted(prefix: str) -> int:
    """One line, and the stop's exit status: 130 for a Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    from minigpt import interrupt
    from minigpt.commands import report

    report(f"{prefix}: interrupted" + ("" if interrupt.name() == "Ctrl-C" else f" ({interrupt.name()})"))
    abort(interrupt.exit_status())
    return interrupt.exit_status()


def abort(code: int) -> None:
    """Under mpiexec, end the other ranks too (minigpt/distributed.py); nothing otherwise."""
    if "minigpt.distributed" in sys.modules:
        sys.modules["minigpt.distributed"].abort_job(code)


def entry() -> None:
    """The `minigpt` command: main(), then exit with its status. A Ctrl-C that lands while CPython runs code on behalf
    of a C extension's import can leave CPython set to kill itself with SIGINT at exit, which reports -2 rather than
    130: after a Ctrl-C (or SIGTERM, SIGHUP) the process ends at once, its output flushed."""
    code = main()
    if code in (129, 130, 143):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
