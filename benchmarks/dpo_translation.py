"""DPO on real data, demonstrated: the bible-translation task's fine-tuned model (minigpt applications' "full" run),
its own greedy translations of training verses rejected and the King James references chosen, then
`minigpt train --method dpo` from it; the preference accuracy on held-out pairs (validation verses, made the same
way) and the test split's BLEU, before and after.

    python benchmarks/dpo_translation.py --sft applications/runs/bible-translation.full --out dpo-translation
    python benchmarks/dpo_translation.py --sft ... --out rpo-translation --flags "... --rpo-alpha 1"   # RPO

Every step is a `minigpt` command as a user would type it, printed with its time. Results: docs/preference.md.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def minigpt(*args) -> float:
    """`minigpt ARGS` as a user runs it; its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "minigpt.cli", *map(str, args)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sft", required=True, help="the fine-tuned translation model (a run directory)")
    parser.add_argument("--out", required=True, help="a directory for the pairs, the run and the scores")
    parser.add_argument("--pairs", type=int, default=1000, help="training verses answered, to make pairs of")
    parser.add_argument("--flags", default="--max-iters 150 --batch-size 8 --learning-rate 2e-5 --min-lr 2e-6 "
                                           "--warmup-iters 15 --weight-decay 0 --dpo-beta 0.1 --eval-interval 50 "
                                           "--eval-iters 10",
                        help="the DPO run's flags")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    times, said = {}, []

    def step(name: str, *command) -> None:
        times[name] = minigpt(*command)
        said.append(f"| {name} | `minigpt {' '.join(map(str, command))}` | {times[name]:.0f} s |")

    for split, limit in (("train", args.pairs), ("val", None)):
        answers = out / f"{split}-answers.json"
        step(f"{split} answers", "eval", "--task", "bible-translation", "--split", split, "--out-dir", args.sft,
             *(["--limit", limit] if limit else []), "--json", answers)
        step(f"{split} pairs", "data", "pairs", "--answers", answers, "--out", out / f"{split}-pairs.jsonl")
    step("DPO", "train", "--method", "dpo", "--data", out / "train-pairs.jsonl", "--init-from", args.sft,
         "--truncate", *args.flags.split(), "--out-dir", out / "dpo")
    scores = {}
    for name, model in (("before", args.sft), ("after", out / "dpo")):
        step(f"preference, {name}", "eval", "--out-dir", model, "--data", out / "val-pairs.jsonl", "--truncate",
             "--json", out / f"preference-{name}.json")
        step(f"BLEU, {name}", "eval", "--task", "bible-translation", "--out-dir", model, "--json",
             out / f"bleu-{name}.json")
        scores[name] = {"preference": json.loads((out / f"preference-{name}.json").read_text()),
                        "bleu": json.loads((out / f"bleu-{name}.json").read_text())}
    print("| | held-out preference accuracy | log-prob margin (nats) | test BLEU | chrF |")
    print("|---|---:|---:|---:|---:|")
    for name, s in scores.items():
        print(f"| {name} DPO | {s['preference']['preference_accuracy']:.3f} | {s['preference']['logp_margin']:.2f} | "
              f"{s['bleu']['bleu']:.2f} | {s['bleu']['chrf']:.2f} |")
    print(f"held-out pairs: {scores['before']['preference']['records']}")
    print("\n| step | command | time |\n|---|---|---:|")
    print("\n".join(said))


if __name__ == "__main__":
    main()
