"""`minigpt inspect`: what each layer and head of a model does, as one self-contained HTML page.

    from minigpt.inspect import analyse, report
    panels = analyse(model, tokenizer, "ROMEO:")    # the arrays behind every panel, a dict (for notebooks)
    html = report(model, tokenizer, "ROMEO:")       # the page: plotly's JavaScript inline, no network needed

One forward and one backward of the prompt, in evaluation mode (no dropout), and everything is read from what
the ops saved for the backward (minigpt/model.py's caches): nothing is recomputed by another code path, except
the attention probabilities, which the fused kernels do not store: they come back from the queries and keys
and each row's log-sum-exp, a = exp(q k^T / sqrt(hs) - lse) (docs/kernels.md). The panels:

    attention     every layer x head, (T, T) probabilities, the prompt's tokens on both axes
    predictions   at each position the top-k next tokens, and the loss where the prompt is its own target
    logit lens    the residual stream after each block through ln_f and the tied head: each layer's guess
    activations   the residual stream's and GELU inputs' distributions, attention entropy, layer-norm gains
    gradients     per parameter, |grad| and |grad| / |weight| from the backward of the prompt; with a run's log
                  (`minigpt train --log-stats`), the update-to-weight ratios over training and the losses
    data flow     each op of the forward with its shapes and its share of the time, and its docs page

Plots are Plotly figures; the tables are plain HTML. Docs: docs/inspect.md.
"""

import html
import math
import time
from pathlib import Path

import numpy as np

from minigpt.ops import attention, cross_entropy, embedding, gelu, layernorm, linear, softmax

TOP_K = 5
MAX_TOKENS = 128  # the page shows at most this many positions: every head's (T, T) map goes into it
GELU_FLAT = -3.0  # below this GELU's output (> -0.004) and slope (< 0.012) are nearly 0: the unit passes nothing on
HISTOGRAM_BINS = 60
DOCS = Path(__file__).resolve().parent.parent / "docs"  # the docs of a source checkout, for the data flow's links


# --- the arrays ------------------------------------------------------------------------------------------------

def token_labels(tokenizer, ids) -> list:
    """Each token as readable text: a newline as ⏎, a space as ␣, other control characters as \\xNN, bytes that
    are part of a UTF-8 character as <xx>."""
    labels = []
    for i in ids:
        raw = tokenizer.decode_bytes([int(i)])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = "".join(f"<{b:02x}>" for b in raw)
        labels.append("".join("⏎" if c == "\n" else "␣" if c == " " else f"\\x{ord(c):02x}" if ord(c) < 32 else c
                              for c in text))
    return labels


def prompt_ids(model, tokenizer, prompt: str):
    """The prompt's token ids, cropped to the model's context and to MAX_TOKENS (with a notice), and the notices."""
    from minigpt.data.text import encode_text

    ids = encode_text(tokenizer, prompt)  # a character outside the vocabulary raises, naming it
    notices = []
    block_size = model.config.block_size
    keep = min(block_size, MAX_TOKENS)
    if len(ids) > keep:
        why = f"the model's context is {block_size}" if keep == block_size else f"the page shows at most {keep}"
        notices.append(f"the prompt has {len(ids)} tokens and {why}: inspecting its last {keep}")
        ids = ids[-keep:]
    if len(ids) < 2:
        raise ValueError(f"the prompt has {len(ids)} token(s); give at least 2, so that one predicts the next")
    return ids, notices


def default_prompt(model, tokenizer, task: str | None = None) -> str:
    """A prompt the model knows: for a model trained on a task, its first held-out problem with the answer (as long
    as the context holds: the last answer token is only ever a target);
    otherwise the model's own greedy continuation of a newline (or of its first token), half as long as the page shows."""
    from minigpt.data.chars import CharTokenizer
    from minigpt.data.tasks import TASKS
    from minigpt.data.text import encode_text

    if task is not None:
        t = TASKS[task]()
        question = t.problems["val"][:1]  # (1, question_length)
        sequence = np.concatenate([question, t.answer(question)], axis=1)[0]  # the last answer token is never an input
        return tokenizer.decode(sequence[:model.config.block_size].tolist())
    start = "\n" if not isinstance(tokenizer, CharTokenizer) or "\n" in tokenizer.chars else tokenizer.decode([0])
    idx = encode_text(tokenizer, start)[None, :]  # (1, T)
    n = min(model.config.block_size, MAX_TOKENS) // 2
    return tokenizer.decode(model.generate(idx, n, do_sample=False)[0].tolist())


