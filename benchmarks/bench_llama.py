"""The Llama and Qwen 3 families against GPT-2 and against transformers, side by side in one run, each measurement in a
fresh process:

    python benchmarks/bench_llama.py                      # both sections: about 6 minutes on 2 cores
    python benchmarks/bench_llama.py --sections step

Sections (a Markdown table each; docs/llama.md shows them, with the machine):
  step      a training step (forward, backward, clipping, AdamW) of the Shakespeare recipe's model in each family
            (`minigpt train --arch A` with every other setting at its default: B = 12, T = 64, L = 4, C = 128),
            with the default backend, in alternating rounds; each step's model FLOPs, and its time per FLOP
            against GPT-2's (the target: at most 1.15).
  generate  greedy generation with a key/value cache of a model shaped like SmolLM2-135M (30 layers, C = 576,
            9 query heads on 3 key/value heads, SwiGLU of 1536, a tied head over 49,152 tokens; random weights,
            float32): minigpt's generate, in float32 and with its linears in Q8_0 (GPT.quantize), against
            transformers' LlamaForCausalLM.generate and against llama.cpp
            (through llama-cpp-python, `pip install llama-cpp-python==0.3.36`, which compiles it) on minigpt's own
            GGUF export of the same weights in F32 and in Q8_0, and all against the memory-bandwidth bound: every
            weight is read once a token, so tokens/s cannot exceed bandwidth / weight bytes, with the bandwidth
            measured here (a float32 matrix-vector product over 1 GiB, the same access pattern, through NumPy's
            BLAS).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench import step_times, training_step

HERE = Path(__file__).resolve().parent
ARCHS = ("gpt2", "llama", "qwen3")
SMOLLM2_135M = dict(arch="llama", vocab_size=49152, block_size=2048, n_layer=30, n_head=9, n_kv_head=3, n_embd=576,
                    intermediate_size=1536, rope_theta=100000.0, norm_eps=1e-5, tie_word_embeddings=True)


def model_flops_per_step(config, B: int, T: int) -> float:
    """6 N per token for the matmuls' forward and backward, N the weights of every linear and of the head (an
    embedding lookup is no matmul), plus attention's 12 L T (nh hs) per token for its two products, forward and back."""
    from minigpt import GPT

    model = GPT(config)
    family = model.family
    lookups = {family.WTE, getattr(family, "WPE", None)}
    N = sum(p.size for name, p in model.params.items() if p.ndim == 2 and name not in lookups)
    N += config.vocab_size * config.n_embd if config.tie_word_embeddings else 0  # the tied head: wte used twice
    return (6 * N + 12 * config.n_layer * T * config.n_head * config.head_dim) * B * T


# --- workers: each runs in its own process ------------------------------------------------------------------

def worker_step(arch: str, steps: int, threads: int) -> dict:
    import numpy as np

    from minigpt import GPT, runtime
    from minigpt.config import TrainConfig, recipe_model

    runtime.configure(threads)  # as the `minigpt` command does
    cfg = TrainConfig(model=recipe_model(arch=arch))
    config = replace(cfg.model, vocab_size=65)
    B, T = cfg.batch_size, config.block_size
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 65, size=(B, T)), rng.integers(0, 65, size=(B, T))
    model = GPT(config, backend="auto")  # the default backend, as `minigpt train` picks it
    step = training_step(model, x, y)

    step()  # compilation, first-touch allocations
    times = step_times(step, steps)
    return {"step": statistics.median(times), "flops": model_flops_per_step(config, B, T), "backend": model.backend}


