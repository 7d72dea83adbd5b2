"""The page of `minigpt inspect`: the arrays of minigpt/inspect/arrays.py drawn as Plotly figures and plain HTML
tables, in one self-contained HTML file (plotly's JavaScript inline: it opens from disk, offline)."""

import html
import math
from pathlib import Path

import numpy as np

from minigpt.files import atomic_write
from minigpt.inspect.arrays import TOP_K, analyse

DOCS = Path(__file__).resolve().parents[2] / "docs"  # the docs of a source checkout, for the data flow's links


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
         "s &le; t (each row sums to 1). Hover for the exact value; pick a head below to see it large."
         + grouped_note(a),
         figures[0]),
        ("predictions", "Predictions",
         f"At each position, the model's {top_k} most likely next tokens, and the loss where the next token of the "
         f"prompt is known: mean {a['loss']:.4f} nats over {len(a['ids']) - 1} positions.",
         [prediction_table(a)] + figures[1]),
        ("logit-lens", "Logit lens",
         f"The residual stream after each block, through {a['final_norm']} and {a['head']}: what each layer would predict. "
         "Top: each layer's most likely token and its probability. Bottom: the rank, at each layer, of the token "
         "the whole model finally picks (0: that layer already picks it).",
         figures[2]),
        ("activations", "Activations",
         f"Distributions of the residual stream after each block and of the {a['activation']} inputs; attention "
         "entropy per head (0: attends to one position; ln T: uniform); the norms' gains. " + activation_flags(a),
         figures[3]),
        ("gradients", "Gradients and training",
         "From one backward of the prompt's loss: each parameter's gradient norm relative to its weight's. "
         + ("With the run's log: the losses, and the update-to-weight ratio of each weight at each evaluation "
            "(minigpt train --log-stats); about 1e-3 a step is healthy." if records is not None else ""),
         figures[4]),
        ("data-flow", "Data flow",
         "Each kernel of one forward of the prompt, in the order the model calls it, with its shapes and its share "
         "of the time (the best of 3 forwards).",
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


def grouped_note(a) -> str:
    nh, nkv = a["n_head"], a["n_kv_head"]
    if nkv == nh:
        return ""
    return (f" Grouped-query attention: {nh} query heads share {nkv} key/value head{'s' if nkv > 1 else ''}, "
            f"query head h reading key/value head h // {nh // nkv} (the <i>kv</i> in each title).")


def head_label(a, l: int, h: int) -> str:
    """layer l head h, and its key/value head when heads share them."""
    group = "" if a["n_kv_head"] == a["n_head"] else f" kv {h // (a['n_head'] // a['n_kv_head'])}"
    return f"layer {l} head {h}{group}"


def attention_figures(go, make_subplots, a) -> list:
    att, tokens, L, nh = a["attention"], a["tokens"], a["n_layer"], a["n_head"]
    T = len(tokens)
    ticks = dict(tickmode="array", tickvals=list(range(T)), ticktext=tokens, tickfont=dict(size=8))
    hover = [[f"query {t} {tokens[t]!r} → key {s} {tokens[s]!r}" for s in range(T)] for t in range(T)]
    grid = make_subplots(rows=L, cols=nh, subplot_titles=[head_label(a, l, h) for l in range(L) for h in range(nh)],
                         horizontal_spacing=0.02, vertical_spacing=0.06 / max(1, L - 1) if L > 1 else 0.0)
    for l in range(L):  # (the tokens go into the enlarged head's hover only: T x T labels per head would swell the page)
        for h in range(nh):
            grid.add_trace(go.Heatmap(z=att[l, h].astype(np.float32), coloraxis="coloraxis",
                                      hovertemplate=f"{head_label(a, l, h)}: query %{{y}} → key %{{x}}: %{{z:.4f}}"
                                                    "<extra></extra>"), row=l + 1, col=h + 1)
    grid.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0, cmax=1, colorbar=dict(title="weight")),
                       height=max(250, 230 * L), margin=dict(t=40, l=10, r=10, b=10))
    grid.update_yaxes(autorange="reversed", showticklabels=False)
    grid.update_xaxes(showticklabels=False)
    big = go.Figure(go.Heatmap(z=att[0, 0], text=hover, hovertemplate="%{text}: %{z:.4f}<extra></extra>",
                               colorscale="Viridis", zmin=0, zmax=1, colorbar=dict(title="weight")))
    buttons = [dict(label=head_label(a, l, h), method="restyle", args=[{"z": [att[l, h].astype(np.float32)]}])
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
    flags, act = [], a["activation"]
    for l, (flat, dead) in enumerate(zip(a["gate_flat_fraction"], a["gate_dead_units"])):
        if dead:
            flags.append(f"layer {l}: {dead} MLP units are in {act}'s flat region (input &lt; {a['flat_below']:g}) at "
                         f"every position: dead for this prompt")
        if flat > 0.5:
            flags.append(f"layer {l}: {flat:.0%} of the {act} inputs are in its flat region")
    listed = "".join(f"<li>{f}</li>" for f in flags) or f"<li>none: no dead units, no layer mostly in {act}'s flat region</li>"
    return f"Flags:<ul class='flags'>{listed}</ul>"


def activation_figures(go, make_subplots, a) -> list:
    L = a["n_layer"]
    residual = go.Figure()
    for l, hist in enumerate(a["residual_histograms"]):
        residual.add_trace(go.Scatter(x=hist["centers"], y=hist["counts"], mode="lines",
                                      name="embedding" if l == 0 else f"after block {l - 1}"))
    residual.update_layout(title="residual stream values", height=320, xaxis_title="value", yaxis_title="count")
    gate_fig = go.Figure()
    for l, hist in enumerate(a["gate_histograms"]):
        gate_fig.add_trace(go.Scatter(x=hist["centers"], y=hist["counts"], mode="lines",
                                      name=f"layer {l} ({a['gate_flat_fraction'][l]:.0%} flat)"))
    gate_fig.add_vline(x=a["flat_below"], line_dash="dash", annotation_text="flat below")
    gate_fig.update_layout(title=f"{a['activation']} inputs ({a['gate_source']})", height=320, xaxis_title="value",
                           yaxis_title="count")
    entropy = go.Figure(go.Heatmap(z=a["attention_entropy"], colorscale="Cividis", colorbar=dict(title="nats"),
                                   zmin=0, zmax=math.log(len(a["tokens"])),  # one position .. uniform over T
                                   x=[head_label(a, 0, h).removeprefix("layer 0 ") for h in range(a["n_head"])], y=[f"layer {l}" for l in range(L)],
                                   hovertemplate="%{y} %{x}: entropy %{z:.3f} nats<extra></extra>"))
    entropy.update_layout(title="attention entropy, mean over query positions", height=rows_height(L), margin=MARGIN)
    gains = go.Figure()
    for name, w in a["norm_gains"].items():
        gains.add_trace(go.Box(y=w, name=name.removeprefix("transformer.").removeprefix("model.").removesuffix(".weight"),
                               boxpoints=False))
    gains.update_layout(title="the norms' gains (w)", height=320, showlegend=False)
    return [residual, gate_fig, entropy, gains]


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
    total = sum(r[4] for r in rows) or 1.0
    lines = []
    for name, kernel, inputs, outputs, seconds, doc in rows:
        page = DOCS / doc
        link = f"<a href='{page.as_uri()}'>{doc}</a>" if page.is_file() else f"docs/{doc}"
        shapes = ", ".join(str(s) for s in inputs)
        lines.append(f"<tr><td><code>{name}</code></td><td><code>{kernel}</code></td><td>{shapes}</td>"
                     f"<td>{', '.join(str(s) for s in outputs)}</td><td>{seconds * 1e6:.0f}</td>"
                     f"<td>{seconds / total:.1%}</td><td>{link}</td></tr>")
    return ("<table><tr><th>name</th><th>kernel</th><th>input shapes</th><th>output shapes</th><th>µs</th>"
            "<th>share</th><th>docs</th></tr>" + "".join(lines) + "</table>")


def write(html_text: str, path) -> Path:
    """Write the page atomically: a reader sees the old file or the whole new one."""
    with atomic_write(path) as f:
        f.write(html_text)
    return Path(path)
