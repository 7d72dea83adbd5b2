"""Evaluation beyond the training loss, on records (minigpt/data/records.py), as `minigpt eval` reports it:

    instruction      mean loss and perplexity on the completions' tokens; exact match of greedy completions
    classification   accuracy, and each class's precision, recall and F1 (macro F1: their mean)
    multiple choice  pick the ending with the lowest mean loss per token, as HellaSwag is scored; accuracy
    preference       the fraction of pairs whose chosen completion the model gives the higher log-probability, and the
                     mean difference of the two (docs/preference.md)

Every number is computed over the records given, in batches whose padding changes nothing (causal attention). The
exact match and the classifier's predictions are the records' own (minigpt/data/record_datasets.py), as a run's
evaluation reports them. Docs: docs/finetuning.md. Tests: tests/test_records.py.
"""

import math

import numpy as np

from minigpt import interrupt
from minigpt.data.record_datasets import Classification, Instructions, Preferences, batches
from minigpt.data.text import encode_text
from minigpt.ops.cross_entropy import IGNORE_INDEX


def completion_loss(model, records: Instructions, examples: list) -> dict:
    """Mean cross-entropy per completion token over the examples, and its exponential, the perplexity."""
    total, count = 0.0, 0
    for group in batches(examples):
        batch = records.batch(group)
        total += model.forward(batch.x, batch.y, keep_cache=False)[1] * batch.loss_count
        count += batch.loss_count
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}


def preferences(model, records: Preferences, examples: list) -> dict:
    """The model's own preference on each pair: log pi(chosen) > log pi(rejected) (no reference needed, so that it
    means the same before and after DPO); and the mean of log pi(chosen) - log pi(rejected), in nats."""
    logp = records.scores(model, examples)  # (N, 2)
    return {"preference_accuracy": float(np.mean(logp[:, 0] > logp[:, 1])),
            "logp_margin": float(np.mean(logp[:, 0] - logp[:, 1]))}


def classification(model, records: Classification, examples: list) -> dict:
    """Accuracy, each class's precision, recall and F1, and macro F1, of the classifier on the examples."""
    predicted = records.predict(model, examples)  # (N,)
    truth = np.array([e.label for e in examples])  # (N,)
    return classification_scores(predicted, truth, records.labels)


def classification_scores(predicted: np.ndarray, truth: np.ndarray, labels) -> dict:
    """Accuracy, per-class precision, recall and F1 (0 where undefined), and macro F1, of predicted against truth."""
    per_class = {}
    for k, name in enumerate(labels):
        tp = int(np.sum((predicted == k) & (truth == k)))
        fp = int(np.sum((predicted == k) & (truth != k)))
        fn = int(np.sum((predicted != k) & (truth == k)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(np.sum(truth == k))}
    return {"accuracy": float(np.mean(predicted == truth)), "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
            "per_class": per_class}


def choice_losses(model, tokenizer, prompt: str, choices: list) -> list:
    """The mean loss per token of each ending after the prompt."""
    p = encode_text(tokenizer, prompt)
    losses = []
    for choice in choices:
        interrupt.check()
        c = encode_text(tokenizer, choice)
        if len(c) == 0:
            raise ValueError("a choice is empty")
        ids = np.concatenate([p, c])[None, :]  # (1, n)
        y = np.full(ids.shape[1] - 1, IGNORE_INDEX)
        y[len(p) - 1:] = c  # the ending's tokens, each predicted from everything before it
        losses.append(model.forward(ids[:, :-1], y[None, :], keep_cache=False)[1])
    return losses


def multiple_choice(model, tokenizer, records: list) -> dict:
    """Accuracy of picking the ending with the lowest mean loss, over records (line, {"prompt", "choices", "answer"})."""
    correct = 0
    for n, r in records:
        if not (isinstance(r["prompt"], str) and r["prompt"] and isinstance(r["choices"], list) and len(r["choices"]) >= 2
                and all(isinstance(c, str) for c in r["choices"]) and isinstance(r["answer"], int)
                and not isinstance(r["answer"], bool) and 0 <= r["answer"] < len(r["choices"])):
            raise ValueError(f"line {n}: a multiple-choice record has a non-empty prompt, two or more choices (strings) "
                             f"and answer, the index of the right one")
        try:
            losses = choice_losses(model, tokenizer, r["prompt"], r["choices"])
        except ValueError as e:
            raise ValueError(f"line {n}: {e}") from None
        correct += int(np.argmin(losses)) == r["answer"]
    return {"accuracy": correct / len(records)}