def worker_generate(impl: str, new_tokens: int, threads: int) -> dict:
    import numpy as np

    prompt = np.random.default_rng(0).integers(0, SMOLLM2_135M["vocab_size"], size=(1, 8))
    if impl.startswith("llamacpp"):
        run = llama_cpp_generate(impl.split("-")[1], prompt, new_tokens, threads)
    elif impl == "hf":
        import torch
        import transformers

        transformers.logging.set_verbosity_error()
        torch.set_num_threads(threads)
        from minigpt import GPT, GPTConfig, hf

        ours = GPT(GPTConfig(**SMOLLM2_135M))  # the same weights on both sides
        config = transformers.LlamaConfig(**{k: v for k, v in hf.llama_config(ours.config).items() if k != "architectures"})
        model = transformers.LlamaForCausalLM(config).eval()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in ours.params.items()}, strict=False)
        del ours
        p = torch.from_numpy(prompt)

        def run():
            with torch.no_grad():
                return model.generate(p, attention_mask=torch.ones_like(p), max_new_tokens=new_tokens,
                                      min_new_tokens=new_tokens, do_sample=False, use_cache=True, pad_token_id=0).numpy()
    else:
        from minigpt import GPT, GPTConfig, runtime

        runtime.configure(threads)
        model = GPT(GPTConfig(**SMOLLM2_135M), backend="auto").eval()
        if impl == "q8_0":
            model.quantize("q8_0")

        def run():
            return model.generate(prompt, new_tokens, do_sample=False)

    tokens = run()  # warm up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"tokens_per_sec": new_tokens / statistics.median(times), "tokens": tokens[0, 8:].tolist()}


def llama_cpp_generate(kind: str, prompt, new_tokens: int, threads: int):
    """llama.cpp's greedy generation on minigpt's GGUF export (f32 or q8_0) of the same weights: a function to time.
    The vocabulary's first 257 ids are a byte-level BPE's, the rest padding, as the export writes a vocabulary
    shorter than the model (the speed does not depend on it)."""
    import tempfile

    import llama_cpp
    import numpy as np

    from minigpt import GPT, GPTConfig, gguf
    from minigpt.data.bpe import BPETokenizer

    path = Path(tempfile.mkdtemp()) / f"smollm2-shape-{kind}.gguf"
    tokenizer = BPETokenizer({bytes([b]): b for b in range(256)}, special_tokens={"<|endoftext|>": 256})
    gguf.save(GPT(GPTConfig(**SMOLLM2_135M)), tokenizer, path, kind)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=prompt.shape[1] + new_tokens, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
    path.unlink()  # (mapped: the file stays readable until the process ends)
    ids = prompt[0].tolist()

    def run():
        out = []
        for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
            out.append(token)
            if len(out) == new_tokens:
                break
        return np.array([ids + out])
    return run


