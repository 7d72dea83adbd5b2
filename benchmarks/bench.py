"""minigpt against its peers on this CPU, side by side in one run, each measurement in a fresh process:

    python benchmarks/bench.py                       # every section: about 25 minutes on 2 cores
    python benchmarks/bench.py --sections step run   # some of them

Sections (a Markdown table each; docs/kernels.md shows them, with the machine):
  step     a training step (forward, backward, clipping, AdamW) of nanoGPT's Shakespeare recipe and of GPT-2
           small (B=4, T=64): each minigpt backend, nanoGPT (benchmarks/nanogpt.py: its architecture, no
           biases) and the same architecture as minigpt's in PyTorch eager (benchmarks/torch_gpt.py), in
           alternating rounds; the ratios come from adjacent measurements. Model FLOPs utilisation against the
           float32 matmul peak measured here, and each process's peak memory.
  imports  the default backend's recipe step with `import minigpt` first and with `import numpy` first.
  run      the whole default run: `minigpt train` against nanoGPT's recipe with the same evaluation (200
           batches a split every 250 steps), start-up included; wall time, last losses, peak memory.
  sample   `minigpt sample` with its defaults (500 tokens from a newline) on a default-sized model, start-up
           included, against nanoGPT's sampling loop; and generation speed against Hugging Face's generate.
  cold     `import minigpt`, and the first training step with an empty kernel cache and with a warm one.
Needs the dev extra (PyTorch, transformers) and Tiny Shakespeare for `run` ($MINIGPT_DATA, or
../shared/data/tinyshakespeare.txt beside the repository).
"""

import argparse
import json
import os
import platform
import resource
import shutil
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
SECTIONS = ("step", "imports", "run", "sample", "cold")


def model_flops_per_step(cfg) -> float:
    """6 N per token for the matmuls' forward and backward (N: parameters outside the position table,
    the tied head included), plus attention's own 12 L T C per token; as nanoGPT's estimate_mfu."""
    V, _, L, _, C, B, T = cfg
    N = V * C + L * (12 * C * C + 13 * C) + 2 * C
    return (6 * N + 12 * L * C * T) * B * T


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- workers: each runs in its own process, so that timings and peak memory are its own -------------

def training_step(model, x, y, optimizer=None):
    """One training step of `model` on the batch (x, y), as `minigpt train` takes one: forward, backward, the gradient
    clipped to norm 1, the optimizer's step (None: AdamW, on the model's kernels); a function to call and time."""
    from minigpt.optim import AdamW, clip_grad_norm

    optimizer = AdamW(model.params, kernels=model.kernels) if optimizer is None else optimizer

    def step():
        model.forward(x, y)
        grads = model.backward()
        clip_grad_norm(grads, 1.0)
        optimizer.step(grads, 1e-4)
    return step


def step_times(step, steps: int) -> list[float]:
    """The wall time of each of `steps` calls of step(), one after another (warm it up first)."""
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def worker_step(impl: str, name: str, steps: int, threads: int, numpy_first: bool = False) -> dict:
    if numpy_first:
        import numpy  # noqa: F401  as a notebook would: before minigpt
    V, block_size, L, H, C, B, T = CONFIGS[name]
    built = time.perf_counter()  # the first step counts from here: building the model may compile (the C kernels)
    if impl in ("nanogpt", "torch"):
        import numpy as np
        import torch

        sys.path.insert(0, str(HERE))
        torch.set_num_threads(threads)
        rng = np.random.default_rng(0)
        x, y = (torch.from_numpy(rng.integers(0, V, size=(B, T))) for _ in range(2))
        if impl == "nanogpt":
            import nanogpt

            model = nanogpt.GPT(V, block_size, L, H, C, bias=name != "recipe")  # its recipe has no biases
            optimizer = model.configure_optimizer(1e-4, 0.1, (0.9, 0.99))
        else:
            from torch_gpt import TorchGPT

            model = TorchGPT(V, block_size, L, H, C)
            optimizer = model.configure_optimizer(1e-4, 0.1, (0.9, 0.99))
        import nanogpt

        def step():
            nanogpt.train_step(model, optimizer, x, y, 1e-4, 1.0)
    else:
        import numpy as np

        from minigpt import GPT, GPTConfig, runtime

        runtime.configure(threads)  # as the `minigpt` command does
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, V, size=(B, T)), rng.integers(0, V, size=(B, T))
        model = GPT(GPTConfig(vocab_size=V, block_size=block_size, n_layer=L, n_head=H, n_embd=C), backend=impl)
        if impl != "auto" and model.backend != impl:
            raise RuntimeError(f"the {impl} backend did not load")
        step = training_step(model, x, y)

    step()  # the first step: compilation (numba, C), first-touch allocations
    first = time.perf_counter() - built
    times = step_times(step, steps)
    return {"first": first, "times": times, "peak_rss_mb": peak_rss_mb()}


def worker_run_nanogpt(data: str) -> dict:
    sys.path.insert(0, str(HERE))
    import nanogpt

    result = nanogpt.train(Path(data).read_text(encoding="utf-8"))
    return {**result, "peak_rss_mb": peak_rss_mb()}


