"""The CPU speedrun, measured: `minigpt train --preset speedrun` against nanoGPT's own train.py on this machine.

    python benchmarks/speedrun.py                              # 3 seeds, 2 nanoGPT runs, in alternation: ~15 min
    python benchmarks/speedrun.py --seeds 1 --nanogpt-runs 1   # one of each
    python benchmarks/speedrun.py --flags --arch gpt2          # an ablation: the preset with flags on top

nanoGPT runs unmodified (../shared/anchors/nanoGPT, copied to a temporary directory) with its README's CPU recipe
(4 layers, 4 heads, 128 channels, context 64, batch 12, 2000 iterations, no dropout, no compile) and 200-batch
evaluations every 250 iterations: the evaluation on which its final validation loss is 1.919, the speedrun's target.
Each run's wall time is measured from the process's start to its end, start-up included. nanoGPT's time for its
2000 iterations without its evaluations and start-up (the mean of its printed iteration times, leaving out the
first and those that hold an evaluation, times 2000) is given too: a ratio against that is the most a faster
evaluation could claim. Prints the machine, the matmul peak, and one Markdown table; every
minigpt run must reach the target.
"""

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import cpu_name, find_data, minigpt_command, run_worker

HERE = Path(__file__).resolve().parent
ANCHORS = HERE.parents[1] / "shared" / "anchors"
TARGET = 1.919  # nanoGPT's final validation loss on this evaluation (200 batches)


def nanogpt_flags(iters: int = 2000, eval_iters: int = 200, eval_interval: int = 250) -> list:
    """nanoGPT's train.py arguments for its README's CPU recipe (4 layers, 4 heads, 128 channels, context 64, batch
    12, no dropout, no compile), run for `iters` iterations, every iteration's time printed."""
    return ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", f"--eval_iters={eval_iters}",
            "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
            f"--max_iters={iters}", f"--lr_decay_iters={max(iters, 2000)}", "--dropout=0.0",
            f"--eval_interval={eval_interval}"]


def prepare_nanogpt(work: Path, data: Path) -> Path:
    nano = work / "nanoGPT"
    shutil.copytree(ANCHORS / "nanoGPT", nano)
    shutil.copy(data, nano / "data" / "shakespeare_char" / "input.txt")
    subprocess.run([sys.executable, "data/shakespeare_char/prepare.py"], cwd=nano, check=True, capture_output=True)
    return nano


def run_nanogpt(nano: Path, work: Path) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "train.py", *nanogpt_flags(), f"--out_dir={work / 'nano-out'}"], cwd=nano,
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        sys.exit("nanoGPT failed: " + (r.stdout + r.stderr)[-2000:])
    # an iteration's printed time runs from the end of the one before: on an evaluation's iteration (every 250) it
    # holds the evaluation too, and the first holds PyTorch's warm-up; those are left out
    steps = [(int(i), float(t)) for i, t in re.findall(r"^iter (\d+): loss [\d.]+, time ([\d.]+)ms", r.stdout, re.M)]
    vals = [float(v) for v in re.findall(r"val loss ([\d.]+)", r.stdout)]
    alone = [t for i, t in steps if i > 0 and i % 250 != 0]
    return {"wall": wall, "train_only": statistics.mean(alone) * len(steps) / 1e3, "val_loss": vals[-1],
            "step_ms": statistics.median(alone)}


def run_minigpt(seed: int, data: Path, work: Path, flags: list) -> dict:
    out = work / f"minigpt-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    r = subprocess.run([minigpt_command(), "train", "--preset", "speedrun", "--data", str(data), "--out-dir", str(out),
                        "--seed", str(seed), *flags], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        sys.exit("minigpt failed: " + r.stderr[-2000:])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    last = [x for x in log if "val_loss" in x][-1]
    steps = [x["tokens_per_sec"] for x in log[20:]]
    tokens = 12 * 64  # (the preset's batch; only for the step time below)
    return {"wall": wall, "val_loss": last["val_loss"], "iter": last["iter"],
            "step_ms": statistics.median(tokens / s * 1e3 for s in steps) if steps else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1337, 1, 2])
    parser.add_argument("--nanogpt-runs", type=int, default=2)
    parser.add_argument("--flags", nargs=argparse.REMAINDER, default=[], help="added to the preset (an ablation)")
    args = parser.parse_args()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}", flush=True)
    peak = max(run_worker("peak", os.cpu_count())["gflops"] for _ in range(2))
    print(f"float32 matmul peak through NumPy (2048^3): {peak:.0f} GFLOP/s\n", flush=True)
    data = find_data()
    with tempfile.TemporaryDirectory(prefix="minigpt-speedrun-") as tmp:
        work = Path(tmp)
        nano = prepare_nanogpt(work, data)
        k = math.ceil(len(args.seeds) / max(args.nanogpt_runs, 1))  # nanoGPT first, then every k seeds
        order = []
        for i in range(0, len(args.seeds), k):
            order += [("nanogpt", None)] + [("minigpt", s) for s in args.seeds[i:i + k]]
        nanos, ours = [], {}
        for kind, seed in order:
            if kind == "nanogpt":
                nanos.append(run_nanogpt(nano, work))
                print(f"nanoGPT: {nanos[-1]['wall']:.1f} s (its iterations alone {nanos[-1]['train_only']:.1f} s, "
                      f"{nanos[-1]['step_ms']:.1f} ms a step), val loss {nanos[-1]['val_loss']:.4f}", flush=True)
            else:
                ours[seed] = run_minigpt(seed, data, work, args.flags)
                r = ours[seed]
                print(f"minigpt seed {seed}: {r['wall']:.1f} s, val loss {r['val_loss']:.4f} at iter {r['iter']}",
                      flush=True)
    nano_wall = statistics.median(n["wall"] for n in nanos)
    nano_train = statistics.median(n["train_only"] for n in nanos)
    walls = [r["wall"] for r in ours.values()]
    print(f"\n`{' '.join(['minigpt train --preset speedrun', *args.flags])}`\n")
    print("| seed | wall time (s) | vs nanoGPT's run | vs nanoGPT's iterations alone | val loss | iters | step (ms) | reached 1.919 |")
    print("|---|---|---|---|---|---|---|---|")
    for seed, r in ours.items():
        step = f"{r['step_ms']:.1f}" if r["step_ms"] else "-"
        print(f"| {seed} | {r['wall']:.1f} | {r['wall'] / nano_wall:.2f} | {r['wall'] / nano_train:.2f} | "
              f"{r['val_loss']:.4f} | {r['iter']} | {step} | {'yes' if r['val_loss'] <= TARGET else 'NO'} |")
    losses = ", ".join(f"{n['val_loss']:.4f}" for n in nanos)
    print(f"\nnanoGPT (median of {len(nanos)}): {nano_wall:.1f} s, its iterations alone {nano_train:.1f} s, val loss {losses}")
    print(f"minigpt (median of {len(walls)} seeds): {statistics.median(walls):.1f} s (from {min(walls):.1f} to "
          f"{max(walls):.1f}); ratio {statistics.median(walls) / nano_wall:.3f} of nanoGPT's run, "
          f"{statistics.median(walls) / nano_train:.3f} of its iterations alone")


if __name__ == "__main__":
    main()