def analyse(model, tokenizer, prompt: str, top_k: int = TOP_K, records=None) -> dict:
    """The arrays behind every panel of the report, for the prompt (cropped to the context), as a dict.
    records: a run's log (minigpt.plot.read_log), for the training panels; None leaves them out."""
    ids, notices = prompt_ids(model, tokenizer, prompt)
    cfg, p = model.config, model.params
    T, L, nh = len(ids), cfg.n_layer, cfg.n_head
    targets = np.append(ids[1:], cross_entropy.IGNORE_INDEX)  # (T,) the prompt is its own target; the last has none
    training = model.training
    model.eval()
    try:
        logits, loss = model.forward(ids[None], targets[None])  # (1, T, V)
        cache = model._cache
        grads = model.backward()
    finally:
        model.train(training)
    f64 = np.float64

    # attention probabilities, from the saved qkv and log-sum-exp (the fused kernels keep no (T, T) array), in float64
    att = np.stack([attention.probabilities(b.attn._replace(qkv=b.attn.qkv.astype(f64), lse=b.attn.lse.astype(f64)))[0]
                    for b in cache.blocks])  # (L, nh, T, T)
    entropy = -np.sum(np.where(att > 0, att * np.log(np.where(att > 0, att, 1.0)), 0.0), axis=-1).mean(axis=-1)  # (L, nh)

    # the residual stream: the embedding's output, then after each block (the input of the next one's ln_1, or ln_f's)
    residual = [b.ln_1.x[0] for b in cache.blocks] + [cache.ln_f.x[0]]  # L + 1 of (T, C)
    wte = p["transformer.wte.weight"]
    probs, _ = softmax.forward(logits[0].astype(f64))  # (T, V)
    chosen = np.argmax(probs, axis=-1)  # (T,) the model's own next-token choice
    lens_top, lens_prob, lens_rank = [], [], []
    for r in residual:
        x, _ = layernorm.forward(r[None], p["transformer.ln_f.weight"], p.get("transformer.ln_f.bias"))  # (1, T, C)
        lens_logits = (x[0] @ wte.T).astype(f64)  # (T, V)
        lens_p, _ = softmax.forward(lens_logits)  # (T, V)
        lens_top.append(np.argmax(lens_p, axis=-1))
        lens_prob.append(lens_p.max(axis=-1))
        chosen_logit = lens_logits[np.arange(T), chosen]  # (T,)
        lens_rank.append(np.sum(lens_logits > chosen_logit[:, None], axis=-1))  # 0: the layer already picks it
    lens_logits_last = lens_logits

    top = np.argsort(-probs, axis=-1)[:, :top_k]  # (T, k)
    position_loss = -np.log(np.maximum(probs[np.arange(T - 1), ids[1:]], 1e-300))  # (T - 1,)

    gelu_in = [b.gelu.x[0] for b in cache.blocks]  # L of (T, 4C): c_fc's output
    flat = np.array([np.mean(g < GELU_FLAT) for g in gelu_in])  # (L,) fraction of inputs in GELU's flat region
    dead = np.array([int(np.sum(np.all(g < GELU_FLAT, axis=0))) for g in gelu_in])  # (L,) units flat at every position

    names = list(p)
    grad_norm = np.array([np.linalg.norm(grads[n].astype(f64)) for n in names])
    weight_norm = np.array([np.linalg.norm(p[n].astype(f64)) for n in names])

    out = {
        "prompt": tokenizer.decode([int(i) for i in ids]), "ids": ids, "tokens": token_labels(tokenizer, ids),
        "notices": notices, "n_layer": L, "n_head": nh,
        "attention": att, "attention_entropy": entropy,
        "logits": logits[0], "probs": probs, "top_ids": top, "top_tokens": [token_labels(tokenizer, row) for row in top],
        "top_probs": np.take_along_axis(probs, top, axis=-1), "position_loss": position_loss, "loss": loss,
        "lens_logits_last": lens_logits_last, "lens_top_tokens": [token_labels(tokenizer, t) for t in lens_top],
        "lens_top_ids": np.array(lens_top), "lens_top_probs": np.array(lens_prob), "lens_rank": np.array(lens_rank),
        "chosen_tokens": token_labels(tokenizer, chosen),
        "residual_histograms": [histogram(r) for r in residual],
        "residual_std": np.array([float(np.std(r)) for r in residual]),
        "gelu_histograms": [histogram(g) for g in gelu_in], "gelu_flat_fraction": flat, "gelu_dead_units": dead,
        "layernorm_gains": {n: p[n].astype(f64) for n in names if ".ln_" in n and n.endswith(".weight")},
        "parameter_names": names, "grad_norms": grad_norm, "weight_norms": weight_norm,
        "grad_to_weight": grad_norm / np.where(weight_norm > 0, weight_norm, 1.0),
        "grads": grads,
        "data_flow": data_flow(model, cache, ids),
    }
    if records is not None:
        out["training"] = training_curves(records)
    return out


