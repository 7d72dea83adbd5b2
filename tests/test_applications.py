"""The applications as tasks (minigpt/applications/tasks.py, evaluate.py): the prompts as the GPT-2 paper wrote them,
few-shot prompts fitted to the context, the training file `minigpt train --task NAME` writes, and `minigpt eval
--task NAME` end to end (a model fine-tuned here for a few steps, a random base model, the baselines), its numbers
those of minigpt.metrics on the predictions it writes. The records are tiny ones written here, in the shipped
layout (DATA / task / split.jsonl)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import TINY, cli, error_line, train
from minigpt import metrics
from minigpt.applications import evaluate, tasks
from minigpt.cli import main
from minigpt.config import GPTConfig
from minigpt.data.bpe import BPETokenizer
from minigpt.data.records import EOT, PLAIN
from minigpt.model import GPT

WORDS = ("return", "the", "sum", "of", "a", "list", "open", "file", "read", "line", "dios", "tierra", "cielo", "y")
LABELS = ("noun.artifact", "noun.person", "verb.motion")
SIZES = {"train": 12, "val": 3, "test": 4}
BLOCK = ["--block-size", "96"]  # (after TINY: the last wins) the tiny records, prompt and answer, fit


def phrase(rng, n: int) -> str:
    return " ".join(rng.choice(WORDS, size=n))


def record(task: str, rng, k: int) -> dict:
    """A tiny record of the task, from WORDS (so that a character vocabulary made from the training file reads every
    split)."""
    if task in ("docstring-summary", "bible-translation"):
        return {"id": f"r{k}", "source": phrase(rng, 5), "target": phrase(rng, 3)}
    if task == "wordnet-qa":
        return {"id": f"r{k}", "context": phrase(rng, 4), "question": phrase(rng, 3), "answer": phrase(rng, 2)}
    return {"id": f"r{k}", "text": phrase(rng, 4), "label": LABELS[k % len(LABELS)]}


def write_split(directory, task: str, split: str, records: list) -> None:
    (directory / task).mkdir(parents=True, exist_ok=True)
    (directory / task / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def data(tmp_path, monkeypatch):
    """Tiny records of every task in a directory of the shipped layout, made the tasks' data."""
    directory = tmp_path / "data"
    rng = np.random.default_rng(0)
    k = 0
    for task in tasks.TASKS:
        for split, size in SIZES.items():
            write_split(directory, task, split, [record(task, rng, k + i) for i in range(size)])
            k += size
    monkeypatch.setattr(tasks, "DATA", directory)
    return directory


def byte_model(block_size: int = 128, seed: int = 0) -> tuple[GPT, BPETokenizer]:
    """A random base model over the 256 bytes and <|endoftext|>: a tokenizer with no merges reads any text."""
    tokenizer = BPETokenizer({bytes([b]): b for b in range(256)})
    config = GPTConfig(vocab_size=257, block_size=block_size, n_layer=1, n_head=2, n_embd=16)
    return GPT(config, seed=seed, dtype=np.float64).eval(), tokenizer


# --- prompts and few-shot ----------------------------------------------------------------------------------------------

def test_the_prompts_are_the_gpt2_papers_and_the_answer_follows_a_space():
    summary = {"id": "json.dumps", "source": "Serialize obj.", "target": "Dump it."}
    assert tasks.TASKS["docstring-summary"].prompt(summary) == "Serialize obj.\nTL;DR:"
    assert tasks.TASKS["docstring-summary"].answer(summary) == " Dump it."
    verse = {"id": "John 3:16", "source": "Porque de tal manera {amó}", "target": "For God so loved"}
    assert tasks.TASKS["bible-translation"].prompt(verse) == "Spanish: Porque de tal manera {amó}\nEnglish:"
    qa = {"id": "crock.n.03", "context": "that's a crock", "question": 'What does "crock" mean?', "answer": "nonsense"}
    assert tasks.TASKS["wordnet-qa"].prompt(qa) == 'that\'s a crock\nQ: What does "crock" mean?\nA:'
    assert tasks.TASKS["wordnet-qa"].answer(qa) == " nonsense"
    category = {"id": "x", "text": "a thing made", "label": "noun.artifact"}
    assert tasks.TASKS["wordnet-category"].prompt(category) == "a thing made\nCategory:"
    assert tasks.TASKS["wordnet-category"].answer(category) == " artifact"


