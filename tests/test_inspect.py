"""minigpt inspect: the arrays behind each panel against the model's own computations, --log-stats, bad input in
one line, and the page itself in a real browser (headless Chromium, network off)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import OUTPUT, TINY, chromium, cli, error_line, make_text, offline_page, read_log, require, train
from tolerances import FLOAT64_RTOL

from minigpt import GPT, GPTConfig, inspect
from minigpt.data.chars import CharTokenizer
from minigpt.model import param_shapes
from minigpt.train import parameter_stats

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tokenizer = CharTokenizer("".join(sorted("abcdefgh \n")))
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=8)
    model = GPT(cfg, seed=3, dtype=np.float64)
    rng = np.random.default_rng(0)
    for p in model.params.values():  # away from the initialisation: heads that attend to something
        p += rng.normal(0, 0.3, size=p.shape)
    return model, tokenizer


PROMPT = "abc defg\nhab"


def test_attention_rows_are_causal_probabilities_of_the_model_s_own_queries_and_keys(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    a = inspect.analyse(model, tokenizer, PROMPT)
    att = a["attention"]  # (L, nh, T, T)
    T = len(PROMPT)
    assert att.shape == (2, 2, T, T)
    np.testing.assert_allclose(att.sum(axis=-1), 1.0, rtol=FLOAT64_RTOL)
    assert np.all(att[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0)
    # independently: softmax of the masked scores, from the layer's input through c_attn
    model.eval()
    model.forward(tokenizer.encode(PROMPT)[None])
    cache = model.cache
    model.train()
    p, C, hs = model.params, 8, 4
    for l in range(2):
        x = cache.blocks[l].c_attn.x[0]  # (T, C) ln_1's output
        qkv = x @ p[f"transformer.h.{l}.attn.c_attn.weight"] + p[f"transformer.h.{l}.attn.c_attn.bias"]  # (T, 3C)
        for h in range(2):
            q, k = qkv[:, h * hs:(h + 1) * hs], qkv[:, C + h * hs:C + (h + 1) * hs]
            scores = np.where(np.tril(np.ones((T, T), bool)), q @ k.T / math.sqrt(hs), -np.inf)
            expected = np.exp(scores - scores.max(-1, keepdims=True))
            np.testing.assert_allclose(att[l, h], expected / expected.sum(-1, keepdims=True), rtol=FLOAT64_RTOL,
                                       atol=1e-15)


def test_the_logit_lens_of_the_last_layer_is_the_model_s_logits(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    a = inspect.analyse(model, tokenizer, PROMPT)
    np.testing.assert_allclose(a["lens_logits_last"], a["logits"], rtol=FLOAT64_RTOL, atol=1e-14)
    assert a["lens_top_ids"].shape == (3, len(PROMPT))  # the embedding, then after each of the 2 blocks
    assert np.all(a["lens_rank"][-1] == 0)  # the last layer's guess is the model's choice
    assert a["lens_top_tokens"][-1] == a["chosen_tokens"]


def test_predictions_and_the_loss_are_the_model_s(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    ids = tokenizer.encode(PROMPT)
    a = inspect.analyse(model, tokenizer, PROMPT, top_k=3)
    model.eval()
    logits, loss = model.forward(ids[None, :-1], ids[None, 1:])
    model.train()
    assert a["loss"] == pytest.approx(loss, rel=FLOAT64_RTOL)
    assert a["position_loss"].mean() == pytest.approx(loss, rel=FLOAT64_RTOL)
    probs = np.exp(logits[0] - logits[0].max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_array_equal(a["top_ids"][:-1], np.argsort(-probs, axis=-1)[:, :3])
    np.testing.assert_allclose(a["top_probs"][:-1], np.sort(probs, axis=-1)[:, ::-1][:, :3], rtol=1e-9)


def test_gradient_norms_are_those_of_model_backward(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    ids = tokenizer.encode(PROMPT)
    a = inspect.analyse(model, tokenizer, PROMPT)
    model.eval()
    model.forward(ids[None, :-1], ids[None, 1:])
    grads = model.backward()
    model.train()
    assert a["parameter_names"] == list(grads)
    for name, norm, ratio in zip(a["parameter_names"], a["grad_norms"], a["grad_to_weight"]):
        assert norm == pytest.approx(np.linalg.norm(grads[name]), rel=FLOAT64_RTOL)
        assert ratio == pytest.approx(norm / np.linalg.norm(model.params[name]), rel=FLOAT64_RTOL)


def test_activation_statistics_count_what_they_say(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    a = inspect.analyse(model, tokenizer, PROMPT)
    T, L = len(PROMPT), 2
    assert len(a["residual_histograms"]) == L + 1
    assert all(h["counts"].sum() == T * 8 for h in a["residual_histograms"])
    assert all(h["counts"].sum() == T * 32 for h in a["gate_histograms"])
    entropy = a["attention_entropy"]
    assert entropy.shape == (L, 2) and np.all(entropy >= 0) and np.all(entropy <= math.log(T))
    # a unit pushed far below GELU's flat edge at every position is reported dead
    model.params["transformer.h.1.mlp.c_fc.bias"][5] -= 1e3
    try:
        dead = inspect.analyse(model, tokenizer, PROMPT)["gate_dead_units"]
    finally:
        model.params["transformer.h.1.mlp.c_fc.bias"][5] += 1e3
    assert dead[1] == a["gate_dead_units"][1] + 1


def test_the_data_flow_is_every_kernel_of_the_forward_in_the_model_s_order(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    rows = inspect.analyse(model, tokenizer, PROMPT)["data_flow"]
    T = len(PROMPT)
    block = ["ln_1", "attn.c_attn", "attn.attention", "attn.c_proj", "attn.residual", "ln_2", "mlp.c_fc", "mlp.gelu",
             "mlp.c_proj", "mlp.residual"]
    assert [r[0] for r in rows] == ["embedding", *(f"h.{l}.{name}" for l in range(2) for name in block), "ln_f",
                                    "lm_head (wte^T)"]
    assert [r[1] for r in rows][:4] == ["embedding.forward_kernel", "layernorm.forward_kernel", "linear.forward_kernel",
                                        "attention.forward_kernel"]
    shapes = {name: outputs for name, _, _, outputs, _, _ in rows}
    assert shapes["h.1.mlp.c_fc"] == [(T, 32)] and shapes["lm_head (wte^T)"] == [(T, 10)]  # the linear kernel's (B*T, OC)
    assert shapes["h.0.attn.attention"] == [(1, T, 8), (1, 2, T)]  # y and the log-sum-exp of each row
    assert all(r[4] > 0 for r in rows)
    assert all((ROOT / "docs" / r[5]).is_file() for r in rows)


@pytest.fixture(scope="module", params=["llama", "qwen3"])
def rotary_model(request):
    """A Llama or Qwen 3: two query heads sharing one key/value head, an untied head, QK-norm for qwen3."""
    tokenizer = CharTokenizer("".join(sorted("abcdefgh \n")))
    cfg = GPTConfig(arch=request.param, vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2,
                    n_kv_head=1, n_embd=16)
    model = GPT(cfg, seed=3, dtype=np.float64)
    rng = np.random.default_rng(0)
    for p in model.params.values():
        p += rng.normal(0, 0.3, size=p.shape)
    return model, tokenizer


def test_a_rotary_model_s_attention_maps_are_per_query_head_reading_its_group_s_keys(rotary_model):
    model, tokenizer = rotary_model
    a = inspect.analyse(model, tokenizer, PROMPT)
    T, hs = len(PROMPT), 8
    assert a["attention"].shape == (2, 2, T, T) and a["n_kv_head"] == 1
    model.eval()
    model.forward(tokenizer.encode(PROMPT)[None])
    cache = model.cache
    model.train()
    for l in range(2):
        attended = cache.blocks[l].attention  # the rotated queries (B, T, nh, hs), the one key head (B, T, 1, hs)
        k = attended.k[0, :, 0]  # (T, hs) the key head both query heads read
        for h in range(2):
            q = attended.q[0, :, h]  # (T, hs)
            scores = np.where(np.tril(np.ones((T, T), bool)), q @ k.T / math.sqrt(hs), -np.inf)
            expected = np.exp(scores - scores.max(-1, keepdims=True))
            np.testing.assert_allclose(a["attention"][l, h], expected / expected.sum(-1, keepdims=True),
                                       rtol=FLOAT64_RTOL, atol=1e-15)
    assert not np.allclose(a["attention"][:, 0], a["attention"][:, 1])  # two query heads, two maps


def test_a_rotary_model_s_lens_gains_and_gates_are_its_own(rotary_model):
    model, tokenizer = rotary_model
    a = inspect.analyse(model, tokenizer, PROMPT)
    T = len(PROMPT)
    # the last layer through model.norm and the untied lm_head is the model's logits
    np.testing.assert_allclose(a["lens_logits_last"], a["logits"], rtol=FLOAT64_RTOL, atol=1e-14)
    assert a["final_norm"] == "norm" and a["head"] == "lm_head"
    gains = {n for n in a["norm_gains"]}
    assert {"model.norm.weight", "model.layers.1.post_attention_layernorm.weight"} <= gains
    assert ("model.layers.0.self_attn.q_norm.weight" in gains) == (model.config.arch == "qwen3")
    assert a["activation"] == "SiLU" and all(h["counts"].sum() == T * 48 for h in a["gate_histograms"])
    # a gate unit whose input is -100 at every position of the prompt is reported dead
    model.eval()
    model.forward(tokenizer.encode(PROMPT)[None])
    x = model.cache.blocks[1].gate_proj.x.reshape(T, 16)  # (T, C) gate_proj's input, post_attention_layernorm's output
    model.train()
    w = model.params["model.layers.1.mlp.gate_proj.weight"]  # (F, C)
    saved = w[5].copy()
    w[5] = np.linalg.lstsq(x, np.full(T, -100.0), rcond=None)[0]  # T <= C: x w = -100 exactly
    try:
        dead = inspect.analyse(model, tokenizer, PROMPT)["gate_dead_units"]
    finally:
        w[5] = saved
    assert dead[1] == a["gate_dead_units"][1] + 1


def test_a_rotary_model_s_data_flow_names_each_projection_and_the_page_its_key_value_heads(rotary_model):
    model, tokenizer = rotary_model
    a = inspect.analyse(model, tokenizer, PROMPT)
    qk_norm = ["self_attn.q_norm", "self_attn.k_norm"] if model.config.arch == "qwen3" else []
    block = ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", *qk_norm,
             "self_attn.rope", "self_attn.rope", "self_attn.attention", "self_attn.o_proj", "self_attn.residual",
             "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.swiglu", "mlp.down_proj", "mlp.residual"]
    assert [r[0] for r in a["data_flow"]] == ["embedding", *(f"layers.{l}.{n}" for l in range(2) for n in block),
                                               "norm", "lm_head"]
    assert all((ROOT / "docs" / r[5]).is_file() for r in a["data_flow"])
    page = inspect.report(model, tokenizer, PROMPT)
    assert "layer 1 head 1 kv 0" in page and "2 query heads share 1 key/value head" in page
    assert "SiLU inputs (gate_proj" in page


def test_a_long_prompt_is_cropped_to_the_context_with_a_notice(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    a = inspect.analyse(model, tokenizer, "abcdefgh" * 3)
    assert len(a["ids"]) == 16 and a["prompt"] == ("abcdefgh" * 3)[-16:]
    assert a["notices"] == ["the prompt has 24 tokens and the model's context is 16: inspecting its last 16"]


def test_a_prompt_is_cropped_to_what_the_page_shows():
    tokenizer = CharTokenizer("ab")
    model = GPT(GPTConfig(vocab_size=2, block_size=inspect.MAX_TOKENS + 50, n_layer=1, n_head=1, n_embd=4))
    a = inspect.analyse(model, tokenizer, "ab" * inspect.MAX_TOKENS)
    assert len(a["ids"]) == inspect.MAX_TOKENS
    assert a["notices"] == [f"the prompt has {2 * inspect.MAX_TOKENS} tokens and the page shows at most "
                            f"{inspect.MAX_TOKENS}: inspecting its last {inspect.MAX_TOKENS}"]


def test_parameter_stats_are_the_update_and_gradient_relative_to_the_weight():
    before = {"w": np.array([3.0, 4.0]), "b": np.zeros(2)}
    after = {"w": np.array([3.0, 4.5]), "b": np.array([0.0, 0.25])}
    grads = {"w": np.array([0.0, 1.0]), "b": np.array([2.0, 0.0])}
    stats = parameter_stats(after, before, grads)
    assert stats["update_ratio"] == {"w": pytest.approx(0.1), "b": pytest.approx(0.25)}  # b: 0 weight, absolute
    assert stats["grad_ratio"] == {"w": pytest.approx(0.2), "b": pytest.approx(2.0)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny character model trained with --log-stats."""
    tmp = tmp_path_factory.mktemp("inspect")
    out = tmp / "run"
    train("--data", str(make_text(tmp / "text.txt", seed=0)), "--out-dir", str(out), "--max-iters", "20",
          "--log-stats", *TINY)
    return out