def histogram(values, bins: int = HISTOGRAM_BINS) -> dict:
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64).ravel(), bins=bins)
    return {"centers": (edges[:-1] + edges[1:]) / 2, "counts": counts}


def training_curves(records: list) -> dict:
    """Losses over the run, and each parameter's update-to-weight ratio at the evaluations of --log-stats."""
    steps = [r for r in records if isinstance(r.get("loss"), (int, float))]
    evals = [r for r in records if "val_loss" in r]
    stats = [r for r in records if isinstance(r.get("stats"), dict)]
    ratios = {}
    for r in stats:
        for name, value in r["stats"].get("update_ratio", {}).items():
            ratios.setdefault(name, []).append((r["iter"], value))
    return {"iters": [r["iter"] for r in steps], "loss": [r["loss"] for r in steps],
            "eval_iters": [r["iter"] for r in evals], "train_loss": [r.get("train_loss") for r in evals],
            "val_loss": [r["val_loss"] for r in evals], "update_ratio": ratios}


def data_flow(model, cache, ids) -> list:
    """Each op of one forward, run again on the input it saved (minigpt/model.py), with its shapes and its time:
    rows of (op, input shapes, output shape, seconds, docs page)."""
    p, backend, n_head = model.params, model.backend, model.config.n_head
    rows = []

    def timed(name, doc, inputs, fn):
        best, out = math.inf, None
        for _ in range(3):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
        out = out[0] if isinstance(out, tuple) else out
        rows.append((name, [tuple(a.shape) for a in inputs], tuple(out.shape), best, doc))

    idx = ids[None]  # (1, T)
    wte, wpe = p["transformer.wte.weight"], p["transformer.wpe.weight"]
    timed("embedding", "ops/embedding.md", [idx, wte, wpe], lambda: embedding.forward(idx, wte, wpe, 0, backend))
    for l, c in enumerate(cache.blocks):
        h = f"transformer.h.{l}."
        timed(f"h.{l}.ln_1", "ops/layernorm.md", [c.ln_1.x],
              lambda: layernorm.forward(c.ln_1.x, p[h + "ln_1.weight"], p.get(h + "ln_1.bias"), backend=backend))
        a = c.attn.qkv_cache.x  # (1, T, C) ln_1's output
        timed(f"h.{l}.attn", "ops/attention.md", [a],
              lambda: attention.forward(a, p[h + "attn.c_attn.weight"], p.get(h + "attn.c_attn.bias"),
                                        p[h + "attn.c_proj.weight"], p.get(h + "attn.c_proj.bias"), n_head,
                                        backend=backend))
        timed(f"h.{l}.ln_2", "ops/layernorm.md", [c.ln_2.x],
              lambda: layernorm.forward(c.ln_2.x, p[h + "ln_2.weight"], p.get(h + "ln_2.bias"), backend=backend))
        timed(f"h.{l}.mlp.c_fc", "ops/linear.md", [c.c_fc.x],
              lambda: linear.forward(c.c_fc.x, p[h + "mlp.c_fc.weight"], p.get(h + "mlp.c_fc.bias"), backend))
        timed(f"h.{l}.mlp.gelu", "ops/gelu.md", [c.gelu.x], lambda: gelu.forward(c.gelu.x, backend))
        timed(f"h.{l}.mlp.c_proj", "ops/linear.md", [c.c_proj.x],
              lambda: linear.forward(c.c_proj.x, p[h + "mlp.c_proj.weight"], p.get(h + "mlp.c_proj.bias"), backend))
    timed("ln_f", "ops/layernorm.md", [cache.ln_f.x],
          lambda: layernorm.forward(cache.ln_f.x, p["transformer.ln_f.weight"], p.get("transformer.ln_f.bias"),
                                    backend=backend))
    timed("lm_head (wte^T)", "ops/linear.md", [cache.lm_head.x], lambda: linear.forward(cache.lm_head.x, wte.T, backend=backend))
    return rows


