"""`minigpt plot RUN_DIR`: a run's loss curves to a PNG (minigpt/plot.py)."""

HELP = "plot a run's loss curves to a PNG (needs matplotlib)"
DESCRIPTION = None


def add_arguments(p) -> None:
    p.add_argument("run_dir")
    p.add_argument("--output", help="the PNG to write (default: RUN_DIR/loss.png)")


def run(args) -> int:
    from minigpt.plot import plot_run

    print(plot_run(args.run_dir, args.output))
    return 0
