"""The attention kernels against the reference's, at the recipe's and GPT-2 small's shapes and at longer contexts:

    python benchmarks/bench_attention.py

Times the attention kernels alone (from q, k, v to y and back, minigpt/backends), forward and backward, on one
thread and with every core, after one matmul each time as in a training step (NumPy's OpenBLAS then keeps
its threads busy-waiting for a while: the cores a kernel can really use), best of several rounds, and the
peak memory NumPy allocates during one forward and backward (tracemalloc). Prints a Markdown table.
"""

import argparse
import time
import tracemalloc

import numpy as np

from minigpt import backends, runtime

SHAPES = [  # (C, nh, T, B): the recipe, GPT-2 small as benchmarks/bench.py runs it, longer contexts
    (128, 4, 64, 12), (768, 12, 64, 4), (128, 4, 256, 12), (768, 12, 256, 4), (768, 12, 1024, 4),
]


def measure(kernels, q, k, v, dy, a, w, rounds):
    """Best time of a forward and of a backward, each after a matmul (a @ w), as in a training step."""
    grads = np.empty_like(q), np.empty_like(k), np.empty_like(v)  # dq, dk, dv: where the backward writes
    y, lse = kernels.attention.forward_kernel(q, k, v, None)
    kernels.attention.backward_kernel(dy, q, k, v, y, lse, None, *grads)
    forward = backward = np.inf
    for _ in range(rounds):
        a @ w
        t0 = time.perf_counter()
        y, lse = kernels.attention.forward_kernel(q, k, v, None)
        forward = min(forward, time.perf_counter() - t0)
        a @ w
        t0 = time.perf_counter()
        kernels.attention.backward_kernel(dy, q, k, v, y, lse, None, *grads)
        backward = min(backward, time.perf_counter() - t0)
    tracemalloc.start()
    y, lse = kernels.attention.forward_kernel(q, k, v, None)
    kernels.attention.backward_kernel(dy, q, k, v, y, lse, None, *grads)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return forward, backward, peak


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backends", nargs="+", default=["numba", "c"], choices=("numba", "c"))
    args = parser.parse_args()
    runtime.configure()
    reference = backends.kernels_for("numpy")
    print("| backend | C, nh | T | B | forward (ms) | reference | speedup | backward (ms) | reference | speedup | "
          "peak (MB) | reference peak (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.backends:
        kernels = backends.kernels_for(name)
        for C, n_head, T, B in SHAPES:
            rng = np.random.default_rng(0)
            q, k, v = (rng.normal(size=(B, T, n_head, C // n_head)).astype(np.float32) for _ in range(3))
            dy = rng.normal(size=(B, T, C)).astype(np.float32)
            a, w = rng.normal(size=(B * T, C)).astype(np.float32), rng.normal(size=(C, 3 * C)).astype(np.float32)
            rounds = max(3, args.rounds * 64 // T)
            f, b, peak = measure(kernels, q, k, v, dy, a, w, rounds)
            rf, rb, rpeak = measure(reference, q, k, v, dy, a, w, max(3, rounds // 4))
            print(f"| `{kernels.name}` | {C}, {n_head} | {T} | {B} | {f * 1e3:.2f} | {rf * 1e3:.2f} | {rf / f:.2f}x | "
                  f"{b * 1e3:.2f} | {rb * 1e3:.2f} | {rb / b:.2f}x | {peak / 2**20:.0f} | {rpeak / 2**20:.0f} |", flush=True)


if __name__ == "__main__":
    main()