def test_log_stats_records_each_parameter_at_each_evaluation(run):
    records = read_log(run)
    with_stats = [r for r in records if "stats" in r]
    assert [r["iter"] for r in with_stats] == [r["iter"] for r in records if "val_loss" in r] == [10, 20]
    names = set(param_shapes(GPTConfig(vocab_size=10, block_size=16, n_layer=1, n_head=2, n_embd=16)))
    for r in with_stats:
        assert set(r["stats"]["update_ratio"]) == set(r["stats"]["grad_ratio"]) == names
        assert all(0 < v < 1 for v in r["stats"]["update_ratio"].values())


def test_the_command_writes_the_page_and_refuses_bad_input_in_one_line(run, capsys, tmp_path):
    require("plotly")
    code, err = cli(capsys, "inspect", "--out-dir", str(run), "--prompt", "the king")
    assert code == 0, err
    page = (run / "inspect.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "update-to-weight ratio of each weight (--log-stats)" in page
    code, err = cli(capsys, "inspect", "--out-dir", str(run), "--prompt", "the king" * 3, "--html", str(tmp_path / "p.html"))
    assert code == 0 and "the prompt has 24 tokens and the model's context is 16" in err
    # a checkpoint directory and a Hugging Face directory, as well as a run
    latest = run / json.loads((run / "checkpoints.json").read_text())["latest"]
    assert cli(capsys, "inspect", "--out-dir", str(latest), "--html", str(tmp_path / "c.html"))[0] == 0
    assert cli(capsys, "export", "--out-dir", str(run), "--hf", str(tmp_path / "hf"))[0] == 0
    code, err = cli(capsys, "inspect", "--out-dir", str(tmp_path / "hf"), "--prompt", "the king", "--html",
                    str(tmp_path / "hf.html"))
    assert code == 0, err
    assert "Logit lens" in (tmp_path / "hf.html").read_text() and "Logit lens" in (tmp_path / "c.html").read_text()
    code, err = cli(capsys, "inspect", "--out-dir", str(run), "--prompt", "the kïng")
    assert code == 1
    error_line(err, "'ï'", "not in the vocabulary")
    code, err = cli(capsys, "inspect", "--out-dir", str(tmp_path / "missing"))
    assert code == 1
    error_line(err, "missing does not exist")
    code, err = cli(capsys, "inspect", "--out-dir", str(run), "--prompt", "k")
    assert code == 1
    error_line(err, "give at least 2")


def test_the_page_in_a_real_browser_offline(run):
    """The page of a small trained model in headless Chromium with the network off: no console error, no request
    leaves the file, every panel drawn, hover values reachable; a screenshot for a person to look at."""
    require("plotly")
    page_path = run.parent / "browser.html"
    assert cli_ok("inspect", "--out-dir", str(run), "--prompt", "the king and the queen", "--html", str(page_path))
    with chromium() as browser:
        page, errors, requests = offline_page(browser)
        page.goto(page_path.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
        for section in ("attention", "predictions", "logit-lens", "activations", "gradients", "data-flow"):
            assert page.locator(f"#{section}").count() == 1, section
        # each figure drew its traces: heat maps as images, lines, bars and boxes as trace groups
        drawn = {s: page.eval_on_selector_all(f"#{s} .js-plotly-plot", "els => els.map(e => "
                                              "e.querySelectorAll('g.trace, .heatmaplayer image').length)")
                 for s in ("attention", "predictions", "logit-lens", "activations", "gradients")}
        assert all(counts and min(counts) > 0 for counts in drawn.values()), drawn
        assert page.locator("#data-flow tr").count() == 1 + 1 + 1 * 10 + 2  # the header, the kernels of a 1-layer model
        big = page.query_selector_all("#attention .js-plotly-plot")[1]  # the enlarged head
        big.scroll_into_view_if_needed()
        box = big.query_selector(".nsewdrag").bounding_box()
        page.mouse.move(box["x"] + 5, box["y"] + 5)
        page.mouse.move(box["x"] + box["width"] * 0.05, box["y"] + box["height"] * 0.95, steps=5)
        page.wait_for_function("document.querySelectorAll('.hoverlayer .hovertext').length > 0")
        hover = page.eval_on_selector_all(".hoverlayer .hovertext", "els => els.map(e => e.textContent)")
        assert any("→ key 0" in h for h in hover), hover
        OUTPUT.mkdir(exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(OUTPUT / "inspect.png"), full_page=True)
        assert errors == []
        assert all(url.startswith(("file:", "data:", "about:")) for url in requests), requests


def cli_ok(*args) -> bool:
    from minigpt.cli import main

    return main(list(args)) == 0