def worker_bandwidth(threads: int) -> dict:
    """Bytes per second a float32 matrix-vector product reads, over a 1 GiB matrix: the best of several."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    n = 16384
    W = np.ones((n, n), np.float32)  # (n, n), 1 GiB
    x = np.ones(n, np.float32)
    best = float("inf")
    for _ in range(8):
        t0 = time.perf_counter()
        W @ x
        best = min(best, time.perf_counter() - t0)
    return {"bytes_per_sec": W.nbytes / best}


def worker_params() -> dict:
    from minigpt import GPT, GPTConfig

    return {"params": GPT(GPTConfig(**SMOLLM2_135M)).num_params()}


WORKERS = {"step": worker_step, "generate": worker_generate, "bandwidth": worker_bandwidth, "params": worker_params}


def run_worker(kind: str, *args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps([kind, *args])]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"worker {kind} {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the sections ---------------------------------------------------------------------------------------------

def section_step(args):
    results = {arch: [] for arch in ARCHS}
    for _ in range(args.rounds):  # alternate, so that a slow spell of the machine hits every family
        for arch in ARCHS:
            results[arch].append(run_worker("step", arch, 20, args.threads))
    print("### Training step of the recipe's model in each family (default backend)\n")
    print("| arch | backend | step (ms) | MFLOP per step | GFLOP/s | time per FLOP / GPT-2's |")
    print("|---|---|---|---|---|---|")
    for arch in ARCHS:
        # the ratio from adjacent measurements: round r of this family against round r of GPT-2
        step = statistics.median(r["step"] for r in results[arch])
        flops = results[arch][0]["flops"]
        per_flop = [r["step"] / r["flops"] / (g["step"] / g["flops"]) for r, g in zip(results[arch], results["gpt2"])]
        print(f"| {arch} | {results[arch][0]['backend']} | {step * 1e3:.1f} | {flops / 1e6:.0f} | {flops / step / 1e9:.1f} | "
              f"{statistics.median(per_flop):.3f} |")
    print(flush=True)


IMPLS = {"auto": "minigpt generate (default backend), float32", "hf": "transformers LlamaForCausalLM.generate",
         "llamacpp-f32": "llama.cpp, F32 (minigpt's GGUF export)",
         "q8_0": "minigpt generate (default backend), Q8_0 (`--quantize q8_0`)",
         "llamacpp-q8_0": "llama.cpp, Q8_0 (minigpt's GGUF export)"}
SAME_AS = {"auto": "auto", "hf": "auto", "llamacpp-f32": "auto", "q8_0": "q8_0", "llamacpp-q8_0": "q8_0"}


def section_generate(args):
    params = run_worker("params")["params"]
    bandwidth = max(run_worker("bandwidth", args.threads)["bytes_per_sec"] for _ in range(2))
    bound = bandwidth / (4 * params)  # every float32 weight read once a token
    impls = [impl for impl in IMPLS if impl in args.impls]
    speeds = {impl: [] for impl in impls}
    tokens = {}
    for _ in range(args.rounds // 2 or 1):
        for impl in impls:
            r = run_worker("generate", impl, args.new_tokens, args.threads)
            speeds[impl].append(r["tokens_per_sec"])
            tokens[impl] = r["tokens"]
    print(f"### Greedy generation, SmolLM2-135M's shape ({params:,} parameters, float32), {args.new_tokens} new tokens "
          f"after 8, {args.threads} threads\n")
    print(f"Bandwidth (float32 matrix-vector product over 1 GiB): {bandwidth / 1e9:.1f} GB/s; bound: "
          f"{bandwidth / 1e9:.1f} GB/s / {4 * params / 1e6:.0f} MB a token = {bound:.1f} tokens/s (float32; Q8_0 "
          f"reads 34 bytes a block of 32 weights, 0.27 of it).\n")
    print("| | tokens/s (median) | its bound / tokens/s | the same tokens as minigpt's (same precision) |")
    print("|---|---|---|---|")
    for impl in impls:
        speed = statistics.median(speeds[impl])
        same = tokens[impl] == tokens.get(SAME_AS[impl], tokens[impl])
        its_bound = bound * (32 / 34 * 4 if "q8_0" in impl else 1)  # Q8_0: 34 bytes a block of 32 weights
        print(f"| {IMPLS[impl]} | {speed:.1f} | {its_bound / speed:.2f} | {'yes' if same else 'no'} |")
    for ours, theirs in (("auto", "llamacpp-f32"), ("q8_0", "llamacpp-q8_0"), ("auto", "hf")):
        if ours in speeds and theirs in speeds:
            print(f"\nminigpt {ours} / {theirs}: {statistics.median(speeds[ours]) / statistics.median(speeds[theirs]):.2f}x"
                  f" (tokens per second)")
    print(flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=["step", "generate"], default=["step", "generate"])
    parser.add_argument("--rounds", type=int, default=4, help="alternating measurements of each")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--impls", nargs="+", choices=list(IMPLS), default=list(IMPLS),
                        help="generate: what to measure (llamacpp-*: needs llama-cpp-python)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = json.loads(args.worker)
        print(json.dumps(WORKERS[kind](*rest)))
        return
    sys.path.insert(0, str(HERE))
    from bench import machine

    print(f"machine: {machine()}; {args.threads} threads; {time.strftime('%Y-%m-%d')}\n", flush=True)
    if "step" in args.sections:
        section_step(args)
    if "generate" in args.sections:
        section_generate(args)


if __name__ == "__main__":
    main()
