"""The numba backend's fused attention kernel against the reference attention, inside the model:

    python benchmarks/bench_attention.py          # about 4 minutes on 2 cores

For two widths (the recipe's C=128 with 4 heads, GPT-2 small's C=768 with 12 heads; 2 layers, V=65) and
context lengths T from 64 to 1024 at 4096 tokens per batch (B = 4096 / T), the time of a forward and
backward pass with each attention (the best of 3 alternating rounds), and the peak of NumPy's memory
during one pass (tracemalloc). The rest of the model is the numba backend's in both. The numba backend
uses the fused kernel from FUSED_MIN_SCORES entries in one layer's (B, nh, T, T) scores
(minigpt/backends/numba/attention.py); docs/kernels.md shows the table.
"""

import time
import tracemalloc

import minigpt  # noqa: F401  before NumPy (minigpt/threads.py)
import numpy as np

from minigpt import GPT, GPTConfig
from minigpt.backends.numba.attention import Attention
from minigpt.threads import set_threads

WIDTHS = ((128, 4), (768, 12))  # (C, nh)
CONTEXTS = (64, 128, 256, 512, 1024)
TOKENS = 4096
ROUNDS = 3


def model_with(attention: str, C: int, n_head: int, T: int) -> GPT:
    model = GPT(GPTConfig(vocab_size=65, block_size=T, n_layer=2, n_head=n_head, n_embd=C), backend="numba")
    fused_min_scores = 0 if attention == "fused" else np.inf  # always the kernel, or always the reference
    model.ops = model.ops._replace(attention=Attention(model.ops.linear, fused_min_scores=fused_min_scores))
    return model


def main():
    set_threads(2)
    print("| C, nh | T | B | scores of one layer (MB) | fused (ms) | reference (ms) | fused peak (MB) | reference peak (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for C, n_head in WIDTHS:
        for T in CONTEXTS:
            B = TOKENS // T
            rng = np.random.default_rng(0)
            idx, targets = rng.integers(0, 65, size=(B, T)), rng.integers(0, 65, size=(B, T))
            models = {name: model_with(name, C, n_head, T) for name in ("fused", "reference")}
            seconds, peak = {name: [] for name in models}, {}
            for name, model in models.items():  # compile, and measure memory outside the timings
                model.forward(idx, targets)
                model.backward()
                tracemalloc.start()
                model.forward(idx, targets)
                model.backward()
                peak[name] = tracemalloc.get_traced_memory()[1] / 1e6
                tracemalloc.stop()
            for _ in range(ROUNDS):
                for name, model in models.items():
                    t0 = time.perf_counter()
                    model.forward(idx, targets)
                    model.backward()
                    seconds[name].append(time.perf_counter() - t0)
            scores_mb = B * n_head * T * T * 4 / 1e6
            print(f"| {C}, {n_head} | {T} | {B} | {scores_mb:.0f} | {min(seconds['fused']) * 1e3:.1f} | "
                  f"{min(seconds['reference']) * 1e3:.1f} | {peak['fused']:.0f} | {peak['reference']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