# --- the page --------------------------------------------------------------------------------------------------

def plotly():
    try:
        import plotly.graph_objects as go
        from plotly.offline import get_plotlyjs
        from plotly.subplots import make_subplots
    except ImportError:
        raise ImportError("minigpt inspect draws with plotly, which is not installed: pip install plotly") from None
    return go, make_subplots, get_plotlyjs


def report(model, tokenizer, prompt: str, top_k: int = TOP_K, records=None, title: str = "minigpt inspect",
           say=None) -> str:
    """The whole page, as a string of HTML: self-contained (plotly's JavaScript inline), opens from disk offline.
    say: called with each notice (a cropped prompt), which the page also shows."""
    go, make_subplots, get_plotlyjs = plotly()
    a = analyse(model, tokenizer, prompt, top_k, records)
    for notice in a["notices"]:
        if say is not None:
            say(notice)
    figures = [attention_figures(go, make_subplots, a), prediction_figure(go, a), lens_figures(go, a),
               activation_figures(go, make_subplots, a), gradient_figures(go, a)]
    sections = [
        ("attention", "Attention",
         "Each layer and head: row t is the query at position t, its colours the weights it gives to the positions "
         "s &le; t (each row sums to 1). Hover for the exact value; pick a head below to see it large.",
         figures[0]),
        ("predictions", "Predictions",
         f"At each position, the model's {top_k} most likely next tokens, and the loss where the next token of the "
         f"prompt is known: mean {a['loss']:.4f} nats over {len(a['ids']) - 1} positions.",
         [prediction_table(a)] + figures[1]),
        ("logit-lens", "Logit lens",
         "The residual stream after each block, through ln_f and the tied head: what each layer would predict. "
         "Top: each layer's most likely token and its probability. Bottom: the rank, at each layer, of the token "
         "the whole model finally picks (0: that layer already picks it).",
         figures[2]),
        ("activations", "Activations",
         "Distributions of the residual stream after each block and of the GELU inputs; attention entropy per "
         "head (0: attends to one position; ln T: uniform); the layer-norm gains. " + activation_flags(a),
         figures[3]),
        ("gradients", "Gradients and training",
         "From one backward of the prompt's loss: each parameter's gradient norm relative to its weight's. "
         + ("With the run's log: the losses, and the update-to-weight ratio of each weight at each evaluation "
            "(minigpt train --log-stats); about 1e-3 a step is healthy." if records is not None else ""),
         figures[4]),
        ("data-flow", "Data flow",
         "Each op of one forward of the prompt, run again on the input it saved, with its shapes and its share of "
         "the time (best of 3).",
         [data_flow_table(a)]),
    ]
    notices = "".join(f"<p class='notice'>{html.escape(n)}</p>" for n in a["notices"])
    nav = " · ".join(f"<a href='#{key}'>{name}</a>" for key, name, _, _ in sections)
    body = []
    for key, name, text, parts in sections:
        rendered = [part if isinstance(part, str) else part.to_html(full_html=False, include_plotlyjs=False,
                                                                    config={"displaylogo": False})
                    for part in parts]
        body.append(f"<section id='{key}' class='panel'><h2>{name}</h2><p>{text}</p>{''.join(rendered)}</section>")
    prompt_html = html.escape(" ".join(a["tokens"]))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:1em;color:#222}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}
