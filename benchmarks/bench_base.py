"""The base preset's training step (`minigpt train --preset base`: Qwen 3's block, L = 6, C = 256, 4 heads of 64,
T = 256, B = 16, V = 4096) against the same model in PyTorch eager (transformers' Qwen3ForCausalLM, the same
weights), side by side in one run, each measurement in a fresh process, in alternating rounds:

    python benchmarks/bench_base.py                  # 3 rounds: about 3 minutes on 2 cores
    python benchmarks/bench_base.py --rounds 5 --threads 2

A step is the forward, the backward, clipping and the preset's optimizer, with random tokens (the speed does not
depend on them): Muon for the blocks' matrices and AdamW for the rest, minigpt's (minigpt/muon.py) and PyTorch's own
(torch.optim.Muon, as it ships: its Newton-Schulz iterations in bfloat16); --optimizer adamw for AdamW alone.
Reported: tokens per second (median step), their ratio (minigpt / PyTorch) from adjacent rounds, each process's peak
resident memory (libraries included: what a user's machine must hold), model FLOPs utilisation against the float32
matmul peak measured here. docs/pretraining.md shows the table, with the machine.
"""

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace

from bench import step_times, training_step

STEPS = 10


def base_config():
    from minigpt import settings
    from minigpt.config import recipe_model

    preset = settings.PRESETS["base"]
    model = {key: preset[key] for key in ("arch", "n_layer", "n_head", "n_embd", "block_size")}
    return replace(recipe_model(**model), vocab_size=4096), preset["batch_size"]


def model_flops_per_step(config, B: int) -> float:
    """6 N B T for the matmuls of N weights (the embedding lookup is none), and the attention's 12 L T^2 C."""
    from minigpt import GPT

    model = GPT(config)
    N = sum(p.size for name, p in model.params.items() if p.ndim == 2 and name != model.family.WTE)
    T = config.block_size
    return (6 * N + 12 * config.n_layer * T * config.n_head * config.head_dim) * B * T


def cpu_name() -> str:
    """The CPU's model name, as `lscpu | grep "Model name"` gives it."""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # (Linux: kilobytes)


def worker_minigpt(threads: int, optimizer: str) -> dict:
    import numpy as np

    from minigpt import GPT, runtime
    from minigpt.config import TrainConfig
    from minigpt.run import new_optimizer

    runtime.configure(threads)  # as the `minigpt` command does
    config, B = base_config()
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, config.vocab_size, size=(B, config.block_size)) for _ in range(2))
    model = GPT(config, backend="auto")
    step = training_step(model, x, y, new_optimizer(TrainConfig(optimizer=optimizer), model))  # (as a run makes it)
    return timed(step) | {"backend": model.backend}


def torch_optimizer(torch, model, optimizer: str):
    """AdamW for every parameter; or torch.optim.Muon for the blocks' weight matrices (2-D, under model.layers) and
    AdamW for the rest, with the rates minigpt's defaults give, as one object with step() and zero_grad()."""
    adamw = dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1)
    if optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), **adamw)
    matrices = [p for name, p in model.named_parameters() if name.startswith("model.layers.") and p.ndim == 2]
    ids = {id(p) for p in matrices}
    rest = [p for p in model.parameters() if id(p) not in ids]
    both = (torch.optim.Muon(matrices, lr=0.02, momentum=0.95, nesterov=True, weight_decay=0.0),
            torch.optim.AdamW(rest, **adamw))

    class Both:
        def zero_grad(self, set_to_none=True):
            for o in both:
                o.zero_grad(set_to_none=set_to_none)

        def step(self):
            for o in both:
                o.step()
    return Both()


def worker_torch(threads: int, optimizer_name: str) -> dict:
    import numpy as np
    import torch
    import transformers

    from minigpt import GPT, hf

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    config, B = base_config()
    ours = GPT(config)  # the same weights on both sides
    d = {k: v for k, v in hf.llama_config(ours.config).items() if k != "architectures"}
    model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**d))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in ours.params.items()}, strict=False)
    del ours
    model.train()
    optimizer = torch_optimizer(torch, model, optimizer_name)
    rng = np.random.default_rng(0)
    x, y = (torch.from_numpy(rng.integers(0, config.vocab_size, size=(B, config.block_size))) for _ in range(2))

    def step():
        logits = model(input_ids=x).logits  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return timed(step) | {"torch": torch.__version__}


def worker_matmul(threads: int, optimizer: str) -> dict:
    """The float32 matmul peak here: the best of a few (2048 x 2048) products, in FLOP/s."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    a = np.ones((2048, 2048), np.float32)
    best = float("inf")
    for _ in range(10):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return {"flops": 2 * 2048**3 / best}


def timed(step) -> dict:
    step()  # compilation, first-touch allocations
    times = step_times(step, STEPS)
    return {"step": statistics.median(times), "peak_rss": peak_rss()}


WORKERS = {"minigpt": worker_minigpt, "torch": worker_torch, "matmul": worker_matmul}


def measure(name: str, threads: int, optimizer: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", name, "--threads", str(threads), "--optimizer",
                           optimizer], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--optimizer", choices=("muon", "adamw"), default=None,
                        help="the step's optimizer (default: the base preset's)")
    parser.add_argument("--worker", choices=WORKERS)
    args = parser.parse_args()
    from minigpt import settings

    optimizer = args.optimizer or settings.PRESETS["base"]["optimizer"]
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.threads, optimizer)))
        return
    config, B = base_config()
    tokens = B * config.block_size
    flops = model_flops_per_step(config, B)
    peak = measure("matmul", args.threads, optimizer)["flops"]
    runs = {"minigpt": [], "torch": []}
    for _ in range(args.rounds):
        for name in runs:
            runs[name].append(measure(name, args.threads, optimizer))
    ratios = [t["step"] / m["step"] for m, t in zip(runs["minigpt"], runs["torch"])]
    print(f"CPU: {cpu_name()}, {args.threads} threads, {optimizer}; float32 matmul peak "
          f"{peak / 1e9:.0f} GFLOP/s; {flops / 1e9:.1f} GFLOP per step, {tokens} tokens")
    print("| | tokens/s (median step) | MFU | peak memory |")
    print("|---|---:|---:|---:|")
    for name, results in runs.items():
        step = statistics.median(r["step"] for r in results)
        memory = max(r["peak_rss"] for r in results)
        label = f"minigpt ({results[0]['backend']})" if name == "minigpt" else f"PyTorch {results[0]['torch']} eager"
        print(f"| {label} | {tokens / step:,.0f} | {flops / step / peak:.1%} | {memory / 2**20:,.0f} MB |")
    memory = max(r["peak_rss"] for r in runs["minigpt"]) / max(r["peak_rss"] for r in runs["torch"])
    print(f"minigpt / PyTorch: tokens/s {statistics.median(ratios):.2f}x (rounds {', '.join(f'{r:.2f}' for r in ratios)}); "
          f"peak memory {memory:.2f}x")


if __name__ == "__main__":
    main()
