"""minigpt against PyTorch on this CPU, side by side in one run:

    python benchmarks/bench.py                    # both configurations, about 10 minutes on 2 cores
    python benchmarks/bench.py --configs recipe   # just nanoGPT's CPU recipe, about a minute

For each configuration: the time of a training step (forward, backward, AdamW) for each minigpt backend
and for the same architecture in PyTorch eager (benchmarks/torch_gpt.py), measured in alternation, each
measurement in a fresh process with the same thread count; the ratio to PyTorch from adjacent
measurements; model FLOPs utilisation against the float32 matmul peak measured here; the peak resident
memory of the process; greedy generation with a key/value cache (minigpt's generate against Hugging
Face's GPT2LMHeadModel.generate); and cold start (import, and a first step with and without numba's
cache). Prints a Markdown table; docs/kernels.md shows one.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = {
    # name: (vocab_size, block_size, n_layer, n_head, n_embd, batch_size, sequence_length)
    "recipe": (65, 64, 4, 4, 128, 12, 64),  # nanoGPT's Tiny Shakespeare CPU recipe
    "gpt2": (50257, 1024, 12, 12, 768, 4, 64),  # GPT-2 small, as llm.c's CPU trainer runs it
}
BACKENDS = ("numpy", "numba", "c")


def model_flops_per_step(cfg) -> float:
    """6 N per token for the matmuls' forward and backward (N: parameters outside the position table,
    the tied head included), plus attention's own 12 L T C per token; as nanoGPT's estimate_mfu."""
    V, _, L, _, C, B, T = cfg
    N = V * C + L * (12 * C * C + 13 * C) + 2 * C
    return (6 * N + 12 * L * C * T) * B * T


# --- workers: each runs in its own process, so that timings and peak memory are its own -------------

def worker_train(impl: str, cfg, steps: int, threads: int) -> dict:
    if impl != "torch":
        import minigpt  # noqa: F401  before NumPy, as the `minigpt` command does (see minigpt/__init__.py)
    import numpy as np

    V, block_size, L, H, C, B, T = cfg
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, size=(B, T)), rng.integers(0, V, size=(B, T))
    if impl == "torch":
        import torch

        sys.path.insert(0, str(HERE))
        from torch_gpt import TorchGPT

        torch.set_num_threads(threads)
        model = TorchGPT(V, block_size, L, H, C)
        opt = model.configure_optimizer(1e-4, 0.1, (0.9, 0.99))
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            _, loss = model(xt, yt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        from minigpt import GPT, GPTConfig
        from minigpt.memory import keep_freed_memory
        from minigpt.optim import AdamW
        from minigpt.threads import set_threads

        set_threads(threads)
        keep_freed_memory()  # as minigpt train does
        model = GPT(GPTConfig(vocab_size=V, block_size=block_size, n_layer=L, n_head=H, n_embd=C), backend=impl)
        assert model.ops.name == impl, f"the {impl} backend did not load"
        opt = AdamW(model.params, update=model.ops.adamw_update)

        def step():
            model.forward(x, y)
            opt.step(model.backward(), 1e-4)

    t0 = time.perf_counter()
    step()  # the first step: JIT compilation (numba), first-touch allocations
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"first": first, "times": times, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def worker_generate(impl: str, cfg, new_tokens: int, threads: int) -> dict:
    if impl != "torch":
        import minigpt  # noqa: F401  before NumPy
    import numpy as np

    V, block_size, L, H, C, _, _ = cfg
    prompt = np.random.default_rng(0).integers(0, V, size=(1, 8))
    if impl == "torch":
        import torch
        import transformers

        transformers.logging.set_verbosity_error()
        torch.set_num_threads(threads)
        config = transformers.GPT2Config(vocab_size=V, n_positions=block_size, n_embd=C, n_layer=L, n_head=H,
                                         activation_function="gelu_new", bos_token_id=0, eos_token_id=0)
        model = transformers.GPT2LMHeadModel(config).eval()
        p = torch.from_numpy(prompt)

        def run():
            with torch.no_grad():
                model.generate(p, attention_mask=torch.ones_like(p), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                               do_sample=False, use_cache=True, pad_token_id=0)
    else:
        from minigpt import GPT, GPTConfig
        from minigpt.threads import set_threads

        set_threads(threads)
        model = GPT(GPTConfig(vocab_size=V, block_size=block_size, n_layer=L, n_head=H, n_embd=C), backend=impl).eval()

        def run():
            model.generate(prompt, new_tokens, do_sample=False)

    run()  # warm up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"tokens_per_sec": new_tokens / statistics.median(times)}


def worker_peak(threads: int) -> dict:
    """The float32 matmul peak through NumPy's BLAS: the best of several 2048 x 2048 products."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    n = 2048
    a, b = np.ones((n, n), np.float32), np.ones((n, n), np.float32)
    best = min(timed(lambda: a @ b) for _ in range(10))
    return {"gflops": 2 * n**3 / best / 1e9}