def test_labels_that_share_a_word_are_refused_for_a_multiple_choice():
    assert tasks.label_words(["noun.artifact", "verb.motion"]) == [" artifact", " motion"]
    with pytest.raises(ValueError, match="'noun.motion' and 'verb.motion' are both the word 'motion'"):
        tasks.label_words(["noun.motion", "verb.motion"])


@given(st.integers(0, 8), st.integers(0, 400))
@settings(max_examples=60)
def test_few_shot_takes_the_first_examples_of_the_fixed_draw_that_fit(shots, room):
    rng = np.random.default_rng(1)
    task = tasks.TASKS["docstring-summary"]
    train_records = [record(task.name, rng, k) for k in range(10)]
    target = record(task.name, rng, 99)
    text, k = tasks.few_shot(task, train_records, target, shots, len, room)  # (characters counted)
    blocks = [task.prompt(train_records[i]) + task.answer(train_records[i]) for i in tasks.shot_order(10)]
    assert text == "\n\n".join(blocks[:k] + [task.prompt(target)])
    assert k <= shots
    if k:
        assert len(text) <= room
    if k < min(shots, 10):  # one more would not fit
        assert len("\n\n".join(blocks[:k + 1] + [task.prompt(target)])) > room


def test_a_prompt_too_long_is_cut_on_the_left_to_its_longest_end_that_fits():
    text = "abcdefghij\nTL;DR:"
    fitted, cut = evaluate.fit(text, len, 8)
    assert (fitted, cut) == (text[-8:], True)
    assert evaluate.fit(text, len, 100) == (text, False)


# --- the records and the training file ----------------------------------------------------------------------------------

def test_a_malformed_record_is_named_by_its_file_and_line(data):
    path = data / "wordnet-qa" / "val.jsonl"
    good = json.loads(path.read_text().splitlines()[0])
    for bad, message in (({**good, "extra": "x"}, "has the keys"), ({**good, "answer": "  "}, "answer must be a non-empty"),
                         ({**good, "answer": 3}, "answer must be a non-empty")):
        path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(ValueError, match=f"{path} line 2: |{path} line 2 has") as e:
            tasks.read_split("wordnet-qa", "val")
        assert message in str(e.value) and "\n" not in str(e.value)
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ValueError, match="line 2: the id .* is there twice"):
        tasks.read_split("wordnet-qa", "val")
    with pytest.raises(ValueError, match="unknown split 'dev'; the splits are train, val, test"):
        tasks.read_split("wordnet-qa", "dev")
    with pytest.raises(ValueError, match="unknown task 'squad'"):
        tasks.read_split("squad", "val")
    with pytest.raises(FileNotFoundError, match="the wordnet-qa task's test split is not at"):
        tasks.read_split("wordnet-qa", "test", data / "nowhere")


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_the_training_file_is_the_training_records_then_the_validation_ones_held_out(data, name):
    path, n_val = tasks.build(name)
    written = [json.loads(line) for line in path.read_text().splitlines()]
    train_records, val = (tasks.read_split(name, split) for split in ("train", "val"))
    assert n_val == len(val) == SIZES["val"] and len(written) == SIZES["train"] + SIZES["val"]
    task = tasks.TASKS[name]
    for r, w in zip(train_records + val, written):
        if name == "wordnet-category":
            assert w == {"text": r["text"], "label": r["label"]}
        else:
            assert w == {"prompt": task.prompt(r), "completion": " " + r[task.answer_field]}
    assert tasks.build(name) == (path, n_val) and path.read_text() == "".join(json.dumps(w) + "\n" for w in written)