.notice{{background:#fff3cd;padding:.5em}}code,.tok{{font-family:monospace}}section{{margin-bottom:2em}}</style>
<script>{get_plotlyjs()}</script></head>
<body><h1>{html.escape(title)}</h1><p>Prompt ({len(a['ids'])} tokens): <span class="tok">{prompt_html}</span></p>
{notices}<p>{nav}</p>{''.join(body)}</body></html>
"""


def attention_figures(go, make_subplots, a) -> list:
    att, tokens, L, nh = a["attention"], a["tokens"], a["n_layer"], a["n_head"]
    T = len(tokens)
    ticks = dict(tickmode="array", tickvals=list(range(T)), ticktext=tokens, tickfont=dict(size=8))
    hover = [[f"query {t} {tokens[t]!r} → key {s} {tokens[s]!r}" for s in range(T)] for t in range(T)]
    grid = make_subplots(rows=L, cols=nh, subplot_titles=[f"layer {l} head {h}" for l in range(L) for h in range(nh)],
                         horizontal_spacing=0.02, vertical_spacing=0.06 / max(1, L - 1) if L > 1 else 0.0)
    for l in range(L):  # (the tokens go into the enlarged head's hover only: T x T labels per head would swell the page)
        for h in range(nh):
            grid.add_trace(go.Heatmap(z=att[l, h].astype(np.float32), coloraxis="coloraxis",
                                      hovertemplate=f"layer {l} head {h}: query %{{y}} → key %{{x}}: %{{z:.4f}}"
                                                    "<extra></extra>"), row=l + 1, col=h + 1)
    grid.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0, cmax=1, colorbar=dict(title="weight")),
                       height=max(250, 230 * L), margin=dict(t=40, l=10, r=10, b=10))
    grid.update_yaxes(autorange="reversed", showticklabels=False)
    grid.update_xaxes(showticklabels=False)
    big = go.Figure(go.Heatmap(z=att[0, 0], text=hover, hovertemplate="%{text}: %{z:.4f}<extra></extra>",
                               colorscale="Viridis", zmin=0, zmax=1, colorbar=dict(title="weight")))
    buttons = [dict(label=f"layer {l} head {h}", method="restyle", args=[{"z": [att[l, h].astype(np.float32)]}])
               for l in range(L) for h in range(nh)]
    big.update_layout(title="one head, enlarged", height=620, width=700,
                      updatemenus=[dict(buttons=buttons, direction="down", x=1.0, y=1.15)],
                      xaxis=dict(title="key position s", **ticks), yaxis=dict(title="query position t", autorange="reversed", **ticks))
    return [grid, big]


def prediction_table(a) -> str:
    rows = []
    tokens, ids = a["tokens"], a["ids"]
    for t in range(len(ids)):
        actual = tokens[t + 1] if t + 1 < len(ids) else ""
        loss = f"{a['position_loss'][t]:.3f}" if t + 1 < len(ids) else ""
        tops = " ".join(f"<span class='tok'>{html.escape(tok)}</span>&nbsp;{pr:.2f}"
                        for tok, pr in zip(a["top_tokens"][t], a["top_probs"][t]))
        rows.append(f"<tr><td>{t}</td><td class='tok'>{html.escape(tokens[t])}</td><td class='tok'>{html.escape(actual)}"
                    f"</td><td>{loss}</td><td>{tops}</td></tr>")
    return ("<table><tr><th>position</th><th>token</th><th>next in the prompt</th><th>its loss</th>"
            "<th>the model's top next tokens (probability)</th></tr>" + "".join(rows) + "</table>")


def prediction_figure(go, a) -> list:
    tokens = a["tokens"]
    fig = go.Figure(go.Bar(x=list(range(len(tokens) - 1)), y=a["position_loss"],
                           text=[f"{tokens[t]!r} → {tokens[t + 1]!r}" for t in range(len(tokens) - 1)],
                           hovertemplate="position %{x}: %{text}<br>loss %{y:.4f}<extra></extra>"))
    fig.update_layout(title="loss at each position (nats)", height=300, xaxis_title="position", yaxis_title="loss")
    return [fig]


MARGIN = dict(t=50, b=50, l=100, r=20)  # pixels around a heat map's cells


def rows_height(rows: int) -> int:
    """The height of a heat map of `rows` rows: 45 pixels a row inside the margins."""
    return MARGIN["t"] + MARGIN["b"] + 45 * rows


def lens_figures(go, a) -> list:
    L = a["n_layer"]
    layers = ["embedding"] + [f"after block {l}" for l in range(L)]
    T = len(a["tokens"])
    texts = a["lens_top_tokens"]
    top = go.Figure(go.Heatmap(z=a["lens_top_probs"], text=texts, texttemplate="%{text}", colorscale="Blues",
                               zmin=0, zmax=1, colorbar=dict(title="probability"),
                               hovertemplate="%{y}, position %{x}: %{text} (%{z:.3f})<extra></extra>",
                               y=layers, x=list(range(T))))
    top.update_layout(title="each layer's most likely next token", height=rows_height(L + 1), margin=MARGIN,
                      xaxis=dict(title="position", tickmode="array", tickvals=list(range(T)), ticktext=a["tokens"]))
    rank = go.Figure(go.Heatmap(z=np.log10(1 + a["lens_rank"]), customdata=a["lens_rank"], y=layers, x=list(range(T)),
                                text=[a["chosen_tokens"]] * (L + 1), colorscale="Reds",
                                colorbar=dict(title="log10(1 + rank)"),
                                hovertemplate="%{y}, position %{x}: the final choice %{text} has rank %{customdata}"
                                              "<extra></extra>"))
    rank.update_layout(title="rank of the model's final choice at each layer", height=rows_height(L + 1), margin=MARGIN,
                       xaxis=dict(title="position", tickmode="array", tickvals=list(range(T)), ticktext=a["tokens"]))
    return [top, rank]


def activation_flags(a) -> str:
    flags = []
    for l, (flat, dead) in enumerate(zip(a["gelu_flat_fraction"], a["gelu_dead_units"])):
        if dead:
            flags.append(f"layer {l}: {dead} MLP units are in GELU's flat region (input &lt; {GELU_FLAT:g}) at every "
                         f"position: dead for this prompt")
        if flat > 0.5:
            flags.append(f"layer {l}: {flat:.0%} of the GELU inputs are in its flat region")
    listed = "".join(f"<li>{f}</li>" for f in flags) or "<li>none: no dead units, no layer mostly in GELU's flat region</li>"
    return f"Flags:<ul class='flags'>{listed}</ul>"


def activation_figures(go, make_subplots, a) -> list:
    L = a["n_layer"]
    residual = go.Figure()
    for l, hist in enumerate(a["residual_histograms"]):
        residual.add_trace(go.Scatter(x=hist["centers"], y=hist["counts"], mode="lines",
                                      name="embedding" if l == 0 else f"after block {l - 1}"))
    residual.update_layout(title="residual stream values", height=320, xaxis_title="value", yaxis_title="count")
    gelu_fig = go.Figure()
    for l, hist in enumerate(a["gelu_histograms"]):
        gelu_fig.add_trace(go.Scatter(x=hist["centers"], y=hist["counts"], mode="lines",
                                      name=f"layer {l} ({a['gelu_flat_fraction'][l]:.0%} flat)"))
    gelu_fig.add_vline(x=GELU_FLAT, line_dash="dash", annotation_text="flat below")
    gelu_fig.update_layout(title="GELU inputs (c_fc's output)", height=320, xaxis_title="value", yaxis_title="count")
    entropy = go.Figure(go.Heatmap(z=a["attention_entropy"], colorscale="Cividis", colorbar=dict(title="nats"),
                                   zmin=0, zmax=math.log(len(a["tokens"])),  # one position .. uniform over T
                                   x=[f"head {h}" for h in range(a["n_head"])], y=[f"layer {l}" for l in range(L)],
                                   hovertemplate="%{y} %{x}: entropy %{z:.3f} nats<extra></extra>"))
    entropy.update_layout(title="attention entropy, mean over query positions", height=rows_height(L), margin=MARGIN)
    gains = go.Figure()
    for name, w in a["layernorm_gains"].items():
        gains.add_trace(go.Box(y=w, name=name.replace("transformer.", "").replace(".weight", ""), boxpoints=False))
    gains.update_layout(title="layer-norm gains (w)", height=320, showlegend=False)
    return [residual, gelu_fig, entropy, gains]


def gradient_figures(go, a) -> list:
    names = [n.replace("transformer.", "") for n in a["parameter_names"]]
    ratio = go.Figure(go.Bar(x=names, y=a["grad_to_weight"], customdata=np.stack([a["grad_norms"], a["weight_norms"]], -1),
                             hovertemplate="%{x}<br>|grad| / |w| %{y:.3g}<br>|grad| %{customdata[0]:.3g}, "
                                           "|w| %{customdata[1]:.3g}<extra></extra>"))
    ratio.update_layout(title="gradient-to-weight ratio, per parameter", yaxis_type="log", height=380)
    figures = [ratio]
    training = a.get("training")
    if training is not None:
        losses = go.Figure()
        losses.add_trace(go.Scatter(x=training["iters"], y=training["loss"], mode="lines", name="training batch",
                                    opacity=0.5))
        losses.add_trace(go.Scatter(x=training["eval_iters"], y=training["train_loss"], mode="lines+markers",
                                    name="train (evaluation)"))
        losses.add_trace(go.Scatter(x=training["eval_iters"], y=training["val_loss"], mode="lines+markers",
                                    name="validation"))
        losses.update_layout(title="loss", height=320, xaxis_title="iteration", yaxis_title="nats per token")
        figures.append(losses)
        updates = go.Figure()
        for name, points in training["update_ratio"].items():
            if name.endswith(".weight") and ".ln_" not in name:
                updates.add_trace(go.Scatter(x=[i for i, _ in points], y=[v for _, v in points], mode="lines+markers",
                                             name=name.replace("transformer.", "")))
        updates.add_hline(y=1e-3, line_dash="dash", annotation_text="1e-3")
        updates.update_layout(title="update-to-weight ratio of each weight (--log-stats)" if training["update_ratio"]
                              else "update-to-weight ratio: train with --log-stats to record it",
                              yaxis_type="log", height=380, xaxis_title="iteration")
        figures.append(updates)
    return figures


def data_flow_table(a) -> str:
    rows = a["data_flow"]
    total = sum(r[3] for r in rows) or 1.0
    lines = []
    for name, inputs, output, seconds, doc in rows:
        page = DOCS / doc
        link = f"<a href='{page.as_uri()}'>{doc}</a>" if page.is_file() else f"docs/{doc}"
        shapes = ", ".join(str(s) for s in inputs)
        lines.append(f"<tr><td><code>{name}</code></td><td>{shapes}</td><td>{output}</td>"
                     f"<td>{seconds * 1e6:.0f}</td><td>{seconds / total:.1%}</td><td>{link}</td></tr>")
    return ("<table><tr><th>op</th><th>input shapes</th><th>output shape</th><th>µs</th><th>share</th><th>docs</th></tr>"
            + "".join(lines) + "</table>")


def write(html_text: str, path) -> Path:
    """Write the page atomically: a reader sees the old file or the whole new one."""
    import os

    path = Path(path)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        tmp.write_text(html_text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
