"""LoRA against full fine-tuning on a GPT-2-small-shaped model (124M parameters, float32, the default backend):
peak memory and the time of a training step (forward, backward, gradient clipping, AdamW), B = 4, T = 128, rank 8 on
the attention projections (c_attn, c_proj), as `minigpt train --lora-rank 8` trains it.

    python benchmarks/bench_lora.py [--steps 5] [--rounds 3]

Each measurement runs in a process of its own, the two modes in alternation, `rounds` times; the ratios are of
medians. Memory is the peak of the arrays alive during the steps, as tracemalloc counts NumPy's allocations (the
weights, gradients, AdamW's moments, activations: what the mode decides), traced from before the model is built; and
the process's peak resident memory (ru_maxrss), which also holds the interpreter, the libraries and the model's
initialisation (float64 draws cast to float32). Results: docs/finetuning.md.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from bench import cpu_name


def worker(mode: str, steps: int) -> dict:
    import tracemalloc

    from minigpt import GPT, GPTConfig
    from minigpt.optim import AdamW, clip_grad_norm

    tracemalloc.start()
    lora = dict(lora_rank=8, lora_alpha=16.0, lora_targets="attention") if mode == "lora" else {}
    model = GPT(GPTConfig(block_size=1024, **lora), seed=0, backend="auto")
    optimizer = AdamW(model.trainable(), kernels=model.kernels)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 50257, size=(4, 128)), rng.integers(0, 50257, size=(4, 128))
    tracemalloc.reset_peak()  # (the model's initialisation draws float64 arrays first: not the step's memory)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        model.forward(x, y)
        grads = model.backward()
        clip_grad_norm(grads, 1.0)
        optimizer.step(grads, 1e-4)
        times.append(time.perf_counter() - t0)
        del grads
    return {"step_s": float(np.median(times[1:])), "arrays_mb": tracemalloc.get_traced_memory()[1] / 2**20,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "trainable": sum(p.size for p in model.trainable().values()), "params": model.num_params(),
            "backend": model.backend}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=("full", "lora"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps)))
        return
    results = {"full": [], "lora": []}
    for _ in range(args.rounds):
        for mode in ("full", "lora"):
            out = subprocess.run([sys.executable, __file__, "--worker", mode, "--steps", str(args.steps)],
                                 check=True, capture_output=True, text=True).stdout
            results[mode].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{cpu_name()}; backend {results['full'][0]['backend']}; {args.rounds} rounds of {args.steps} steps each")
    keys = ("step_s", "arrays_mb", "peak_mb")
    med = {m: {k: float(np.median([r[k] for r in rs])) for k in keys} for m, rs in results.items()}
    for mode in ("full", "lora"):
        r = results[mode][0]
        print(f"{mode:<5} trainable {r['trainable']:>11,} of {r['params']:,}   step {med[mode]['step_s'] * 1e3:6.0f} ms   "
              f"arrays at peak {med[mode]['arrays_mb']:5.0f} MB   process peak {med[mode]['peak_mb']:5.0f} MB")
    ratio = lambda k: med["lora"][k] / med["full"][k]  # noqa: E731
    print(f"lora / full: step time {ratio('step_s'):.2f}, arrays at peak {ratio('arrays_mb'):.2f}, "
          f"process peak {ratio('peak_mb'):.2f}")


if __name__ == "__main__":
    main()
