"""Where a training step's time goes, kernel by kernel:

    python benchmarks/profile_step.py                            # nanoGPT's recipe, the default backend
    python benchmarks/profile_step.py --config gpt2 --backend numpy

Times every call of each of the backend's kernels (minigpt/backends: it wraps them), over a few training
steps after a warm-up one; prints a Markdown table, largest first, with each kernel's share of the step
and, for the matmul-bearing ones, its FLOP rate. What the kernels do not cover (the ops' checks, dropout,
the residual additions, Python) is the last line. The configurations are those of benchmarks/bench.py.
"""

import argparse
import time
from collections import defaultdict

import numpy as np

from bench import CONFIGS, model_flops_per_step
from minigpt import GPT, GPTConfig, backends, runtime
from minigpt.config import BACKENDS
from minigpt.optim import AdamW


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", choices=sorted(CONFIGS), default="recipe")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    runtime.configure(args.threads)
    V, block_size, L, H, C, B, T = cfg = CONFIGS[args.config]
    model = GPT(GPTConfig(vocab_size=V, block_size=block_size, n_layer=L, n_head=H, n_embd=C), backend=args.backend)
    seconds = defaultdict(float)

    def record(op, kernel, args, result, elapsed):
        seconds[f"{op}.{kernel}"] += elapsed

    model.kernels = backends.traced(model.kernels, record)  # every kernel the model and the optimizer call
    optimizer = AdamW(model.params, kernels=model.kernels)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, size=(B, T)), rng.integers(0, V, size=(B, T))

    def step():
        model.forward(x, y)
        optimizer.step(model.backward(), 1e-4)

    step()  # compile, first-touch allocations
    seconds.clear()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    total = (time.perf_counter() - t0) / args.steps
    # matmul FLOPs per step: the linear kernels' (every projection and the LM head) and the attention kernels'
    # (the scores and the weighted sum, causal: half of the (T, T) products); a backward does twice the forward's
    linear = 2 * B * T * C * V + L * 2 * B * T * 12 * C * C
    attention = L * 2 * B * T * T * C
    flops = {"linear.forward_kernel": linear, "linear.backward_kernel": 2 * linear,
             "attention.forward_kernel": attention, "attention.backward_kernel": 2 * attention}
    print(f"{args.config}, {model.backend} backend: "
          f"{total * 1e3:.1f} ms a step, {model_flops_per_step(cfg) / total / 1e9:.0f} GFLOP/s of model FLOPs\n")
    print("| kernel | ms a step | share | GFLOP/s |")
    print("|---|---|---|---|")
    for key, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        rate = f"{flops[key] / (s / args.steps) / 1e9:.0f}" if key in flops else ""
        print(f"| {key} | {s / args.steps * 1e3:.2f} | {s / args.steps / total:.0%} | {rate} |")
    rest = total - sum(seconds.values()) / args.steps
    print(f"| the rest (the ops' checks, dropout, residuals, Python) | {rest * 1e3:.2f} | {rest / total:.0%} | |")


if __name__ == "__main__":
    main()