def worker_import() -> dict:
    t0 = time.perf_counter()
    import minigpt  # noqa: F401

    return {"seconds": time.perf_counter() - t0}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_worker(kind: str, *args, env=None) -> dict:
    """Run a worker in a fresh Python process and return what it measured."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps([kind, *args])]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if out.returncode != 0:
        raise RuntimeError(f"worker {kind} {args} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the driver --------------------------------------------------------------------------------------

def machine() -> str:
    import numpy
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {numpy.__version__}, "
            f"PyTorch {torch.__version__}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--rounds", type=int, default=4, help="alternating measurements per implementation")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = json.loads(args.worker)
        workers = {"train": worker_train, "generate": worker_generate, "peak": worker_peak, "import": worker_import}
        print(json.dumps(workers[kind](*rest)))
        return

    impls = [*BACKENDS, "torch"]
    print(f"machine: {machine()}; {args.threads} threads\n", flush=True)
    peak = max(run_worker("peak", args.threads)["gflops"] for _ in range(2))
    print(f"float32 matmul peak through NumPy (2048^3): {peak:.0f} GFLOP/s\n", flush=True)

    for name in args.configs:
        cfg = CONFIGS[name]
        steps = 20 if name == "recipe" else 3
        medians = {impl: [] for impl in impls}
        memory = {}
        for _ in range(args.rounds):  # alternate, so that a slow spell of the machine hits every implementation
            for impl in impls:
                result = run_worker("train", impl, cfg, steps, args.threads)
                medians[impl].append(statistics.median(result["times"]))
                memory[impl] = max(memory.get(impl, 0.0), result["peak_rss_mb"])
        flops = model_flops_per_step(cfg)
        V, _, L, H, C, B, T = cfg
        print(f"### {name}: L={L}, H={H}, C={C}, V={V}, B={B}, T={T} ({flops / 1e9:.1f} GFLOP per step)\n")
        print("| implementation | step (ms) | vs PyTorch | MFU | peak memory (MB) | generation (tokens/s) |")
        print("|---|---|---|---|---|---|")
        for impl in impls:
            step = statistics.median(medians[impl])
            ratio = statistics.median(a / b for a, b in zip(medians[impl], medians["torch"]))
            generation = run_worker("generate", impl, cfg, 48, args.threads)["tokens_per_sec"]
            label = "PyTorch eager" if impl == "torch" else f"minigpt `{impl}`"
            print(f"| {label} | {step * 1e3:.1f} | {ratio:.2f}x | {flops / step / (peak * 1e9):.1%} | "
                  f"{memory[impl]:.0f} | {generation:.0f} |", flush=True)
        print()

    imports = [run_worker("import")["seconds"] for _ in range(3)]
    cold, warm = {}, {}
    with tempfile.TemporaryDirectory() as numba_cache:  # an empty numba cache: everything compiles
        for impl in BACKENDS:
            env = {"NUMBA_CACHE_DIR": numba_cache, "MINIGPT_CACHE": numba_cache}
            cold[impl] = run_worker("train", impl, CONFIGS["recipe"], 1, args.threads, env=env)["first"]
            warm[impl] = run_worker("train", impl, CONFIGS["recipe"], 1, args.threads, env=env)["first"]
    print(f"cold start: `import minigpt` {statistics.median(imports) * 1e3:.0f} ms; first training step of the "
          "recipe, with an empty cache (compiling) / with the cache from the previous run:")
    for impl in BACKENDS:
        print(f"- `{impl}`: {cold[impl]:.2f} s / {warm[impl]:.2f} s")


if __name__ == "__main__":
    main()
