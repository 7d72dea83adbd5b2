"""Who says the line? The shakespeare-speakers task (minigpt/data/record_tasks.py) scored on its held-out lines by:

    majority         the most frequent speaker of the training lines, always
    bag of words     naive Bayes on lowercased words, add-one smoothing: a baseline in a few lines
    from scratch     `minigpt train --task shakespeare-speakers`: the recipe's model, trained on the labels alone
    fine-tuned       the same, --init-from a model pretrained by `minigpt train` (nanoGPT's recipe) on the text

    python benchmarks/speakers.py [--pretrained out] [--seeds 1337 1338 1339]

Without --pretrained, the pretrained model is trained first (the default `minigpt train`, a few minutes). Each
model is scored by `minigpt eval` on the held-out lines: accuracy and macro F1. Results: docs/finetuning.md.
"""

import argparse
import collections
import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from minigpt.data import record_tasks
from minigpt.data.text import find_text


def words(line: str) -> list:
    return re.findall(r"[a-z']+", line.lower())


def naive_bayes(train: list, val: list) -> np.ndarray:
    """The predicted speaker of each held-out line: argmax of log P(speaker) + sum log P(word | speaker)."""
    counts = collections.defaultdict(collections.Counter)
    for speaker, line in train:
        counts[speaker].update(words(line))
    prior = collections.Counter(speaker for speaker, _ in train)
    vocab = {w for c in counts.values() for w in c}
    speakers = sorted(prior)

    def score(speaker, line):
        total = sum(counts[speaker].values())
        return math.log(prior[speaker]) + sum(math.log((counts[speaker][w] + 1) / (total + len(vocab))) for w in words(line))

    return [max(speakers, key=lambda s: score(s, line)) for _, line in val]


def scores(predicted: list, truth: list) -> dict:
    from minigpt.evaluation import classification_scores

    labels = sorted(set(truth))
    index = {name: i for i, name in enumerate(labels)}
    s = classification_scores(np.array([index.get(p, -1) for p in predicted]), np.array([index[t] for t in truth]), labels)
    return {"accuracy": s["accuracy"], "macro_f1": s["macro_f1"]}


def minigpt(*args) -> None:
    subprocess.run([sys.executable, "-m", "minigpt.cli", *args], check=True)


def evaluate(run: Path, data: Path) -> dict:
    out = run / "eval.json"
    minigpt("eval", "--out-dir", str(run), "--data", str(data), "--json", str(out))
    result = json.loads(out.read_text())
    return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrained", help="a run of `minigpt train` on Tiny Shakespeare (default: train one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337])
    parser.add_argument("--data", help="Tiny Shakespeare (default: found as minigpt train finds it)")
    args = parser.parse_args()
    text_path = find_text(args.data)
    train, val = record_tasks.shakespeare_lines(text_path.read_text(encoding="utf-8"))
    truth = [speaker for speaker, _ in val]
    majority = collections.Counter(s for s, _ in train).most_common(1)[0][0]
    rows = {"majority": [scores([majority] * len(val), truth)], "bag of words": [scores(naive_bayes(train, val), truth)]}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        held_out = tmp / "held-out.jsonl"
        held_out.write_text("".join(json.dumps({"text": line, "label": s}) + "\n" for s, line in val))
        pretrained = args.pretrained
        if pretrained is None:
            pretrained = str(tmp / "pretrained")
            minigpt("train", "--data", str(text_path), "--out-dir", pretrained)
        for seed in args.seeds:
            for name, extra in (("from scratch", []), ("fine-tuned", ["--init-from", pretrained])):
                run = tmp / f"{name.replace(' ', '-')}-{seed}"
                minigpt("train", "--task", "shakespeare-speakers", "--data", str(text_path), "--out-dir", str(run),
                        "--seed", str(seed), *extra)
                rows.setdefault(name, []).append(evaluate(run, held_out))
    print(f"{len(train)} training lines, {len(val)} held out, {len(set(truth))} speakers; seeds {args.seeds}")
    print(f"{'':<14} {'accuracy':>16} {'macro F1':>16}")
    for name, results in rows.items():
        acc = [r["accuracy"] for r in results]
        f1 = [r["macro_f1"] for r in results]
        spread = lambda v: f"{np.mean(v):.3f}" + (f" ± {np.std(v):.3f}" if len(v) > 1 else "")  # noqa: E731
        print(f"{name:<14} {spread(acc):>16} {spread(f1):>16}")


if __name__ == "__main__":
    main()
