"""A model, or a baseline, scored on a task's split (minigpt/applications/tasks.py): what `minigpt eval --task NAME`
prints and writes.

    result = evaluate_model(model, tokenizer, Setting("docstring-summary", shots=3), "out")
    result = evaluate_baseline(Setting("docstring-summary", baseline="lead"))
    print(table(result))

How a model answers, by what it is:
    a base model          the zero-shot prompt, or few-shot with shots > 0; its answer is the first line it writes
                          that holds text, leading blank lines skipped
                          (the GPT-2 paper's convention: the next line is the next document) or an end token
    fine-tuned            a model whose tokenizer holds minigpt's plain template (it was fine-tuned on prompt and
                          completion records, as `minigpt train --task NAME` makes them) answers the zero-shot prompt,
                          which is the format it learned, and ends at its stop tokens (minigpt/data/records.py); it is
                          refused shots, a format it never saw (examples with no end token between them)
    a classifier          a model with a classifier's head (fine-tuned on the category task) predicts a label; a
                          language model is asked a multiple choice between the labels' words instead, the one of
                          lowest mean loss after the prompt (minigpt.evaluation.choice_losses)
Answers are greedy (prompts of one length decoded together), or beam search with num_beams > 1 (minigpt/beam.py).
A prompt longer than the context less the answer's room is cut on the left, keeping its end (the question), and
counted. The metrics: minigpt/metrics.py; accuracy and macro F1: minigpt.evaluation.classification_scores. The
baselines: minigpt/applications/baselines.py. Tests: tests/test_applications.py. Docs: docs/applications.md.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from minigpt import evaluation, metrics
from minigpt.applications.tasks import SPLITS, Task, few_shot, label_words, read_split, task_named
from minigpt.data.record_datasets import batches, dataset_of
from minigpt.data.records import PLAIN, RecordFile, stop_tokens
from minigpt.data.text import encode_text


# the numbers a result may hold, in the order a table shows them: ROUGE, BLEU and chrF, SQuAD's (x 100), a
# classification's (fractions); and the signatures sacreBLEU asks to print with its scores
METRICS = ("rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "f1", "accuracy", "macro_f1")
SIGNATURES = ("bleu_signature", "chrf_signature")


class Setting(NamedTuple):
    """What is scored, and how."""
    task: str
    split: str = "test"
    shots: int = 0  # training examples before each prompt (a base model's few-shot)
    num_beams: int = 1  # 1: greedy
    baseline: str | None = None  # a baseline's name instead of a model
    limit: int | None = None  # score the split's first `limit` records only
    data_dir: Path | None = None  # the tasks' records (None: the shipped ones)


def check(setting: Setting) -> Task:
    """The setting's task, every field checked as its flag, in one line each."""
    task = task_named(setting.task)
    if setting.split not in SPLITS:
        raise ValueError(f"--split {setting.split!r}: the splits are {', '.join(SPLITS)}")
    if setting.shots < 0:
        raise ValueError(f"--shots must be 0 or more, got {setting.shots}")
    if setting.num_beams < 1:
        raise ValueError(f"--num-beams must be 1 or more, got {setting.num_beams}")
    if setting.limit is not None and setting.limit < 1:
        raise ValueError(f"--limit must be 1 or more, got {setting.limit}")
    if task.application == "classification" and setting.num_beams > 1:
        raise ValueError(f"--num-beams: the {task.name} task picks a label, and generates nothing to search; drop it")
    if setting.baseline is not None and (setting.shots or setting.num_beams > 1):
        raise ValueError(f"--baseline {setting.baseline} scores the baseline's predictions, not a model's: drop "
                         f"{'--shots' if setting.shots else '--num-beams'}")
    return task


def scored(task: Task, setting: Setting, records: list, train: list, predictions: list, model: str | None) -> dict:
    """The result of predictions for records: the setting, the metrics, and every prediction beside its id and
    reference (a report shows examples from them)."""
    references = [r[task.answer_field] for r in records]
    result = {"task": task.name, "application": task.application, "split": setting.split, "shots": setting.shots,
              "num_beams": setting.num_beams, "baseline": setting.baseline, "model": model, "records": len(records),
              "main_metric": task.main}
    result.update(metrics_of(task, predictions, references, train))
    result.update({"ids": [r["id"] for r in records], "references": references, "predictions": predictions})
    return result


