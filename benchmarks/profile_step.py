"""Where a training step's time goes, op by op:

    python benchmarks/profile_step.py                            # GPT-2 small, numba backend
    python benchmarks/profile_step.py --config recipe --backend numpy

Times every forward and backward call of each op (wrapping the backend's ops), and the AdamW step,
over a few training steps after a warm-up one; prints a Markdown table, largest first, with each op's
share of the step and, for the matmul-bearing ops, its FLOP rate. The configurations are those of
benchmarks/bench.py.
"""

import argparse
import time
from collections import defaultdict
from types import SimpleNamespace

import minigpt  # noqa: F401  before NumPy (minigpt/threads.py)
import numpy as np

from bench import CONFIGS, model_flops_per_step
from minigpt import GPT, GPTConfig
from minigpt.memory import keep_freed_memory
from minigpt.optim import AdamW
from minigpt.threads import set_threads

OPS = ("embedding", "layernorm", "linear", "attention", "gelu", "cross_entropy", "dropout")


def timed(ops, seconds: dict):
    """The backend `ops` with each op's forward and backward adding its time to seconds["op.fn"]."""
    def wrap(f, key):
        def g(*args, **kwargs):
            t0 = time.perf_counter()
            result = f(*args, **kwargs)
            seconds[key] += time.perf_counter() - t0
            return result
        return g

    return ops._replace(**{
        name: SimpleNamespace(**{fn: wrap(getattr(getattr(ops, name), fn), f"{name}.{fn}") for fn in ("forward", "backward")})
        for name in OPS
    })


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", choices=sorted(CONFIGS), default="gpt2")
    parser.add_argument("--backend", choices=("numpy", "numba", "c"), default="numba")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    set_threads(args.threads)
    keep_freed_memory()  # as minigpt train does
    V, block_size, L, H, C, B, T = cfg = CONFIGS[args.config]
    model = GPT(GPTConfig(vocab_size=V, block_size=block_size, n_layer=L, n_head=H, n_embd=C), backend=args.backend)
    seconds = defaultdict(float)
    model.ops = timed(model.ops, seconds)
    optimizer = AdamW(model.params, update=model.ops.adamw_update)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, size=(B, T)), rng.integers(0, V, size=(B, T))

    def step():
        model.forward(x, y)
        grads = model.backward()
        t0 = time.perf_counter()
        optimizer.step(grads, 1e-4)
        seconds["adamw"] += time.perf_counter() - t0

    step()  # compile, first-touch allocations
    seconds.clear()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    total = (time.perf_counter() - t0) / args.steps
    # matmul FLOPs per step: the linear op's (the MLP and the LM head) and the attention op's (its two
    # projections plus the scores and the weighted sum); the backward does twice the forward's
    head, mlp = 2 * B * T * C * V, L * 2 * B * T * 8 * C * C
    attention = L * (2 * B * T * 4 * C * C + 4 * B * T * T * C)
    flops = {"linear.forward": head + mlp, "linear.backward": 2 * (head + mlp),
             "attention.forward": attention, "attention.backward": 2 * attention}
    print(f"{args.config}, {model.ops.name} backend: "
          f"{total * 1e3:.1f} ms a step, {model_flops_per_step(cfg) / total / 1e9:.0f} GFLOP/s of model FLOPs\n")
    print("| op | ms a step | share | GFLOP/s |")
    print("|---|---|---|---|")
    for key, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        rate = f"{flops[key] / (s / args.steps) / 1e9:.0f}" if key in flops else ""
        print(f"| {key} | {s / args.steps * 1e3:.1f} | {s / args.steps / total:.0%} | {rate} |")
    rest = total - sum(seconds.values()) / args.steps
    print(f"| the rest (Python, the model's own code) | {rest * 1e3:.1f} | {rest / total:.0%} | |")


if __name__ == "__main__":
    main()
