"""Evaluation beyond the training loss, on records (minigpt/data/records.py), as `minigpt eval` reports it:

    instruction      mean loss and perplexity on the completions' tokens; exact match of greedy completions
    classification   accuracy, and each class's precision, recall and F1 (macro F1: their mean)
    multiple choice  pick the ending with the lowest mean loss per token, as HellaSwag is scored; accuracy

Every number is computed over the records given, in batches whose padding changes nothing (causal attention).
Docs: docs/finetuning.md. Tests: tests/test_records.py.
"""

import math

import numpy as np

from minigpt import interrupt
from minigpt.data.records import stop_tokens
from minigpt.data.text import encode_text
from minigpt.ops.cross_entropy import IGNORE_INDEX

BATCH = 64


def batches(items: list, size: int = BATCH):
    """The items, `size` at a time; a stop (Ctrl-C, SIGTERM, SIGHUP) is acted on between two (interrupt.check)."""
    for i in range(0, len(items), size):
        interrupt.check()
        yield items[i:i + size]


def completion_loss(model, records, examples: list) -> dict:
    """Mean cross-entropy per completion token over the examples, and its exponential, the perplexity."""
    total, count = 0.0, 0
    for group in batches(examples):
        x, y = records.batch(group)
        n = int((y != IGNORE_INDEX).sum())
        total += model.forward(x, y, keep_cache=False)[1] * n
        count += n
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}


def split_last_turn(example, stops: set) -> tuple:
    """(prompt ids, expected ids) of an instruction example: everything before its last trained run of tokens, and
    that run up to and including its first stop token (what greedy decoding must produce before it stops)."""
    trained = example.trained
    end = len(trained) - int(np.argmax(trained[::-1]))  # one past the last trained token
    start = end
    while start > 0 and trained[start - 1]:
        start -= 1
    expected = example.ids[start:end]
    for i, t in enumerate(expected):
        if int(t) in stops:
            expected = expected[:i + 1]
            break
    return example.ids[:start], expected


def exact_match(model, records, examples: list) -> float:
    """The fraction of examples whose greedy completion is exactly the expected one, stop token included: prompts of
    one length are decoded together."""
    stops = stop_tokens(records.tokenizer)
    by_length = {}
    for e in examples:
        prompt, expected = split_last_turn(e, stops)
        by_length.setdefault(len(prompt), []).append((prompt, expected))
    correct = 0
    for pairs in by_length.values():
        for group in batches(pairs, 256):
            prompts = np.stack([p for p, _ in group])  # (b, P)
            n = max(len(e) for _, e in group)
            n = min(n, model.config.block_size - prompts.shape[1])
            out = model.generate(prompts, n, do_sample=False)[:, prompts.shape[1]:]  # (b, n)
            correct += sum(len(e) <= n and np.array_equal(o[:len(e)], e) for o, (_, e) in zip(out, group))
    return correct / len(examples)


def predictions(model, records, examples: list) -> np.ndarray:
    """A classifier's label for each example: the argmax of its scores."""
    out = []
    for group in batches(examples):
        x, _, last, _ = records.batch(group)
        scores, _ = model.forward(x, keep_cache=False, last=last)  # (b, K)
        out.append(np.argmax(scores, axis=1))
    return np.concatenate(out)


def classification(model, records, examples: list) -> dict:
    """Accuracy, each class's precision, recall and F1, and macro F1, of the classifier on the examples."""
    predicted = predictions(model, records, examples)  # (N,)
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


def held_out_accuracy(model, records, limit: int = 256) -> float:
    """What a run on records reports at each evaluation: the classifier's accuracy on every held-out record, or the
    exact match of greedy completions on the first `limit` of them."""
    if records.kind == "classification":
        return classification(model, records, records.splits["val"])["accuracy"]
    return exact_match(model, records, records.splits["val"][:limit])


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