def metrics_of(task: Task, predictions: list, references: list, train: list) -> dict:
    """The task's metrics: minigpt.metrics.score's, or for classification accuracy, macro F1 and each class's, over
    the labels of the training split and the references (a prediction that is none of them is wrong)."""
    if task.application != "classification":
        return metrics.score(task.metrics, predictions, references)
    labels = sorted({r["label"] for r in train} | set(references))
    index = {label: k for k, label in enumerate(labels)}
    predicted = np.array([index.get(p, -1) for p in predictions])  # (N,)
    truth = np.array([index[r] for r in references])  # (N,)
    return evaluation.classification_scores(predicted, truth, labels)


def evaluate_baseline(setting: Setting) -> dict:
    """A baseline's predictions for the split, learnt from the training split, scored."""
    from minigpt.applications.baselines import BASELINES

    task = check(setting)
    known = BASELINES[task.name]
    if setting.baseline not in known:
        raise ValueError(f"--baseline {setting.baseline!r}: the {task.name} task's baselines are {', '.join(known)}")
    records, train = read(task, setting)
    result = scored(task, setting, records, train, list(known[setting.baseline](train, records)), None)
    result.update({"format": "baseline", "cut": 0, "shots_used": 0.0})  # (the keys of a model's result)
    return result


def read(task: Task, setting: Setting) -> tuple[list, list]:
    """The records scored (the first `limit` of the split), and the training split."""
    records = read_split(task.name, setting.split, setting.data_dir)[:setting.limit]
    return records, read_split(task.name, "train", setting.data_dir)


def evaluate_model(model, tokenizer, setting: Setting, model_name: str, say=lambda line: None) -> dict:
    """The model's answers to the split, scored; say() is told what was cut to fit the context."""
    task = check(setting)
    if setting.baseline is not None:
        raise ValueError("a baseline is scored without a model: evaluate_baseline")
    records, train = read(task, setting)
    fine_tuned = tokenizer.chat_template == PLAIN  # (saved with the tokenizer by a fine-tune on such records)
    classifier = model.config.labels is not None
    if classifier and task.application != "classification":
        raise ValueError(f"the model is a classifier (its head predicts {len(model.config.labels)} labels), and the "
                         f"{task.name} task asks for text: give a language model")
    if setting.shots and (fine_tuned or classifier):
        what = "a classifier" if classifier else "on prompt and completion records"
        raise ValueError(f"--shots {setting.shots}: the model was fine-tuned ({what}) to answer without examples, "
                         f"which would be a format it never saw; give --shots to a base model, or drop it")
    count = lambda text: len(encode_text(tokenizer, text))  # noqa: E731
    if classifier:
        predictions, used, cut = classify(model, tokenizer, task, records), [], 0
        form = "classifier"
    elif task.application == "classification":
        predictions, used, cut = choose(model, tokenizer, task, records, train, setting.shots, count)
        form = "multiple choice"
    else:
        predictions, used, cut = answer(model, tokenizer, task, records, train, setting, fine_tuned, count)
        form = "fine-tuned" if fine_tuned else "base"
    if cut:
        say(f"{cut} of the {len(records)} prompts are longer than the model's context of {model.config.block_size} "
            f"tokens less the answer's room: each was cut on the left, its end kept")
    result = scored(task, setting, records, train, predictions, model_name)
    result.update({"format": form, "cut": cut, "shots_used": float(np.mean(used)) if used else 0.0})
    return result


def fit(text: str, count, room: int) -> tuple[str, bool]:
    """The text, or the longest end of it that fits `room` tokens (cut at a character, found by a binary search), and
    whether it was cut."""
    if count(text) <= room:
        return text, False
    lo, hi = 1, len(text)  # (hi: the empty text, which fits)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if count(text[mid:]) <= room else (mid + 1, hi)
    return text[lo:], True


def prompts_of(task: Task, records: list, train: list, shots: int, count, room: int) -> tuple[list, list, int]:
    """Each record's prompt (few-shot with shots > 0) within `room` tokens, the examples each shows, and how many
    were cut to fit."""
    texts, used, cut = [], [], 0
    for record in records:
        text, k = few_shot(task, train, record, shots, count, room) if shots else (task.prompt(record), 0)
        text, was_cut = fit(text, count, room)
        texts.append(text)
        used.append(k)
        cut += was_cut
    return texts, used, cut


