"""Regenerate the figures of the docs (docs/figures/*.png) from real runs of minigpt:

    python docs/make_figures.py                  # trains the default recipe first (about 4 minutes)
    python docs/make_figures.py --run-dir out    # or uses the run `minigpt train` left in out/

- loss.png: the training and validation loss curves of the run (minigpt.plot.plot_run);
- attention.png: the attention probabilities of every head of the run's best model on a line of Shakespeare;
- inspect_*.png: panels of `minigpt inspect`'s page for the run on the same line, in headless Chromium
  (docs/inspect.md; the run should be trained with --log-stats);
- data_flow.svg: the forward and backward of GPT.forward and GPT.backward, with the shapes of a real forward's
  caches (no run needed: python docs/make_figures.py --no-run writes only this one);
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

    from minigpt import load
    from minigpt.inspect import analyse

    best = load.read(run_dir, "best")
    model, tokenizer = load.build_model(best), best.tokenizer  # the reference ops
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
        attn = {"q": 0.5 * rng.normal(size=(B, T, nh, C // nh)), "k": 0.5 * rng.normal(size=(B, T, nh, C // nh)),
                "v": rng.normal(size=(B, T, nh, C // nh))}
        idx = rng.integers(0, 3, size=(B, T))
        emb = {"wte": rng.normal(size=(3, C)), "wpe": rng.normal(size=(T, C))}
        targets = rng.integers(0, 7, size=(B, T))
        cases = {
            "embedding": (lambda wte, wpe: embedding.forward(idx, wte, wpe), embedding.backward, emb,
                          embedding_backward_overwriting),
            "layernorm": (layernorm.forward, layernorm.backward, {"x": x, "w": w, "b": b}, None),
            "linear": (linear.forward, linear.backward, {"x": x, "w": rng.normal(size=(C, 4)), "b": rng.normal(size=4)}, None),
            "attention": (attention.forward, attention.backward, attn, attention_backward_ignoring_mask),
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


# --- the forward and backward as data flow (SVG, generated from the code: no run needed) -------------------------

# sizes that are all different, so that each dimension of an array names its symbol
SIZES = {"B": 2, "T": 3, "C": 20, "nh": 4, "V": 7}
SYMBOLS = {2: "B", 3: "T", 20: "C", 4: "nh", 5: "hs", 7: "V", 60: "3C", 80: "4C"}


def symbolic(shape) -> str:
    return "scalar" if shape == () else "(" + ", ".join(SYMBOLS[n] for n in shape) + ")"


def data_flow_rows() -> list:
    """(forward line, the shape it makes, backward line, parameter gradients) for each step of GPT.forward and
    GPT.backward (minigpt/model.py), the shapes read from the caches of a real forward of a small model."""
    from minigpt import GPT, GPTConfig
    from minigpt.ops import attention

    B, T, C, nh, V = (SIZES[k] for k in ("B", "T", "C", "nh", "V"))
    model = GPT(GPTConfig(vocab_size=V, block_size=11, n_layer=1, n_head=nh, n_embd=C), dtype="float64")
    idx = np.random.default_rng(0).integers(0, V, size=(B, T))
    logits, _ = model.forward(idx, idx)
    cache = model.cache
    block = cache.blocks[0]
    q, k = attention.swap_heads(block.attention.q), attention.repeat_kv(block.attention.k, nh)  # (B, nh, T, hs) x2
    preatt = attention.scores(q, k)  # (B, nh, T, T)
    shape = {"idx": idx.shape, "x": block.ln_1.x.shape, "a": block.c_attn.x.shape,
             "qkv": (*block.c_attn.x.shape[:2], block.c_attn.w.shape[1]), "q": q.shape, "att": preatt.shape,
             "y": block.attn_c_proj.x.shape,
             "h": block.gelu.x.shape, "g": block.c_proj.x.shape, "logits": logits.shape, "loss": ()}
    s = {k: symbolic(v) for k, v in shape.items()}
    return [
        ("idx", s["idx"], "", ""),
        ("x = wte[idx] + wpe[start + t]", s["x"], "dwte += scatter-add of dx by idx", "dwpe (block_size, C)"),
        ("x = dropout(x)", s["x"], "dx = dx * mask", ""),
        ("a = ln_1(x)", s["a"], "dx += ln_1 backward(da)", "d ln_1.weight, .bias (C)"),
        ("qkv = a @ c_attn.weight + bias", s["qkv"], "da = dqkv @ c_attn.weightᵀ", "d c_attn.weight (C, 3C)"),
        ("q, k, v split into heads", s["q"], "dqkv = dq, dk, dv merged", ""),
        ("preatt = q kᵀ / √hs, masked", s["att"], "dq = dpreatt k / √hs,  dk = dpreattᵀ q / √hs", ""),
        ("att = softmax(preatt)", s["att"], "dpreatt = att * (datt − rowsum(datt * att))", ""),
        ("y = att v, heads merged", s["y"], "datt = dy vᵀ,  dv = attᵀ dy", ""),
        ("a = y @ attn.c_proj.weight + bias", s["x"], "dy = da @ c_proj.weightᵀ", "d attn.c_proj.weight (C, C)"),
        ("x = x + dropout(a)", s["x"], "da = dx  (the residual copies dx)", ""),
        ("m = ln_2(x)", s["x"], "dx += ln_2 backward(dm)", "d ln_2.weight, .bias (C)"),
        ("h = m @ c_fc.weight + bias", s["h"], "dm = dh @ c_fc.weightᵀ", "d c_fc.weight (C, 4C)"),
        ("g = gelu(h)", s["g"], "dh = dg * gelu′(h)", ""),
        ("m = g @ mlp.c_proj.weight + bias", s["x"], "dg = dm @ mlp.c_proj.weightᵀ", "d mlp.c_proj.weight (4C, C)"),
        ("x = x + dropout(m)", s["x"], "dm = dx", ""),
        ("x = ln_f(x)", s["x"], "dx = ln_f backward(dx)", "d ln_f.weight, .bias (C)"),
        ("logits = x @ wteᵀ", s["logits"], "dx = dlogits @ wte", "dwte = dlogitsᵀ x (V, C)"),
        ("loss = cross_entropy(logits, targets)", s["loss"], "dlogits = (softmax(logits) − onehot) / N", "dloss = 1"),
    ]


def data_flow_svg(rows) -> str:
    """The two columns as an SVG: forward boxes top down, backward boxes bottom up, the block's rows framed."""
    from html import escape

    W, col, gap, row_h, box_h, top, frame = 780, 372, 16, 40, 32, 44, 20
    first_block, last_block = 3, 15  # rows of the block (ln_1 .. the second residual)

    def row_y(i):  # the block's frame takes `frame` pixels above its first row and below its last
        return top + row_h * i + frame * (i >= first_block) + frame * (i > last_block)

    H = row_y(len(rows) - 1) + box_h + 8
    mono = "font-family='DejaVu Sans Mono, Menlo, Consolas, monospace'"
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {W} {H}' width='{W}' height='{H}' {mono} font-size='12'>",
           "<defs><marker id='head' viewBox='0 0 8 8' refX='4' refY='4' markerWidth='7' markerHeight='7' orient='auto'>"
           "<path d='M0,0 L8,4 L0,8 z' fill='#555'/></marker></defs>",
           "<rect width='100%' height='100%' fill='white'/>",
           f"<text x='{4 + col / 2}' y='18' text-anchor='middle' font-weight='bold' font-size='13'>FORWARD (top down)</text>",
           f"<text x='{4 + col + gap + col / 2}' y='18' text-anchor='middle' font-weight='bold' font-size='13'>"
           "BACKWARD (bottom up)</text>"]
    y0, y1 = row_y(first_block) - frame + 2, row_y(last_block) + box_h + frame - 6
    out.append(f"<rect x='1' y='{y0}' width='{W - 2}' height='{y1 - y0}' rx='6' fill='#fafafa' stroke='#888' "
               "stroke-dasharray='5,3'/>")
    for x, layers in ((10, "0 … L−1"), (4 + col + gap + 6, "L−1 … 0")):  # left of each column's arrow
        out.append(f"<text x='{x}' y='{y0 + 13}' fill='#444' font-size='11'>block ℓ = {layers}</text>")
    for i, (fwd, shape, bwd, params) in enumerate(rows):
        y = row_y(i)
        for x, fill, main, side in ((4, "#e8f0fb", fwd, shape), (4 + col + gap, "#fbece8", bwd, params)):
            if not main:
                continue
            out.append(f"<rect x='{x}' y='{y}' width='{col}' height='{box_h}' rx='4' fill='{fill}' stroke='#9aa'/>")
            out.append(f"<text x='{x + 8}' y='{y + 14}'>{escape(main)}</text>")
            if side:
                out.append(f"<text x='{x + col - 8}' y='{y + 27}' text-anchor='end' fill='#555' font-size='11'>{escape(side)}</text>")
        if i + 1 < len(rows):  # forward: down to the next row; backward: up from the next row
            xf, xb, next_y = 4 + col / 2, 4 + col + gap + col / 2, row_y(i + 1)
            out.append(f"<line x1='{xf}' y1='{y + box_h}' x2='{xf}' y2='{next_y - 1}' stroke='#555' marker-end='url(#head)'/>")
            if rows[i][2]:
                out.append(f"<line x1='{xb}' y1='{next_y}' x2='{xb}' y2='{y + box_h + 1}' stroke='#555' marker-end='url(#head)'/>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def data_flow_figure(out: Path) -> None:
    out.write_text(data_flow_svg(data_flow_rows()))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", help="a finished `minigpt train` run (default: train the default recipe now)")
    parser.add_argument("--no-run", action="store_true", help="only the figures that need no training run")
    args = parser.parse_args()
    FIGURES.mkdir(exist_ok=True)
    data_flow_figure(FIGURES / "data_flow.svg")
    if args.no_run:
        return
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