# --- scoring --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["docstring-summary", "bible-translation", "wordnet-qa"])
def test_a_base_models_answers_are_their_first_line_of_text_scored_by_the_tasks_metrics(data, name):
    model, tokenizer = byte_model(block_size=512)  # (room for two examples before the prompt)
    result = evaluate.evaluate_model(model, tokenizer, evaluate.Setting(name, shots=2), "random")
    task = tasks.TASKS[name]
    test = tasks.read_split(name, "test")
    assert result["format"] == "base" and result["shots_used"] == 2.0 and result["cut"] == 0
    assert result["ids"] == [r["id"] for r in test] and result["references"] == [r[task.answer_field] for r in test]
    assert all("\n" not in p for p in result["predictions"])
    for key, value in metrics.score(task.metrics, result["predictions"], result["references"]).items():
        assert result[key] == value
    # the first prediction by hand: greedy bytes after the few-shot prompt, their first line that holds text
    n = task.max_new_tokens  # (below half the context)
    text, _ = tasks.few_shot(task, tasks.read_split(name, "train"), test[0], 2, len, 512 - n)
    prompt = np.array([list(text.encode())])  # (1, P) the tokens are the bytes
    out = model.generate(prompt, n, do_sample=False)[0, prompt.shape[1]:]  # (n,)
    out = out[:list(out).index(256)] if 256 in out else out
    assert result["predictions"][0] == tokenizer.decode(out).strip().split("\n")[0].strip()


def test_a_base_model_classifies_by_the_label_word_of_lowest_loss(data):
    model, tokenizer = byte_model()
    result = evaluate.evaluate_model(model, tokenizer, evaluate.Setting("wordnet-category", limit=3), "random")
    assert result["format"] == "multiple choice" and result["records"] == 3
    assert set(result["predictions"]) <= set(LABELS)
    right = [p == r for p, r in zip(result["predictions"], result["references"])]
    assert result["accuracy"] == np.mean(right)
    record = tasks.read_split("wordnet-category", "test")[0]
    from minigpt.evaluation import choice_losses
    losses = choice_losses(model, tokenizer, record["text"] + "\nCategory:", [" artifact", " person", " motion"])
    assert result["predictions"][0] == LABELS[int(np.argmin(losses))]


def test_beam_search_answers_are_the_best_beam_to_the_first_newline_after_a_first_token(data):
    beam = pytest.importorskip("minigpt.beam")
    model, tokenizer = byte_model()
    result = evaluate.evaluate_model(model, tokenizer, evaluate.Setting("wordnet-qa", num_beams=3, limit=2), "random")
    record = tasks.read_split("wordnet-qa", "test")[0]
    prompt = np.array([list(tasks.TASKS["wordnet-qa"].prompt(record).encode())])  # (1, P)
    out = beam.beam_search(model, prompt, 64, 3, eos_token_ids=frozenset({256, 10}), min_new_tokens=1)  # (n,) (10: \n)
    assert result["num_beams"] == 3
    assert result["predictions"][0] == tokenizer.decode([t for t in out if t != 256]).strip().split("\n")[0].strip()


def test_few_shot_is_refused_to_a_fine_tuned_model(data):
    model, tokenizer = byte_model()
    fine_tuned = tokenizer.with_chat([EOT], PLAIN)
    with pytest.raises(ValueError, match="--shots 2: the model was fine-tuned .* drop it"):
        evaluate.evaluate_model(model, fine_tuned, evaluate.Setting("wordnet-qa", shots=2), "m")


