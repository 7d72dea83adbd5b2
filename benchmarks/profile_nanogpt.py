"""Where nanoGPT's training step goes, op by op, beside benchmarks/profile_step.py's table of minigpt's kernels:
nanoGPT's recipe model and step (benchmarks/nanogpt.py: 4 layers, 128 channels, batch 12 x 64, AdamW, clipping) in
PyTorch eager under torch.profiler, its ops' own CPU time per step, largest first.

    python benchmarks/profile_nanogpt.py                # 2 threads: the machine's cores
    python benchmarks/profile_step.py                   # minigpt's, the same recipe (docs/kernels.md)
"""

import argparse
import os
import time

import numpy as np
import torch

from nanogpt import GPT, RECIPE, train_step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rows", type=int, default=14, help="ops shown (default: 14)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    r = RECIPE
    model = GPT(65, r["block_size"], r["n_layer"], r["n_head"], r["n_embd"], r["dropout"], r["bias"])
    optimizer = model.configure_optimizer(r["learning_rate"], r["weight_decay"], (r["beta1"], r["beta2"]))
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 65, (r["batch_size"], r["block_size"])))
    y = torch.from_numpy(rng.integers(0, 65, (r["batch_size"], r["block_size"])))
    for _ in range(5):  # warm up
        train_step(model, optimizer, x, y, r["learning_rate"], r["grad_clip"])
    t0 = time.perf_counter()
    for _ in range(args.steps):
        train_step(model, optimizer, x, y, r["learning_rate"], r["grad_clip"])
    step = (time.perf_counter() - t0) / args.steps
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            train_step(model, optimizer, x, y, r["learning_rate"], r["grad_clip"])
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    profiled = sum(e.self_cpu_time_total for e in events) / args.steps / 1e3
    print(f"nanoGPT's recipe step, PyTorch {torch.__version__} eager, {args.threads} threads: {step * 1e3:.1f} ms a "
          f"step ({profiled:.1f} ms of ops' own time a step under the profiler)\n")
    print("| op | ms a step (self) | calls a step |")
    print("|---|---|---|")
    for e in events[:args.rows]:
        print(f"| {e.key} | {e.self_cpu_time_total / args.steps / 1e3:.2f} | {e.count / args.steps:.0f} |")


if __name__ == "__main__":
    main()
