"""`minigpt data pairs`: preference pairs from a task's shipped records and a model's answers (minigpt eval --task
--json), the reference chosen and the answer rejected; bad answer files refused in one line."""

import json

import pytest

from minigpt.applications import pairs
from minigpt.applications.tasks import read_split, task_named
from helpers import cli, error_line


def answers_file(tmp_path, task="bible-translation", split="val", n=6, **changes):
    records = read_split(task, split)[:n]
    definition = task_named(task)
    predictions = [r[definition.answer_field] if i % 3 == 0 else f"answer {i}" for i, r in enumerate(records)]
    result = {"task": task, "split": split, "baseline": None, "ids": [r["id"] for r in records],
              "references": [r[definition.answer_field] for r in records], "predictions": predictions, **changes}
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(result))
    return path, records


def test_each_answer_that_is_not_its_reference_makes_a_pair(tmp_path, capsys):
    path, records = answers_file(tmp_path)
    out = tmp_path / "pairs.jsonl"
    code, err = cli(capsys, "data", "pairs", "--answers", str(path), "--out", str(out))
    assert code == 0, err
    written = [json.loads(line) for line in out.read_text().splitlines()]
    task = task_named("bible-translation")
    expected = [{"prompt": task.prompt(r), "chosen": " " + r["target"], "rejected": f" answer {i}"}
                for i, r in enumerate(records) if i % 3 != 0]  # (every third answered as its reference: no pair)
    assert written == expected
    assert written[0]["prompt"].startswith("Spanish: ") and written[0]["prompt"].endswith("\nEnglish:")


def test_the_pairs_are_what_minigpt_train_method_dpo_reads(tmp_path):
    from minigpt.data.chars import CharTokenizer
    from minigpt.data.record_datasets import open_records

    path, _ = answers_file(tmp_path)
    out = tmp_path / "pairs.jsonl"
    out.write_text(pairs.to_jsonl(pairs.pairs(pairs.read_answers(path))))
    text = out.read_text(encoding="utf-8")
    dataset = open_records(out, CharTokenizer.from_text(text))
    assert dataset.kind == "preference" and len(dataset.examples) == 4


@pytest.mark.parametrize("changes, fragment", [
    ({"task": "wordnet-category"}, "a classification task"),
    ({"predictions": ["x"]}, "not as many as each other"),
    ({"ids": ["no such id"] * 6}, "has no record 'no such id'"),
    ({"references": [1] * 6}, "must be strings"),
])
def test_a_bad_answers_file_is_refused_in_one_line(tmp_path, capsys, changes, fragment):
    path, _ = answers_file(tmp_path, **changes)
    code, err = cli(capsys, "data", "pairs", "--answers", str(path), "--out", str(tmp_path / "pairs.jsonl"))
    assert code != 0
    error_line(err, fragment)
    assert not (tmp_path / "pairs.jsonl").exists()


def test_answers_that_all_match_make_no_file(tmp_path, capsys):
    records = read_split("bible-translation", "val")[:3]
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"task": "bible-translation", "split": "val", "ids": [r["id"] for r in records],
                                "references": [r["target"] for r in records],
                                "predictions": [r["target"] for r in records]}))
    code, err = cli(capsys, "data", "pairs", "--answers", str(path), "--out", str(tmp_path / "pairs.jsonl"))
    error_line(err, "there is no pair to prefer")
    assert not (tmp_path / "pairs.jsonl").exists()