def worker_sample_nanogpt(new_tokens: int, threads: int) -> dict:
    """nanoGPT's sample.py on a default-sized model: 500 tokens from a newline, temperature 0.8, top-k 200."""
    import torch

    sys.path.insert(0, str(HERE))
    import nanogpt

    torch.set_num_threads(threads)
    torch.manual_seed(1337)
    model = nanogpt.GPT(65, 64, 4, 4, 128).eval()
    model.generate(torch.zeros((1, 1), dtype=torch.long), new_tokens, temperature=0.8, top_k=200)
    return {}


def worker_generate(impl: str, name: str, new_tokens: int, threads: int) -> dict:
    """Greedy generation with a key/value cache: minigpt's generate against Hugging Face's."""
    import numpy as np

    V, block_size, L, H, C, _, _ = CONFIGS[name]
    prompt = np.random.default_rng(0).integers(0, V, size=(1, 8))
    if impl == "hf":
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
        from minigpt import GPT, GPTConfig, runtime

        runtime.configure(threads)
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
    from minigpt import GPT  # noqa: F401  (import minigpt alone loads nothing yet)

    return {"seconds": time.perf_counter() - t0}


WORKERS = {"step": worker_step, "run_nanogpt": worker_run_nanogpt, "sample_nanogpt": worker_sample_nanogpt,
           "generate": worker_generate, "peak": worker_peak, "import": worker_import}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_worker(kind: str, *args, env=None) -> dict:
    """Run a worker in a fresh Python process and return what it measured, and the process's wall time."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps([kind, *args])]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"worker {kind} {args} failed:\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "wall": wall}


def run_command(cmd: list, env=None) -> tuple[float, float]:
    """The wall time of a command, start-up included, and its peak memory (MB); it must succeed."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own resource usage
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.read().decode()[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def minigpt_command() -> str:
    return shutil.which("minigpt") or str(Path(sys.executable).parent / "minigpt")


def find_data() -> Path:
    path = Path(os.environ.get("MINIGPT_DATA") or HERE.parents[1] / "shared" / "data" / "tinyshakespeare.txt")
    if not path.is_file():
        sys.exit(f"Tiny Shakespeare not found at {path}; set MINIGPT_DATA")
    return path


# --- the sections ------------------------------------------------------------------------------------

def section_step(args, peak):
    impls = args.impls
    labels = {"nanogpt": "nanoGPT (PyTorch eager)", "torch": "minigpt's architecture in PyTorch eager"}
    for name in args.configs:
        cfg = CONFIGS[name]
        steps = 20 if name == "recipe" else 3
        medians = {impl: [] for impl in impls}
        memory = {}
        for _ in range(args.rounds):  # alternate, so that a slow spell of the machine hits every implementation
            for impl in impls:
                result = run_worker("step", impl, name, steps, args.threads)
                medians[impl].append(statistics.median(result["times"]))
                memory[impl] = max(memory.get(impl, 0.0), result["peak_rss_mb"])
        flops = model_flops_per_step(cfg)
        V, _, L, H, C, B, T = cfg
        print(f"### Training step, {name}: L={L}, nh={H}, C={C}, V={V}, B={B}, T={T} ({flops / 1e9:.1f} GFLOP per step)\n")
        print("| implementation | step (ms) | vs nanoGPT | vs minigpt's architecture in PyTorch | MFU | peak memory (MB) |")
        print("|---|---|---|---|---|---|")
        for impl in impls:
            step = statistics.median(medians[impl])
            ratio = {peer: statistics.median(a / b for a, b in zip(medians[impl], medians[peer])) if peer in medians else float("nan")
                     for peer in ("nanogpt", "torch")}
            label = labels.get(impl, f"minigpt `{impl}`")
            print(f"| {label} | {step * 1e3:.1f} | {ratio['nanogpt']:.2f}x | {ratio['torch']:.2f}x | "
                  f"{flops / step / (peak * 1e9):.1%} | {memory[impl]:.0f} |", flush=True)
        print()


def section_imports(args):
    results = {False: [], True: []}
    for _ in range(args.rounds):
        for numpy_first in (False, True):
            results[numpy_first].append(statistics.median(run_worker("step", "auto", "recipe", 20, args.threads, numpy_first)["times"]))
    a, b = statistics.median(results[False]), statistics.median(results[True])
    print("### Import order: the default backend's recipe step\n")
    print("| imported first | step (ms) |")
    print("|---|---|")
    print(f"| minigpt | {a * 1e3:.1f} |")
    print(f"| NumPy | {b * 1e3:.1f} |")
    print(f"\nNumPy first / minigpt first: {b / a:.3f}\n", flush=True)


def section_run(args, work: Path):
    data = find_data()
    rows = []
    for i in range(args.run_rounds):
        out = work / f"run-{i}"
        shutil.rmtree(out, ignore_errors=True)
        wall, memory = run_command([minigpt_command(), "train", "--data", str(data), "--out-dir", str(out)])
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        last = [r for r in log if "val_loss" in r][-1]
        minigpt_row = (wall, last["train_loss"], last["val_loss"], memory)
        nano = run_worker("run_nanogpt", str(data))
        rows.append((minigpt_row, (nano["wall"], nano["train"], nano["val"], nano["peak_rss_mb"])))
    print("### The whole default run (2000 steps, evaluation of 200 batches a split every 250 steps)\n")
    print("| | wall time (s) | last train loss | last val loss | peak memory (MB) |")
    print("|---|---|---|---|---|")
    for (m, n) in rows:
        print(f"| `minigpt train` | {m[0]:.0f} | {m[1]:.4f} | {m[2]:.4f} | {m[3]:.0f} |")
        print(f"| nanoGPT's recipe | {n[0]:.0f} | {n[1]:.4f} | {n[2]:.4f} | {n[3]:.0f} |")
    ratio = statistics.median(m[0] / n[0] for m, n in rows)
    print(f"\nminigpt / nanoGPT wall time: {ratio:.2f}\n", flush=True)
    return work / "run-0"


def section_sample(args, work: Path, run_dir):
    if run_dir is None or not (run_dir / "checkpoints.json").is_file():
        run_dir = work / "sample-model"  # any model of the default size: the weights do not change the speed
        shutil.rmtree(run_dir, ignore_errors=True)
        run_command([minigpt_command(), "train", "--data", str(find_data()), "--out-dir", str(run_dir),
                     "--max-iters", "1", "--eval-iters", "1"])
    run_command([minigpt_command(), "sample", "--out-dir", str(run_dir)])  # warm: compiled kernels, page cache
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(run_command([minigpt_command(), "sample", "--out-dir", str(run_dir)])[0])
        theirs.append(run_worker("sample_nanogpt", 500, args.threads)["wall"])
    print("### Sampling: 500 tokens from a newline, default settings, start-up included\n")
    print("| | wall time (s) |")
    print("|---|---|")
    print(f"| `minigpt sample` | {statistics.median(ours):.2f} |")
    print(f"| nanoGPT's sampling loop (PyTorch, import included) | {statistics.median(theirs):.2f} |\n")
    print("### Greedy generation with a key/value cache (tokens/s, after a warm-up)\n")
    print("| model | " + " | ".join(f"minigpt `{b}`" for b in BACKENDS) + " | Hugging Face generate |")
    print("|---|" + "---|" * (len(BACKENDS) + 1))
    for name in ("recipe", "gpt2"):
        speeds = [run_worker("generate", impl, name, 48, args.threads)["tokens_per_sec"] for impl in (*BACKENDS, "hf")]
        print(f"| {name} | " + " | ".join(f"{s:.0f}" for s in speeds) + " |")
    print(flush=True)


def section_cold(args):
    imports = [run_worker("import")["seconds"] for _ in range(3)]
    print(f"### Cold start\n\n`from minigpt import GPT` (NumPy included): {statistics.median(imports) * 1e3:.0f} ms. First training step of the "
          "recipe, building the model included, with an empty kernel cache (compiling) / with the cache of that run:\n")
    with tempfile.TemporaryDirectory() as cache:  # an empty cache: every kernel compiles
        for impl in BACKENDS:
            env = {"MINIGPT_CACHE": cache}
            cold = run_worker("step", impl, "recipe", 1, args.threads, env=env)["first"]
            warm = run_worker("step", impl, "recipe", 1, args.threads, env=env)["first"]
            print(f"- `{impl}`: {cold:.2f} s / {warm:.2f} s")
    print(flush=True)


def cpu_name() -> str:
    """The CPU's model name, as lscpu's "Model name" gives it (from /proc/cpuinfo)."""
    return next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), platform.processor() or "?")


