"""Supervised fine-tuning: records, their masked loss, the chat template, the classifier's head and its read-back by
transformers (minigpt/data/records.py, minigpt/model.py, minigpt/evaluation.py, minigpt/hf.py)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import cli, error_line
from minigpt import GPT, GPTConfig, hf, load
from minigpt.data import load_tokenizer
from minigpt.data.chars import CharTokenizer
from minigpt.data.record_datasets import open_records
from minigpt.data.records import CHATML, EOT, IM_END, IM_START, PLAIN, render
from minigpt.evaluation import classification_scores
from minigpt.gradcheck import check_model
from minigpt.ops.cross_entropy import IGNORE_INDEX
from tolerances import GRAD_RTOL, TORCH_RTOL_FLOAT64


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def random_model(cfg, seed=0):
    """A float64 model with weights far from their initialisation, so that every path carries signal."""
    model = GPT(cfg, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p += rng.normal(0.0, 0.3, size=p.shape)
    return model


def sort_records(n, seed=0, length_range=(1, 6)):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        q = "".join(rng.choice(list("012"), size=rng.integers(*length_range)))
        out.append({"prompt": q + "=", "completion": "".join(sorted(q))})
    return out


def test_only_completion_tokens_are_targets_and_padding_is_ignored(tmp_path):
    records = open_records(write_jsonl(tmp_path / "r.jsonl", [{"prompt": "21=", "completion": "12"},
                                                             {"prompt": "1=", "completion": "1"}]), None)
    tok = records.tokenizer
    assert tok.chars == "12=" and tok.special_tokens == {EOT: 3}
    batch = records.batch(records.examples)
    x, y = batch.x, batch.y
    # "21=12<eot>": inputs 2 1 = 1 2, targets: the completion 1 2 and <eot>, nothing for the prompt
    assert tok.decode(x[0]) == "21=12"
    assert y[0].tolist() == [IGNORE_INDEX, IGNORE_INDEX, 0, 1, 3]
    # "1=1<eot>" padded on the right with <eot>, whose targets are ignored
    assert x[1].tolist() == [0, 2, 0, 3, 3] and y[1].tolist() == [IGNORE_INDEX, 0, 3, IGNORE_INDEX, IGNORE_INDEX]


@given(st.lists(st.integers(1, 7), min_size=2, max_size=5), st.integers(0, 2**16))
@settings(max_examples=25)
def test_a_records_loss_and_gradient_do_not_depend_on_what_it_is_batched_with(lengths, seed):
    # each record's loss, read from the batch's logits, equals its loss alone; and the batch's gradient is the mean
    # of the records' gradients weighted by their targets (the cross-entropy averages over every target of the batch)
    import tempfile
    from pathlib import Path

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        rs = [{"prompt": "".join(rng.choice(list("ab"), size=n)) + ":", "completion": "".join(rng.choice(list("ab"), size=m))}
              for n, m in zip(lengths, rng.integers(1, 4, size=len(lengths)))]
        records = open_records(write_jsonl(Path(d) / "r.jsonl", rs), None)
    arch = ["gpt2", "llama"][seed % 2]
    model = random_model(GPTConfig(arch=arch, vocab_size=records.vocab_size, block_size=16, n_layer=2, n_head=2,
                                   n_embd=8), seed)
    batch = records.batch(records.examples)
    x, y = batch.x, batch.y
    logits, loss = model.forward(x, y)
    grads = model.backward()
    total = {name: np.zeros_like(g) for name, g in grads.items()}
    n_all = int((y != IGNORE_INDEX).sum())
    for b, e in enumerate(records.examples):
        single = records.batch([e])
        xa, ya = single.x, single.y
        alone, loss_alone = model.forward(xa, ya)
        np.testing.assert_allclose(logits[b, :xa.shape[1]], alone[0], rtol=1e-12, atol=1e-12)
        for name, g in model.backward().items():
            total[name] += g * int((ya != IGNORE_INDEX).sum()) / n_all
    for name in grads:
        np.testing.assert_allclose(grads[name], total[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_the_masked_loss_and_its_gradients_equal_pytorchs(torch, transformers, tmp_path):
    from test_torch_reference import hf_loss_and_grads, hf_model, rel_err

    records = open_records(write_jsonl(tmp_path / "r.jsonl", sort_records(6)), None)
    cfg = GPTConfig(vocab_size=records.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=8)
    model = random_model(cfg)
    theirs = hf_model(transformers, torch, cfg, np.float64)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in model.params.items()}, strict=False)
    batch = records.batch(records.examples)
    x, y = batch.x, batch.y
    assert (y == IGNORE_INDEX).sum() > x.size // 3  # prompts and padding: a third of the positions or more
    _, loss = model.forward(x, y)
    grads = model.backward()
    _, their_loss, their_grads = hf_loss_and_grads(torch, theirs, x, y)
    assert abs(loss - their_loss) < TORCH_RTOL_FLOAT64 * their_loss
    for name, g in grads.items():
        assert rel_err(g, their_grads[name]) < TORCH_RTOL_FLOAT64, name


def test_chat_records_learn_the_assistants_turns_only_in_chatml(tmp_path, transformers):
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"}, {"role": "user", "content": "and?"},
            {"role": "assistant", "content": "so"}]
    records = open_records(write_jsonl(tmp_path / "c.jsonl", [{"messages": chat}] * 2), None)
    tok = records.tokenizer
    assert records.template == CHATML and {EOT, IM_START, IM_END} <= set(tok.special_tokens)
    e = records.examples[0]
    learned = tok.decode(e.ids[e.trained])
    assert learned == "yo<|im_end|>\nso<|im_end|>\n"
    # the text is what transformers renders with the same template
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=__import__("tokenizers").Tokenizer(
        __import__("tokenizers").models.BPE()))
    fast.chat_template = CHATML
    assert tok.decode(e.ids) == fast.apply_chat_template(chat, tokenize=False)
    assert render(CHATML, chat[:2], True, tok) == fast.apply_chat_template(chat[:2], tokenize=False, add_generation_prompt=True)


@pytest.mark.parametrize("line, fragment", [
    ("not json", "line 2 is not valid JSON"),
    ('[1, 2]', "line 2 is a JSON list"),
    ('{"prompt": "1="}', "line 2 has the keys ['prompt']"),
    ('{"text": "x", "label": "a"}', "line 2 is a classification record but the file's first is an instruction"),
    ('{"prompt": "1=", "completion": 5}', "line 2: completion must be a string"),
    ('{"messages": [{"role": "bot", "content": "x"}]}', "line 2 is a chat record"),
    ('{"prompt": "1=", "choices": ["1", "2"], "answer": 0}', "line 2 is a choice record"),
    # what Python's own parser refuses with its own message, or not at all
    ("[" * 100_000 + "]" * 100_000, "line 2 nests its JSON 100,000 levels deep"),
    ('{"prompt": "\\ud800", "completion": "a"}', "line 2: prompt holds a lone surrogate"),
    ('{"prompt": "a", "completion": "b", "n": 1' + "0" * 5000 + "}", "line 2 holds an integer of more than 4,300"),
])
def test_a_bad_record_is_one_line_naming_its_file_and_line(tmp_path, capsys, line, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "12=", "completion": "12"}\n' + line + "\n")
    code, err = cli(capsys, "train", "--data", str(path), "--out-dir", str(tmp_path / "run"), "--max-iters", "1")
    assert code == 1
    error_line(err, str(path), fragment)
    assert not (tmp_path / "run").exists()


def test_a_record_too_long_or_outside_the_vocabulary_is_one_line(tmp_path, capsys):
    path = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "1" * 30 + "=", "completion": "1"}] * 3)
    code, err = cli(capsys, "train", "--data", str(path), "--out-dir", str(tmp_path / "a"), "--block-size", "16")
    assert code == 1
    error_line(err, "line 1 has 33 tokens", "--block-size")
    pretrained = tmp_path / "pre"
    assert cli(capsys, "train", "--task", "sort-instruct", "--out-dir", str(pretrained), "--max-iters", "2",
               "--eval-iters", "1", "--backend", "numpy")[0] == 0
    other = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "12x=", "completion": "12"}] * 3)
    code, err = cli(capsys, "train", "--data", str(other), "--init-from", str(pretrained), "--out-dir", str(tmp_path / "b"))
    assert code == 1
    error_line(err, str(other), "line 1", "character 'x'")


def test_fine_tuning_adds_the_special_tokens_as_rows_of_the_mean_and_keeps_the_others(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("abab ba\nhi yo, said the user to the assistant\n" * 300)  # (ChatML writes the roles)
    assert cli(capsys, "train", "--data", str(text), "--out-dir", str(tmp_path / "lm"), "--max-iters", "2",
               "--eval-iters", "1", "--n-layer", "1", "--n-embd", "16", "--block-size", "32", "--backend", "numpy")[0] == 0
    chats = write_jsonl(tmp_path / "c.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                             {"role": "assistant", "content": "yo"}]}] * 4)
    assert cli(capsys, "train", "--data", str(chats), "--init-from", str(tmp_path / "lm"), "--out-dir",
               str(tmp_path / "ft"), "--max-iters", "1", "--eval-iters", "1", "--learning-rate", "1e-12",
               "--backend", "numpy")[0] == 0
    from minigpt import load

    before, fine_tuned = load.build_model(load.read(tmp_path / "lm", "latest")), load.read(tmp_path / "ft", "latest")
    after, tok = load.build_model(fine_tuned), fine_tuned.tokenizer
    V = before.config.vocab_size
    assert after.config.vocab_size == V + 3 and tok.chat_template == CHATML
    wte0, wte1 = before.params["transformer.wte.weight"], after.params["transformer.wte.weight"]
    np.testing.assert_allclose(wte1[:V], wte0, atol=1e-6)  # (a step at a learning rate of 1e-12)
    np.testing.assert_allclose(wte1[V:], np.repeat(wte0.mean(axis=0, keepdims=True), 3, axis=0), atol=1e-6)


def test_a_chat_and_sample_chat_and_eval_run_from_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(capsys, "train", "--task", "sort-instruct", "--out-dir", str(run), "--max-iters", "3",
               "--eval-iters", "1", "--backend", "numpy")[0] == 0
    capsys.readouterr()
    from minigpt.cli import main

    assert main(["sample", "--out-dir", str(run), "--chat", "--prompt", "210=", "--greedy", "--max-new-tokens", "4"]) == 0
    reply = capsys.readouterr().out
    assert set(reply.strip()) <= set("012=") and len(reply.strip()) <= 4
    data = write_jsonl(tmp_path / "e.jsonl", sort_records(5))
    out = tmp_path / "e.json"
    assert main(["eval", "--out-dir", str(run), "--data", str(data), "--json", str(out), "--backend", "numpy"]) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["records"] == 5 and 0.0 <= result["exact_match"] <= 1.0 and result["loss"] > 0
    assert f"{result['perplexity']:.4f}" in table and abs(np.exp(result["loss"]) - result["perplexity"]) < 1e-9
    code, err = cli(capsys, "chat", "--out-dir", str(tmp_path / "nowhere"))
    assert code == 1
    error_line(err, "does not exist")


@given(st.sampled_from(["gpt2", "llama", "qwen3"]), st.sampled_from([0.0, 0.5]), st.integers(0, 2**16))
@settings(max_examples=8)
def test_a_classifiers_gradients_match_finite_differences(arch, lm_weight, seed):
    cfg = GPTConfig(arch=arch, vocab_size=7, block_size=6, n_layer=2, n_head=2, n_embd=8, labels=("a", "b", "c"))
    model = random_model(cfg, seed)
    rng = np.random.default_rng(seed)
    B = 3
    idx = rng.integers(0, 7, size=(B, 6))
    last = rng.integers(0, 6, size=B)
    targets = np.where(np.arange(6) < last[:, None], np.roll(idx, -1, axis=1), IGNORE_INDEX)
    targets[0, 0] = idx[0, 1]
    head = dict(last=last, labels=rng.integers(0, 3, size=B), lm_weight=lm_weight)
    report = check_model(model, idx, targets, head=head, max_elements=4, n_directions=3)
    assert report.max_rel_error < GRAD_RTOL, report


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_a_classifier_exports_to_sequence_classification_with_the_same_scores_and_gradients(arch, transformers, torch,
                                                                                              tmp_path):
    from test_torch_reference import rel_err

    records = open_records(write_jsonl(tmp_path / "c.jsonl", [{"text": t, "label": l} for t, l in
                                                              [("abba", "x"), ("b", "y"), ("aab", "z"), ("ba", "x")]]), None)
    cfg = GPTConfig(arch=arch, vocab_size=records.vocab_size, block_size=8, n_layer=2, n_head=2, n_embd=8,
                    labels=tuple(records.labels))
    model = random_model(cfg)
    hf.save_pretrained(model, tmp_path / "hf", records.tokenizer)
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf", dtype=torch.float64).eval()
    assert type(theirs).__name__ == hf.CLASSIFIERS[arch] and theirs.config.id2label == {0: "x", 1: "y", 2: "z"}
    batch = records.batch(records.examples)  # padded on the right with pad_token_id
    x, last, labels = batch.x, batch.last, batch.labels
    exported = load.build_model(load.read(tmp_path / "hf"), dtype=np.float64)  # (written as float32: compared in float64)
    scores, loss = exported.forward(x, last=last, labels=labels)
    grads = exported.backward()
    from contextlib import nullcontext

    from test_torch_llama import float64_exact  # (Llama's norms and rotations in float64, as minigpt computes them)

    with float64_exact(torch, theirs, exported, np.float64) if arch != "gpt2" else nullcontext():
        out = theirs(torch.from_numpy(x), labels=torch.from_numpy(labels))
        out.loss.backward()
    assert rel_err(scores, out.logits.detach().numpy()) < TORCH_RTOL_FLOAT64
    assert abs(loss - out.loss.item()) < TORCH_RTOL_FLOAT64 * out.loss.item()
    for name, p in theirs.named_parameters():
        assert rel_err(grads[name], p.grad.numpy()) < TORCH_RTOL_FLOAT64, name
    # and back: the directory reads as the classifier it was written from
    written = load.read(tmp_path / "hf")
    config, weights, tokenizer = written.config, written.weights, written.tokenizer
    assert config == model.config and tokenizer == records.tokenizer
    assert all(np.array_equal(weights[n], p.astype(np.float32)) for n, p in model.params.items() if n != "lm_head.weight")


def test_an_exported_tokenizer_keeps_its_special_tokens_and_chat_template(transformers, tmp_path):
    tok = CharTokenizer("".join(sorted(set("\nuser assistant hi yo")))).with_chat([EOT, IM_START, IM_END], CHATML)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=1, n_embd=8))
    hf.save_pretrained(model, tmp_path, tok)
    assert load_tokenizer(tmp_path) == tok
    fast = transformers.AutoTokenizer.from_pretrained(tmp_path)
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    text = fast.apply_chat_template(chat, tokenize=False)
    assert text == render(CHATML, chat, False, tok)
    assert fast(text)["input_ids"] == tok.encode(text).tolist()


def test_classification_scores_are_those_of_their_definitions():
    truth = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    s = classification_scores(predicted, truth, ["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(4 / 6)
    # a: precision 1/2, recall 1/2; b: 2/3 and 1; c: 1 and 1/2
    assert s["per_class"]["a"]["f1"] == pytest.approx(0.5)
    assert s["per_class"]["b"]["f1"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    assert s["per_class"]["c"]["f1"] == pytest.approx(2 * 0.5 / 1.5)
    assert s["macro_f1"] == pytest.approx(np.mean([0.5, 0.8, 2 / 3]))


def test_the_plain_template_is_the_prompt_then_the_completion_and_eot():
    tok = CharTokenizer("12=").with_chat([EOT], PLAIN)
    assert render(PLAIN, [{"role": "user", "content": "21="}, {"role": "assistant", "content": "12"}], False, tok) \
        == "21=12<|endoftext|>"


def test_a_lora_classifier_resumed_ends_as_the_uninterrupted_run(tmp_path, capsys):
    from helpers import read_log, without_timing

    text = tmp_path / "t.txt"
    text.write_text("abba baab ab ba\n" * 300)
    common = ["--max-iters", "6", "--eval-interval", "3", "--eval-iters", "1", "--n-layer", "1", "--n-embd", "16",
              "--block-size", "16", "--backend", "numpy"]
    assert cli(capsys, "train", "--data", str(text), "--out-dir", str(tmp_path / "lm"), *common)[0] == 0
    data = write_jsonl(tmp_path / "c.jsonl", [{"text": t, "label": t[0]} for t in ("abba", "baab", "ab", "ba") * 10])
    fine = ["--data", str(data), "--init-from", str(tmp_path / "lm"), "--lora-rank", "2", "--lm-loss-weight", "0.5",
            "--batch-size", "4"]
    assert cli(capsys, "train", *fine, "--out-dir", str(tmp_path / "whole"), *common)[0] == 0
    half = [c if c != "6" else "3" for c in common]
    assert cli(capsys, "train", *fine, "--out-dir", str(tmp_path / "half"), *half)[0] == 0
    assert cli(capsys, "train", "--resume", "--out-dir", str(tmp_path / "half"), "--max-iters", "6")[0] == 0
    whole, resumed = read_log(tmp_path / "whole"), read_log(tmp_path / "half")
    assert without_timing(resumed) == without_timing(whole) and "val_accuracy" in whole[-1]


def test_a_hugging_face_chat_model_fine_tunes_with_its_own_template_and_its_adapters_load_in_peft(
        transformers, torch, tmp_path, capsys):
    from helpers import require
    from test_hf_tokenizer import CHAT_TEMPLATE, model_directory

    peft = require("peft")
    model_directory(transformers, torch, "qwen3", tmp_path / "hub")
    chat = [{"role": "user", "content": "Speak 12 words"}, {"role": "assistant", "content": "Thou art 5 times blest."}]
    data = write_jsonl(tmp_path / "chat.jsonl", [{"messages": chat}] * 8)
    records = open_records(data, load_tokenizer(tmp_path / "hub"))
    assert records.template == CHAT_TEMPLATE and records.vocab_size == load_tokenizer(tmp_path / "hub").vocab_size
    theirs_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hub")
    assert records.examples[0].ids.tolist() == theirs_tok.apply_chat_template(chat, tokenize=True, return_dict=False)
    code, err = cli(capsys, "train", "--init-from", str(tmp_path / "hub"), "--data", str(data), "--out-dir",
                    str(tmp_path / "run"), "--max-iters", "2", "--eval-interval", "2", "--eval-iters", "1",
                    "--batch-size", "2", "--block-size", "96", "--lora-rank", "2", "--learning-rate", "1e-2")
    assert code == 0, err
    assert cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--peft", str(tmp_path / "adapters"))[0] == 0
    from minigpt import load

    ours = load.build_model(load.read(tmp_path / "run"))
    base = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hub")
    theirs = peft.PeftModel.from_pretrained(base, tmp_path / "adapters").eval()
    idx = np.array([records.examples[0].ids])
    with torch.no_grad():
        logits = theirs(torch.from_numpy(idx)).logits.numpy()
    np.testing.assert_allclose(ours.forward(idx)[0], logits, rtol=1e-4, atol=1e-4 * np.abs(logits).max())
    assert cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--hf", str(tmp_path / "merged"))[0] == 0
    merged = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        np.testing.assert_allclose(merged(torch.from_numpy(idx)).logits.numpy(), logits, rtol=1e-4,
                                   atol=1e-4 * np.abs(logits).max())
    assert transformers.AutoTokenizer.from_pretrained(tmp_path / "merged").chat_template == CHAT_TEMPLATE


@pytest.mark.slow
def test_the_sort_task_as_instructions_reaches_full_exact_match_on_held_out_prompts(tmp_path, capsys):
    """The sort-instruct preset from scratch (750 steps), then minigpt eval on the 182 held-out prompts."""
    from minigpt.cli import main

    run = tmp_path / "sort"
    assert main(["train", "--task", "sort-instruct", "--out-dir", str(run)]) == 0
    from minigpt.data import record_tasks

    path, n_val = record_tasks.build("sort-instruct")
    held_out = write_jsonl(tmp_path / "held-out.jsonl", [json.loads(line) for line in path.read_text().splitlines()[-n_val:]])
    assert main(["eval", "--out-dir", str(run), "--data", str(held_out), "--json", str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["records"] == 182 and result["exact_match"] == 1.0


def test_multiple_choice_scores_each_ending_by_its_mean_loss_and_picks_the_lowest(tmp_path, capsys):
    from minigpt import load
    from minigpt.cli import main
    from minigpt.evaluation import choice_losses

    run = tmp_path / "run"
    assert cli(capsys, "train", "--task", "sort-instruct", "--out-dir", str(run), "--max-iters", "20",
               "--eval-iters", "1", "--backend", "numpy")[0] == 0
    trained = load.read(run)
    model, tok = load.build_model(trained), trained.tokenizer
    prompt, choices = "2101=", ["0112", "2110", "1"]
    losses = choice_losses(model, tok, prompt, choices)
    for choice, loss in zip(choices, losses):  # independently: -log p of each ending token, from the whole sequence
        ids = tok.encode(prompt + choice)
        logits, _ = model.forward(ids[None, :-1])
        logp = logits[0] - np.log(np.exp(logits[0] - logits[0].max(-1, keepdims=True)).sum(-1, keepdims=True)) \
            - logits[0].max(-1, keepdims=True)
        n = len(tok.encode(prompt))
        expected = -np.mean([logp[i - 1, ids[i]] for i in range(n, len(ids))])
        assert abs(loss - expected) < 1e-5
    best = int(np.argmin(losses))
    data = write_jsonl(tmp_path / "mc.jsonl", [{"prompt": prompt, "choices": choices, "answer": best},
                                              {"prompt": prompt, "choices": choices, "answer": (best + 1) % 3}])
    capsys.readouterr()
    assert main(["eval", "--out-dir", str(run), "--data", str(data), "--json", str(tmp_path / "mc.json")]) == 0
    assert json.loads((tmp_path / "mc.json").read_text())["accuracy"] == 0.5


def test_chat_keeps_the_conversation_and_ends_cleanly_on_end_of_input_and_on_ctrl_c(tmp_path, capsys):
    import os
    import signal
    import subprocess
    import sys

    run = tmp_path / "run"
    assert cli(capsys, "train", "--task", "sort-instruct", "--out-dir", str(run), "--max-iters", "3",
               "--eval-iters", "1", "--backend", "numpy")[0] == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "minigpt.cli", "chat", "--out-dir", str(run), "--greedy", "--max-new-tokens", "6",
               "--backend", "numpy"]
    done = subprocess.run(command, input="210=\n\n012=\n", capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    assert len(done.stdout.splitlines()) == 2  # one reply a message (the blank line is skipped), then end of input
    waiting = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    waiting.stdin.write("210=\n")
    waiting.stdin.flush()
    assert waiting.stdout.readline().strip() == done.stdout.splitlines()[0].strip()  # its reply: waiting for a line
    waiting.send_signal(signal.SIGINT)
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 130 and err.strip() == "minigpt: interrupted"


def test_the_shakespeare_tasks_hold_out_the_last_lines_of_each_speaker_and_fit_the_default_context(shakespeare):
    from minigpt.data import record_tasks

    text = shakespeare.read_text(encoding="utf-8")
    records, n_val = record_tasks.speaker_records(text)
    train, val = records[:-n_val], records[-n_val:]
    assert {r["label"] for r in records} == set(record_tasks.SPEAKERS) and len(train) > 2000 and len(val) > 500
    cut = int(len(text) * 0.9)  # every line is from the text's training split ...
    assert all(text.find("\n" + r["text"] + "\n") < cut for r in records[:50])
    for speaker in record_tasks.SPEAKERS:  # ... and each speaker's held-out lines are the last fifth of the part
        part = [line for offset, s, lines in record_tasks.speeches(text) if s == speaker and offset < cut
                for line in lines if 0 < len(line) <= record_tasks.MAX_LINE]  # in the order of the text
        trained = [r["text"] for r in train if r["label"] == speaker]
        held = [r["text"] for r in val if r["label"] == speaker]
        assert trained + held == part and len(held) == len(part) - int(len(part) * 0.8)
    instruct, _ = record_tasks.speaker_instruct_records(text)
    assert max(len(r["prompt"]) + len(r["completion"]) + 1 for r in instruct) <= 65  # 64 inputs and their targets
