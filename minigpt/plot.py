"""`minigpt plot RUN_DIR`: the training and validation loss curves of a run, from its log.jsonl."""

from pathlib import Path

from minigpt import outputs
from minigpt.files import atomic_write
from minigpt.runlog import read_log


def plot_run(run_dir, output=None, title=None) -> Path:
    """Write the loss curves of the run in run_dir to a PNG (or the format output's name ends with: .svg, .pdf),
    titled title, or after the run's directory; return its path."""
    try:
        import matplotlib
    except ImportError:
        raise OSError("plotting needs matplotlib: pip install 'minigpt[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    records = read_log(run_dir)
    output = outputs.check(output or Path(run_dir) / "loss.png", "--output")
    kind = output.suffix[1:].lower()  # (matplotlib writes the format the name ends with)
    formats = FigureCanvasBase.get_supported_filetypes()
    if kind not in formats:
        raise ValueError(f"--output {output}: matplotlib writes {', '.join(sorted(formats))}; end the name with one "
                         f"of them (.png)")
    evals = [r for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot([r["iter"] for r in records], [r["loss"] for r in records], lw=0.6, alpha=0.5, label="training batch loss")
    if evals:
        ax.plot([r["iter"] for r in evals], [r["train_loss"] for r in evals], "o-", label="train loss (evaluation)")
        ax.plot([r["iter"] for r in evals], [r["val_loss"] for r in evals], "s-", label="validation loss")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.set_title(title or f"minigpt: {Path(run_dir).resolve().name}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_write(output, "wb") as f:  # (a reader sees the old picture or the whole new one)
        fig.savefig(f, format=kind, dpi=120)
    plt.close(fig)
    return output