def test_eval_task_on_a_model_fine_tuned_by_train_task(data, tmp_path, capsys):
    out = tmp_path / "summary"
    train("--task", "docstring-summary", "--out-dir", str(out), "--max-iters", "2", *TINY, *BLOCK)
    report = tmp_path / "summary.json"
    code, err = cli(capsys, "eval", "--task", "docstring-summary", "--out-dir", str(out), "--split", "val",
                    "--json", str(report))
    assert code == 0, err
    result = json.loads(report.read_text())
    assert {"task", "split", "shots", "num_beams", "baseline", "model", "records", "main_metric", "predictions",
            "references", "ids", "rouge1", "rouge2", "rougeL"} <= set(result)
    assert (result["task"], result["split"], result["format"], result["baseline"]) == \
        ("docstring-summary", "val", "fine-tuned", None)
    assert len(result["predictions"]) == result["records"] == SIZES["val"]
    assert {k: result[k] for k in ("rouge1", "rouge2", "rougeL")} == \
        metrics.score(("rouge",), result["predictions"], [r["target"] for r in tasks.read_split("docstring-summary", "val")])
    code, err = cli(capsys, "eval", "--task", "docstring-summary", "--out-dir", str(out), "--shots", "1")
    error_line(err, "--shots 1", "fine-tuned")


def test_eval_task_on_a_classifier_fine_tuned_by_train_task(data, tmp_path, capsys):
    out = tmp_path / "category"
    train("--task", "wordnet-category", "--out-dir", str(out), "--max-iters", "2", *TINY, *BLOCK)
    code, err = cli(capsys, "eval", "--task", "wordnet-category", "--out-dir", str(out), "--json", str(tmp_path / "c.json"))
    assert code == 0, err
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["format"] == "classifier" and set(result["predictions"]) <= set(LABELS)
    assert result["accuracy"] == np.mean([p == r for p, r in zip(result["predictions"], result["references"])])


def test_a_baseline_is_scored_without_a_model_and_its_signature_printed(data, tmp_path, capsys):
    from minigpt.applications.baselines import BASELINES

    capsys.readouterr()
    assert main(["eval", "--task", "bible-translation", "--baseline", "copy", "--out-dir", str(tmp_path / "no-model"),
                 "--json", str(tmp_path / "copy.json")]) == 0
    printed = capsys.readouterr().out.splitlines()
    result = json.loads((tmp_path / "copy.json").read_text())
    test = tasks.read_split("bible-translation", "test")
    copy = BASELINES["bible-translation"]["copy"]
    assert result["predictions"] == copy(tasks.read_split("bible-translation", "train"), test)
    expected = metrics.score(("bleu", "chrf"), result["predictions"], [r["target"] for r in test])
    assert {k: result[k] for k in expected} == expected and (result["model"], result["format"]) == (None, "baseline")
    assert ["setting", "baseline copy"] in [line.split(None, 1) for line in printed]
    assert printed[-2:] == [f"bleu_signature: {expected['bleu_signature']}",
                            f"chrf_signature: {expected['chrf_signature']}"]  # (under the table)
    assert any(line.startswith("bleu (main)") and line.endswith(f"{expected['bleu']:.4f}") for line in printed)


@pytest.mark.parametrize("argv, fragments", [
    (["--task", "wordnet-qa", "--baseline", "oracle"], ["--baseline 'oracle'", "frequent"]),
    (["--task", "wordnet-qa", "--split", "dev", "--baseline", "frequent"], ["--split 'dev'", "train, val, test"]),
    (["--task", "wordnet-qa", "--baseline", "frequent", "--shots", "2"], ["--baseline frequent", "--shots"]),
    (["--task", "wordnet-category", "--num-beams", "2"], ["--num-beams", "picks a label"]),
    (["--data", "x.jsonl", "--shots", "2"], ["--shots is for a task"]),
    ([], ["--data F.jsonl", "--task NAME"]),
])
def test_eval_task_refuses_in_one_line(data, capsys, argv, fragments):
    code, err = cli(capsys, "eval", *argv)
    assert code != 0
    error_line(err, *fragments)


def test_an_unknown_task_is_a_usage_error(capsys):
    code, err = cli(capsys, "eval", "--task", "squad")
    assert code == 2 and "invalid choice: 'squad'" in err
