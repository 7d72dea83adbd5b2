"""The arrays behind every panel of `minigpt inspect`'s page, from one forward and one backward of a prompt
(minigpt/inspect/__init__.py lists the panels)."""

import numpy as np

from minigpt import backends
from minigpt.model import HEAD
from minigpt.ops import attention, cross_entropy, softmax

TOP_K = 5
MAX_TOKENS = 128  # the page shows at most this many positions: every head's (T, T) map goes into it
HISTOGRAM_BINS = 60
# The MLP's gate and where it is flat: below -3 GELU's output (> -0.004) and slope (< 0.012) are nearly 0, below -6
# SiLU's (> -0.015, |slope| < 0.013): a unit whose gate input is there passes nothing on.
GATES = {"gpt2": ("GELU", -3.0, "c_fc's output"), "llama": ("SiLU", -6.0, "gate_proj's output"),
         "qwen3": ("SiLU", -6.0, "gate_proj's output")}


def block_parts(arch: str, b) -> tuple:
    """What inspect reads from one block's cache: the attention core's cache (queries, keys, log-sum-exp), the
    block's input (the residual stream, before its first norm) and the MLP gate's input."""
    if arch == "gpt2":
        return b.attention, b.ln_1.x, b.gelu.x
    return b.attention, b.input_layernorm.x, b.swiglu.gate  # llama and qwen3


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

    if task in TASKS:  # (a task of records, minigpt/data/record_tasks.py, has a template of its own: a continuation)
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
        cache = model.cache
        grads = model.backward()
    finally:
        model.train(training)
    f64 = np.float64
    attends, inputs, gates = zip(*(block_parts(cfg.arch, b) for b in cache.blocks))  # L of each
    activation, flat_below, gate_source = GATES[cfg.arch]

    # attention probabilities, from the saved queries, keys and log-sum-exp (the fused kernels keep no (T, T) array),
    # in float64; one map per query head: with grouped-query attention, heads h of a group share key/value head
    # h // (nh / nkv)
    att = np.stack([attention.probabilities(c._replace(q=c.q.astype(f64), k=c.k.astype(f64), lse=c.lse.astype(f64)))[0]
                    for c in attends])  # (L, nh, T, T)
    entropy = -np.sum(np.where(att > 0, att * np.log(np.where(att > 0, att, 1.0)), 0.0), axis=-1).mean(axis=-1)  # (L, nh)

    # the residual stream: the embedding's output, then after each block (the input of the next one's first norm,
    # or of the final norm's)
    residual = [x[0] for x in inputs] + [cache.norm.x[0]]  # L + 1 of (T, C)
    head = p[model.family.WTE] if cfg.tie_word_embeddings else p[HEAD]  # (V, C)
    probs, _ = softmax.forward(logits[0].astype(f64))  # (T, V)
    chosen = np.argmax(probs, axis=-1)  # (T,) the model's own next-token choice
    lens_top, lens_prob, lens_rank = [], [], []
    for r in residual:
        x, _ = model.family.final_norm(p, cfg, r[None])  # (1, T, C): ln_f, or norm (RMSNorm)
        lens_logits = (x[0] @ head.T).astype(f64)  # (T, V)
        lens_p, _ = softmax.forward(lens_logits)  # (T, V)
        lens_top.append(np.argmax(lens_p, axis=-1))
        lens_prob.append(lens_p.max(axis=-1))
        chosen_logit = lens_logits[np.arange(T), chosen]  # (T,)
        lens_rank.append(np.sum(lens_logits > chosen_logit[:, None], axis=-1))  # 0: the layer already picks it
    lens_logits_last = lens_logits

    top = np.argsort(-probs, axis=-1)[:, :top_k]  # (T, k)
    position_loss = -np.log(np.maximum(probs[np.arange(T - 1), ids[1:]], 1e-300))  # (T - 1,)

    gate_in = [g[0] for g in gates]  # L of (T, F): c_fc's or gate_proj's output
    flat = np.array([np.mean(g < flat_below) for g in gate_in])  # (L,) fraction of inputs in the gate's flat region
    dead = np.array([int(np.sum(np.all(g < flat_below, axis=0))) for g in gate_in])  # (L,) units flat at every position

    names = list(p)
    grad_norm = np.array([np.linalg.norm(grads[n].astype(f64)) for n in names])
    weight_norm = np.array([np.linalg.norm(p[n].astype(f64)) for n in names])

    out = {
        "prompt": tokenizer.decode([int(i) for i in ids]), "ids": ids, "tokens": token_labels(tokenizer, ids),
        "notices": notices, "arch": cfg.arch, "n_layer": L, "n_head": nh, "n_kv_head": cfg.n_kv_head,
        "final_norm": "ln_f" if cfg.arch == "gpt2" else "norm",
        "head": "the tied head (the token embedding)" if cfg.tie_word_embeddings else "lm_head",
        "attention": att, "attention_entropy": entropy,
        "logits": logits[0], "probs": probs, "top_ids": top, "top_tokens": [token_labels(tokenizer, row) for row in top],
        "top_probs": np.take_along_axis(probs, top, axis=-1), "position_loss": position_loss, "loss": loss,
        "lens_logits_last": lens_logits_last, "lens_top_tokens": [token_labels(tokenizer, t) for t in lens_top],
        "lens_top_ids": np.array(lens_top), "lens_top_probs": np.array(lens_prob), "lens_rank": np.array(lens_rank),
        "chosen_tokens": token_labels(tokenizer, chosen),
        "residual_histograms": [histogram(r) for r in residual],
        "residual_std": np.array([float(np.std(r)) for r in residual]),
        "activation": activation, "flat_below": flat_below, "gate_source": gate_source,
        "gate_histograms": [histogram(g) for g in gate_in], "gate_flat_fraction": flat, "gate_dead_units": dead,
        "norm_gains": {n: p[n].astype(f64) for n in names if n.endswith(".weight") and p[n].ndim == 1},
        "parameter_names": names, "grad_norms": grad_norm, "weight_norms": weight_norm,
        "grad_to_weight": grad_norm / np.where(weight_norm > 0, weight_norm, 1.0),
        "grads": grads,
        "data_flow": data_flow(model, ids),
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


def data_flow(model, ids, repeat: int = 3) -> list:
    """Each kernel call of a forward of the prompt, in the order the model makes them (its kernel table traced,
    minigpt/backends), with the parameter it computes with, its shapes, its time (the best of `repeat` forwards) and
    its docs page: rows of (name, kernel, input shapes, output shapes, seconds, docs page)."""
    # a parameter by where its numbers lie and its shape: the kernels get it as it is (GPT-2's (in, out) weights) or
    # transposed (Llama's (out, in) ones, the tied LM head's wte^T): a view, not the array itself, and some arrays
    # are views of one larger one (Llama's q, k and v, GPT.fused), so neither `id` nor `.base` names them
    names = {(p.ctypes.data, p.shape, p.strides): name.removeprefix("transformer.").removeprefix("model.")
             .removesuffix(".weight") for name, p in model.params.items()}
    as_is = {(p.ctypes.data, p.shape, p.strides) for p in model.params.values()}
    names.update({(p.ctypes.data, p.T.shape, p.T.strides): names[(p.ctypes.data, p.shape, p.strides)]
                  for p in model.params.values() if p.ndim == 2})

    def key(a):
        return a.ctypes.data, a.shape, a.strides

    embedding = names[key(model.params[model.family.WTE])]
    runs, kernels = [], model.kernels
    for _ in range(repeat):
        calls = []
        model.kernels = backends.traced(kernels, lambda *call: calls.append(call))
        try:
            model.forward(ids[None], keep_cache=False)
        finally:
            model.kernels = kernels
        runs.append(calls)
    rows, name = [], ""
    for calls in zip(*runs):
        op, kernel, args, result, _ = calls[0]
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        weights = [names[key(a)] for a in arrays if key(a) in as_is]
        transposed = [names[key(a)] for a in arrays if key(a) in names and key(a) not in as_is]
        if op == "embedding":
            name = "embedding"
        elif weights:  # named after the weight it computes with: h.0.attn.c_attn
            name = weights[0]
        elif transposed and transposed[0] == embedding:  # the tied LM head: wte^T
            name = f"lm_head ({embedding}^T)"
        elif transposed:  # a weight stored (out, in), as Llama's linears and lm_head are: layers.0.self_attn.q_proj
            name = transposed[0]
        else:  # no weight: after the op, in the module of the call before it (h.0.attn.c_attn -> h.0.attn.attention)
            name = f"{name.rpartition('.')[0]}.{op}".lstrip(".")
        results = result if isinstance(result, tuple) else (result,)
        rows.append((name, f"{op}.{kernel}", [tuple(a.shape) for a in arrays],
                     [tuple(r.shape) for r in results if isinstance(r, np.ndarray)],
                     min(call[4] for call in calls), "training.md" if op == "optim" else f"ops/{op}.md"))
    return rows
