"""Preference pairs from an application's records and a model's own answers: the reference preferred to the model's
answer wherever the two differ, the data `minigpt train --method dpo` learns from (docs/preference.md).

    minigpt eval --task bible-translation --split train --out-dir sft --json answers.json
    minigpt data pairs --answers answers.json --out pairs.jsonl
    minigpt train --method dpo --data pairs.jsonl --init-from sft --truncate

A pair's prompt and completions are the task's fine-tuning record's (minigpt/applications/tasks.py: "Spanish: ...
\\nEnglish:" and " the answer"), so that the fine-tuned model reads them as it was trained to. Tests:
tests/test_pairs.py.
"""

import json

from minigpt.applications.tasks import read_split, task_named
from minigpt.validate import check_object, read_json


def read_answers(path) -> dict:
    """`minigpt eval --task NAME --json FILE`'s result, checked: its task, split, and the ids, references and
    predictions of its records, one each."""
    result = check_object(read_json(path), path, {"task": str, "split": str, "ids": list, "references": list,
                                                   "predictions": list, "baseline": (str, None)})
    for key in ("task", "split", "ids", "references", "predictions"):
        if key not in result:
            raise ValueError(f"{path} has no {key!r}: give the JSON file of minigpt eval --task NAME --json FILE")
    if not len(result["ids"]) == len(result["references"]) == len(result["predictions"]):
        raise ValueError(f"{path}: ids, references and predictions are not as many as each other; the file is damaged")
    if any(not isinstance(v, str) for key in ("ids", "references", "predictions") for v in result[key]):
        raise ValueError(f"{path}: ids, references and predictions must be strings; the file is damaged")
    if task_named(result["task"]).application == "classification":
        raise ValueError(f"{path} scores {result['task']}, a classification task, whose answers are labels: pairs are "
                         f"made of generated text (summaries, translations, answers)")
    return result


def pairs(answers: dict) -> list[dict]:
    """{"prompt", "chosen", "rejected"} for each record the model answered otherwise than its reference: the task's
    prompt, the reference's completion, the model's."""
    task = task_named(answers["task"])
    by_id = {r["id"]: r for r in read_split(task.name, answers["split"])}
    out = []
    for i, reference, prediction in zip(answers["ids"], answers["references"], answers["predictions"]):
        if i not in by_id:
            raise ValueError(f"the {task.name} task's {answers['split']} split has no record {i!r}: the answers are "
                             f"not of the data minigpt ships")
        record = by_id[i]
        if prediction.strip() and prediction.strip() != reference.strip():
            out.append({"prompt": task.prompt(record), "chosen": task.answer(record),
                        "rejected": " " + prediction.strip()})
    return out


def to_jsonl(records: list) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