def answer(model, tokenizer, task: Task, records: list, train: list, setting: Setting, fine_tuned: bool,
           count) -> tuple[list, list, int]:
    """The model's generated answers: greedy, or beam search."""
    n = min(task.max_new_tokens, model.config.block_size // 2)  # (room for the answer, and for the prompt)
    texts, used, cut = prompts_of(task, records, train, setting.shots, count, model.config.block_size - n)
    prompts = [encode_text(tokenizer, text) for text in texts]  # each (P,)
    stops = stop_tokens(tokenizer)
    newline = encode_text(tokenizer, "\n")
    ends = stops if fine_tuned or len(newline) != 1 else stops | {int(newline[0])}  # (beams finish on them)
    # (a base model's beam may not end before its first token: an answer that is only a newline says nothing)
    outputs = (beams(model, prompts, n, setting.num_beams, ends, int(not fine_tuned)) if setting.num_beams > 1
               else greedy(model, prompts, n))
    predictions = []
    for out in outputs:
        stop = next((i for i, t in enumerate(out) if int(t) in stops), len(out))
        text = tokenizer.decode(out[:stop])
        predictions.append((text if fine_tuned else text.strip().split("\n", 1)[0]).strip())
    return predictions, used, cut


def greedy(model, prompts: list, n: int) -> list:
    """Each prompt's n greedy tokens, (n,) each; prompts of one length are decoded together."""
    by_length = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(i)
    outputs = [None] * len(prompts)
    for length, indices in by_length.items():
        for group in batches(indices):
            x = np.stack([prompts[i] for i in group])  # (b, P)
            new = model.generate(x, n, do_sample=False)[:, length:]  # (b, n)
            for i, out in zip(group, new):
                outputs[i] = out
    return outputs


def beams(model, prompts: list, n: int, num_beams: int, ends: set, min_new_tokens: int) -> list:
    """Each prompt's best beam (minigpt/beam.py), ended by a token of `ends` (not before min_new_tokens) or at n
    tokens."""
    from minigpt.beam import beam_search

    outputs = []
    for group in batches(prompts, 1):  # (a stop is acted on between two prompts)
        outputs.append(beam_search(model, group[0][None, :], n, num_beams, eos_token_ids=frozenset(ends),
                                   min_new_tokens=min_new_tokens))
    return outputs


def choose(model, tokenizer, task: Task, records: list, train: list, shots: int, count) -> tuple[list, list, int]:
    """A language model's label for each record: the label whose word has the lowest mean loss after the prompt."""
    labels = sorted({r["label"] for r in train})
    words = label_words(labels)
    room = model.config.block_size - max(count(word) for word in words)
    texts, used, cut = prompts_of(task, records, train, shots, count, room)
    predictions = []
    for group in batches(texts, 1):
        losses = evaluation.choice_losses(model, tokenizer, group[0], words)
        predictions.append(labels[int(np.argmin(losses))])
    return predictions, used, cut


def classify(model, tokenizer, task: Task, records: list) -> list:
    """A fine-tuned classifier's label for each record (its head, minigpt/data/record_datasets.py), a text too long
    for its context cut before its end as `minigpt train --truncate` cuts it."""
    file = RecordFile(Path(f"the {task.name} task"), {}, [(n, {"text": r["text"], "label": r["label"]})
                                                            for n, r in enumerate(records, start=1)], "classification")
    dataset = dataset_of(file, tokenizer, model.config.labels)
    dataset.fit_examples(model.config.block_size, truncate=True)
    return [model.config.labels[k] for k in dataset.predict(model, dataset.examples)]


def table(result: dict) -> str:
    """The result as `minigpt eval` prints it: the setting, then each number; the signatures of sacreBLEU's metrics
    below the table, as papers are asked to print them."""
    if result["baseline"] is not None:
        setting = f"baseline {result['baseline']}"
    else:
        weights = f", {result['quantize']} weights" if result.get("quantize") else ""  # (minigpt eval --quantize)
        setting = (f"{result['model']} ({result['format']}, {result['shots']} shots, {result['num_beams']} beams"
                   f"{weights})")
    rows = [("task", result["task"]), ("split", result["split"]), ("setting", setting),
            ("records", str(result["records"]))]
    for key in METRICS:
        if key in result:
            rows.append((key + (" (main)" if key == result["main_metric"] else ""), f"{result[key]:.4f}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines + [f"{key}: {result[key]}" for key in SIGNATURES if key in result])