def machine() -> str:
    import numpy
    import torch

    cpu = cpu_name()
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {numpy.__version__}, "
            f"PyTorch {torch.__version__}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS), help="for the step section")
    parser.add_argument("--impls", nargs="+", choices=[*BACKENDS, "nanogpt", "torch"], default=[*BACKENDS, "nanogpt", "torch"],
                        help="for the step section")
    parser.add_argument("--rounds", type=int, default=4, help="alternating measurements per implementation")
    parser.add_argument("--run-rounds", type=int, default=1, help="whole runs of each (section run)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = json.loads(args.worker)
        print(json.dumps(WORKERS[kind](*rest)))
        return

    print(f"machine: {machine()}; {args.threads} threads; {time.strftime('%Y-%m-%d')}\n", flush=True)
    peak = max(run_worker("peak", args.threads)["gflops"] for _ in range(2))
    print(f"float32 matmul peak through NumPy (2048^3): {peak:.0f} GFLOP/s\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="minigpt-bench-") as tmp:
        work, run_dir = Path(tmp), None
        if "step" in args.sections:
            section_step(args, peak)
        if "imports" in args.sections:
            section_imports(args)
        if "run" in args.sections:
            run_dir = section_run(args, work)
        if "sample" in args.sections:
            section_sample(args, work, run_dir)
        if "cold" in args.sections:
            section_cold(args)


if __name__ == "__main__":
    main()
