"""Reinforcement learning from verifiable rewards, demonstrated: add-instruct's held-out exact match after supervised
fine-tuning, then after `minigpt train --method rl` from that model (each completion rewarded 1 where it is exactly
the sum, the end token included), on several seeds; and, as the control, the same supervised fine-tune continued for
as many steps as the RL runs take.

    python benchmarks/rl_add.py --out rl-add                     # about 5 minutes on 2 cores
    python benchmarks/rl_add.py --out rl-add --seeds 1 2 3 --rl-iters 1000

Every number is `minigpt eval --data held-out.jsonl` on the add task's 1,000 held-out problems (greedy, exact match):
the last 1,000 records of the task's file. Each step's command and time are printed with the table. Results:
docs/preference.md.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from minigpt.data import record_tasks


def minigpt(*args) -> float:
    """`minigpt ARGS` as a user runs it; its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "minigpt.cli", *map(str, args)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def exact_match(out_dir: Path, held_out: Path) -> float:
    scores = out_dir / "held-out.json"
    minigpt("eval", "--out-dir", out_dir, "--data", held_out, "--json", scores)
    return json.loads(scores.read_text())["exact_match"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="a directory for the runs")
    parser.add_argument("--sft-iters", type=int, default=900, help="supervised fine-tuning steps (preset: 3000)")
    parser.add_argument("--rl-iters", type=int, default=600)
    parser.add_argument("--rl-group", type=int, default=16)
    parser.add_argument("--flags", default="--batch-size 16 --learning-rate 2e-4 --min-lr 2e-5 --warmup-iters 10 "
                                           "--weight-decay 0 --eval-interval 300",
                        help="the RL runs' and the control's other flags")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path, n_val = record_tasks.build("add-instruct")
    held_out = out / "held-out.jsonl"
    held_out.write_text("".join(path.read_text().splitlines(keepends=True)[-n_val:]))

    rows = []
    sft = out / "sft"
    if not (sft / "checkpoints.json").exists():
        seconds = minigpt("train", "--task", "add-instruct", "--max-iters", args.sft_iters, "--out-dir", sft)
    else:
        seconds = float("nan")
    rows.append((f"supervised fine-tune, {args.sft_iters} steps", exact_match(sft, held_out), seconds,
                 f"minigpt train --task add-instruct --max-iters {args.sft_iters}"))
    for seed in args.seeds:
        run = out / f"rl-{seed}"
        command = ["train", "--task", "add-instruct", "--init-from", sft, "--method", "rl", "--rl-group", args.rl_group,
                   "--seed", seed, "--max-iters", args.rl_iters, *args.flags.split(), "--out-dir", run]
        seconds = minigpt(*command)
        rows.append((f"then RL, {args.rl_iters} steps, seed {seed}", exact_match(run, held_out), seconds,
                     f"minigpt train --task add-instruct --init-from sft --method rl --rl-group {args.rl_group} --seed "
                     f"{seed} --max-iters {args.rl_iters} {args.flags}"))
    control = out / "sft-more"
    command = ["train", "--task", "add-instruct", "--init-from", sft, "--max-iters", args.rl_iters, *args.flags.split(),
               "--out-dir", control]
    seconds = minigpt(*command)
    rows.append((f"or supervised, {args.rl_iters} steps more (the control)", exact_match(control, held_out), seconds,
                 f"minigpt train --task add-instruct --init-from sft --max-iters {args.rl_iters} {args.flags}"))
    print(f"add-instruct, held-out exact match on {n_val:,} problems (greedy)")
    print("| run | exact match | time | command |")
    print("|---|---:|---:|---|")
    for name, em, seconds, command in rows:
        print(f"| {name} | {em:.1%} | {seconds:.0f} s | `{command}` |")


if __name__ == "__main__":
    main()
