"""Regenerate the figures of the docs (docs/figures/*.png) from real runs of minigpt:

    python docs/make_figures.py                  # trains the default recipe first (about 4 minutes)
    python docs/make_figures.py --run-dir out    # or uses the run `minigpt train` left in out/

- loss.png: the training and validation loss curves of the run (minigpt.plot.plot_run);
- attention.png: the attention probabilities of every head of the run's best model on a line of Shakespeare;
- inspect_*.png: panels of `minigpt inspect`'s page for the run on the same line, in headless Chromium
  (docs/inspect.md; the run should be trained with --log-stats);
- gradcheck.png: the relative errors minigpt.gradcheck reports for every op's backward on random inputs,
  and for the deliberately wrong backwards of tests/test_gradcheck.py.
Needs matplotlib and playwright (the dev extra) and Chromium; the training needs Tiny Shakespeare (see minigpt train --help).
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FIGURES = HERE / "figures"
PROMPT = "ROMEO:\nBut soft, what light through yonder window breaks?"


def attention_figure(run_dir: Path, out: Path) -> None:
    import matplotlib.pyplot as plt

    from minigpt import checkpoint
    from minigpt.inspect import analyse

    model, tokenizer = checkpoint.load_model(checkpoint.resolve(run_dir, "best"))  # the reference ops
    a = analyse(model, tokenizer, PROMPT)
    att, labels = a["attention"], a["tokens"]  # (L, nh, T, T)
    L, nh = att.shape[:2]
    fig, axes = plt.subplots(L, nh, figsize=(2.6 * nh + 1, 2.6 * L))
    for l in range(L):
        for h in range(nh):
            ax = axes[l, h]
            image = ax.imshow(att[l, h], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {l}, head {h}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    for ax in axes[:, 0]:
        ax.set_ylabel("query position t", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("key position s", fontsize=7)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    fig.suptitle(f"attention probabilities on {PROMPT!r} ({len(labels)} characters); row t sums to 1 over s <= t",
                 fontsize=9)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def inspect_figures(run_dir: Path) -> None:
    """`minigpt inspect` of the run on PROMPT, and screenshots of its panels (inspect_*.png) in headless Chromium."""
    import shutil

    from playwright.sync_api import sync_playwright

    page_path = run_dir / "inspect.html"
    subprocess.run([sys.executable, "-m", "minigpt.cli", "inspect", "--out-dir", str(run_dir), "--prompt", PROMPT,
                    "--html", str(page_path)], check=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(page_path.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
        for section, index, name in (("attention", 0, "heads"), ("logit-lens", 0, "lens"), ("logit-lens", 1, "rank"),
                                     ("activations", 2, "entropy"), ("gradients", 0, "grad_ratio"),
                                     ("gradients", 2, "update_ratio")):
            figure = page.query_selector_all(f"#{section} .js-plotly-plot")[index]
            figure.scroll_into_view_if_needed()
            figure.screenshot(path=str(FIGURES / f"inspect_{name}.png"))
        browser.close()


def gradcheck_errors(seeds: int = 30) -> dict:
    """max relative error of each op's backward over random inputs, and of the wrong backwards."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_gradcheck import (attention_backward_ignoring_mask, embedding_backward_overwriting,
                                layernorm_backward_without_mean_term, layernorm_backward_without_variance_term)

    from minigpt.gradcheck import check_op
    from minigpt.ops import attention, cross_entropy, embedding, gelu, layernorm, linear, softmax

    right, wrong = {}, {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        B, T, C, nh = 2, 5, 6, 2
        x, w, b = rng.normal(size=(B, T, C)), rng.normal(size=C), rng.normal(size=C)
        attn = {"x": x, "w_attn": 0.3 * rng.normal(size=(C, 3 * C)), "b_attn": 0.3 * rng.normal(size=3 * C),
                "w_proj": rng.normal(size=(C, C)), "b_proj": rng.normal(size=C)}
        idx = rng.integers(0, 3, size=(B, T))
        emb = {"wte": rng.normal(size=(3, C)), "wpe": rng.normal(size=(T, C))}
        targets = rng.integers(0, 7, size=(B, T))
        cases = {
            "embedding": (lambda wte, wpe: embedding.forward(idx, wte, wpe), embedding.backward, emb,
                          embedding_backward_overwriting),
            "layernorm": (layernorm.forward, layernorm.backward, {"x": x, "w": w, "b": b}, None),
            "linear": (linear.forward, linear.backward, {"x": x, "w": rng.normal(size=(C, 4)), "b": rng.normal(size=4)}, None),
            "attention": (lambda **a: attention.forward(**a, n_head=nh), attention.backward, attn,
                          attention_backward_ignoring_mask),
            "gelu": (gelu.forward, gelu.backward, {"x": 2 * x}, None),
            "softmax": (softmax.forward, softmax.backward, {"x": 2 * x}, None),
            "cross_entropy": (lambda logits: cross_entropy.forward(logits, targets), cross_entropy.backward,
                              {"logits": rng.normal(size=(B, T, 7))}, None),
        }
        for name, (forward, backward, inputs, wrong_backward) in cases.items():
            right.setdefault(name, []).append(check_op(forward, backward, inputs, seed=seed).max_rel_error)
            if wrong_backward is not None:
                wrong.setdefault(name, []).append(check_op(forward, wrong_backward, inputs, seed=seed).max_rel_error)
        for label, wrong_backward in (("layernorm (no mean term)", layernorm_backward_without_mean_term),
                                      ("layernorm (no variance term)", layernorm_backward_without_variance_term)):
            wrong.setdefault(label, []).append(
                check_op(layernorm.forward, wrong_backward, {"x": x, "w": w, "b": b}, seed=seed).max_rel_error)
    return {"right": right, "wrong": wrong}


def gradcheck_figure(out: Path) -> None:
    import matplotlib.pyplot as plt

    errors = gradcheck_errors()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    rows = [(f"{name}", e, "tab:green") for name, e in errors["right"].items()]
    rows += [(f"{name}, wrong backward", e, "tab:red") for name, e in errors["wrong"].items()]
    for i, (name, e, color) in enumerate(rows):
        ax.scatter(np.maximum(e, 1e-18), np.full(len(e), i), s=12, color=color, alpha=0.6)
    ax.axvline(1e-6, color="black", ls="--", lw=1)
    ax.text(1.3e-6, len(rows) - 0.6, "tolerance 1e-6", fontsize=8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.set_xlabel("max relative error reported by check_op\n(float64, 30 random inputs per row)")
    ax.set_title("hand-written backwards against central differences", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", help="a finished `minigpt train` run (default: train the default recipe now)")
    args = parser.parse_args()
    FIGURES.mkdir(exist_ok=True)
    from minigpt.plot import plot_run

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run_dir) if args.run_dir else Path(tmp) / "run"
        if not args.run_dir:
            subprocess.run([sys.executable, "-m", "minigpt.cli", "train", "--out-dir", str(run_dir), "--log-stats"],
                           check=True)
        plot_run(run_dir, FIGURES / "loss.png", title="the default run: minigpt train (nanoGPT's Shakespeare recipe)")
        attention_figure(run_dir, FIGURES / "attention.png")
        inspect_figures(run_dir)
    gradcheck_figure(FIGURES / "gradcheck.png")
    print(f"wrote {', '.join(sorted(p.name for p in FIGURES.glob('*.png')))} to {FIGURES}")


if __name__ == "__main__":
    main()
