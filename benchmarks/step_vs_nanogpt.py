"""The recipe's training step against nanoGPT's, each through its own training command, on this machine.

    python benchmarks/step_vs_nanogpt.py               # 300 iterations each, 3 rounds in alternation: ~1 min
    python benchmarks/step_vs_nanogpt.py --rounds 5 --iters 500

nanoGPT's unmodified train.py (../shared/anchors/nanoGPT, copied to a temporary directory) runs its README's CPU recipe
(4 layers, 4 heads, 128 channels, context 64, batch 12, no dropout, no compile) and `minigpt train` its defaults, the
same recipe, for the same number of iterations, one after the other, `--rounds` times. A step's time is the median of
each run's per-iteration times, the first 20 left out: nanoGPT's printed ones (from the end of one iteration to the end
of the next: the batch, forward, backward, clipping and AdamW) and minigpt's from its log.jsonl (the same span). Prints
the CPU's model name, each round's two medians and their ratio, the median ratio, and the README's line. Evaluation is
kept out (one batch, never due), so that only the steps count; `benchmarks/speedrun.py` measures whole runs.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import cpu_name, find_data, minigpt_command
from speedrun import nanogpt_flags, prepare_nanogpt

SKIP = 20  # iterations left out at the start of each run: PyTorch's and the kernels' warm-up


def nanogpt_step(nano: Path, work: Path, iters: int) -> float:
    r = subprocess.run([sys.executable, "train.py", *nanogpt_flags(iters, eval_iters=1, eval_interval=10**6),
                        f"--out_dir={work / 'nano-out'}"], cwd=nano, capture_output=True, text=True)
    if r.returncode:
        sys.exit("nanoGPT failed: " + (r.stdout + r.stderr)[-2000:])
    times = [float(t) for t in re.findall(r"^iter \d+: loss [\d.]+, time ([\d.]+)ms", r.stdout, re.M)]
    return statistics.median(times[SKIP:])


def minigpt_step(data: Path, work: Path, iters: int) -> float:
    out = work / "minigpt-out"
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([minigpt_command(), "train", "--data", str(data), "--out-dir", str(out), "--max-iters",
                        str(iters), "--eval-interval", str(10**6), "--eval-iters", "1", "--log-interval", "1"],
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit("minigpt failed: " + r.stderr[-2000:])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    tokens = 12 * 64  # the recipe's batch
    return statistics.median(tokens / x["tokens_per_sec"] * 1e3 for x in log[SKIP:] if "tokens_per_sec" in x)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.iters <= SKIP + 10:
        sys.exit(f"--iters must be more than {SKIP + 10}: the first {SKIP} of each run are left out")
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    print(f"machine: {machine}; {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    data = find_data()
    ratios, ours, theirs = [], [], []
    with tempfile.TemporaryDirectory(prefix="minigpt-step-") as tmp:
        work = Path(tmp)
        nano = prepare_nanogpt(work, data)
        for i in range(args.rounds):
            ours.append(minigpt_step(data, work, args.iters))
            theirs.append(nanogpt_step(nano, work, args.iters))
            ratios.append(ours[-1] / theirs[-1])
            print(f"round {i + 1}: minigpt {ours[-1]:.1f} ms, nanoGPT {theirs[-1]:.1f} ms, ratio {ratios[-1]:.2f}",
                  flush=True)
    low, high = min(ratios), max(ratios)
    print(f"\nmedian ratio {statistics.median(ratios):.2f} (from {low:.2f} to {high:.2f})\n")
    print(f"| {machine}, {time.strftime('%Y-%m-%d')} | {statistics.median(ours):.1f} ms | "
          f"{statistics.median(theirs):.1f} ms | **{statistics.median(ratios):.2f}x** ({low:.2f} to {high:.2f}, "
          f"{args.rounds} rounds) |")


if __name__ == "__main__":
    main()
