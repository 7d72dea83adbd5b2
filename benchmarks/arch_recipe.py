"""GPT-2 against Llama and Qwen 3 on the Shakespeare recipe: same parameters (within 5%), same steps, same evaluation.

    python benchmarks/arch_recipe.py                          # 3 architectures x 3 seeds: about 40 minutes on 2 cores
    python benchmarks/arch_recipe.py --seeds 1 2 --archs gpt2 llama

Each run is `minigpt train --arch A --seed S` with every other setting at its default (nanoGPT's CPU recipe:
4 layers, 4 heads, C = 128, T = 64, B = 12, 2000 steps, AdamW at 1e-3 with cosine decay). The evaluation
batches depend on the seed only (200 batches a split, drawn from `[seed, 2, i]`), so two architectures with
the same seed are scored on the same tokens and the difference per seed is a paired one. Prints one Markdown
table: the final validation loss of each run, the mean and spread per architecture, and the paired difference
from GPT-2.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
import time
from pathlib import Path

from bench import cpu_name

HERE = Path(__file__).resolve().parent


def find_data() -> Path:
    path = Path(os.environ.get("MINIGPT_DATA") or HERE.parents[1] / "shared" / "data" / "tinyshakespeare.txt")
    if not path.is_file():
        sys.exit(f"Tiny Shakespeare not found at {path}; set MINIGPT_DATA")
    return path


def num_params(arch: str) -> int:
    from minigpt import GPT
    from minigpt.config import recipe_model

    return GPT(replace(recipe_model(arch=arch), vocab_size=65)).num_params()


def train(arch: str, seed: int, work: Path, threads: int | None) -> dict:
    out = work / f"{arch}-{seed}"
    cmd = [str(Path(sys.executable).parent / "minigpt"), "train", "--data", str(find_data()), "--out-dir", str(out),
           "--arch", arch, "--seed", str(seed)] + (["--threads", str(threads)] if threads else [])
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    evals = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "val_loss" in r]
    return {"val_loss": evals[-1]["val_loss"], "train_loss": evals[-1]["train_loss"], "wall": wall}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["gpt2", "llama", "qwen3"], choices=["gpt2", "llama", "qwen3"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}\n", flush=True)
    results = {arch: {} for arch in args.archs}
    with tempfile.TemporaryDirectory(prefix="minigpt-arch-") as tmp:
        for seed in args.seeds:  # alternate architectures within a seed, so a slow spell hits all of them
            for arch in args.archs:
                results[arch][seed] = r = train(arch, seed, Path(tmp), args.threads)
                print(f"{arch} seed {seed}: val {r['val_loss']:.4f}, train {r['train_loss']:.4f}, {r['wall']:.0f} s",
                      file=sys.stderr, flush=True)
    base = "gpt2" if "gpt2" in args.archs else args.archs[0]
    print("| arch | parameters | val loss: seeds " + ", ".join(map(str, args.seeds))
          + f" | mean ± sd | below {base}'s, per seed (mean) | wall time per run (s) |")
    print("|---|---|---|---|---|---|")
    for arch in args.archs:
        losses = [results[arch][s]["val_loss"] for s in args.seeds]
        gains = [results[base][s]["val_loss"] - results[arch][s]["val_loss"] for s in args.seeds]
        spread = statistics.stdev(losses) if len(losses) > 1 else 0.0
        walls = statistics.median(results[arch][s]["wall"] for s in args.seeds)
        print(f"| {arch} | {num_params(arch):,} | " + ", ".join(f"{v:.4f}" for v in losses)
              + f" | {statistics.mean(losses):.4f} ± {spread:.4f} | "
              + ", ".join(f"{g:.3f}" for g in gains) + f" ({statistics.mean(gains):.3f}) | {walls:.0f} |")

if __name__ == "__main__":
    main()
