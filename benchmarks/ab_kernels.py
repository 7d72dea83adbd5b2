"""Two versions of the C kernels against each other, in one process, alternating: what a change to kernels/ buys.

    python benchmarks/ab_kernels.py --base HEAD~1                 # the committed kernels before, against the tree's
    python benchmarks/ab_kernels.py --base HEAD --blocks 30 --config gpt2
    python benchmarks/ab_kernels.py --base /some/checkout         # a directory holding a kernels/ folder

Builds the library of each version (the flags of minigpt/backends/c), loads both into this process, and runs the
recipe's training step (or GPT-2 small's: --config gpt2) with one, then the other, in blocks of ten steps (two for
gpt2), in alternating order, --blocks times; prints each version's median step and their ratio, and the median of
the blocks' paired ratios. Two separate processes differ by up to 10% within minutes on a shared machine; two
libraries in one process, alternating every few hundred milliseconds, show differences past about 1%: the same
kernels against themselves gave 0.989 to 1.010 in four runs of 20 blocks on the AVX-512 Xeon of docs/kernels.md (6
blocks once gave 1.04: take 20 or more). The Python side is this tree's in both.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import CONFIGS, cpu_name
from minigpt import GPT, GPTConfig, runtime
from minigpt.optim import AdamW

ROOT = Path(__file__).resolve().parents[1]


def kernels_of(base: str, into: Path) -> Path:
    """The kernels/ folder of `base`: a directory holding one, or a git revision of this repository (extracted)."""
    if Path(base, "kernels", "minigpt.c").is_file():
        return Path(base, "kernels")
    archive = subprocess.run(["git", "archive", base, "kernels"], cwd=ROOT, capture_output=True)
    if archive.returncode:
        sys.exit(f"--base {base}: neither a directory with kernels/ nor a revision git knows "
                 f"({archive.stderr.decode().strip()})")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "kernels"


def load(kernels: Path, so: Path):
    """Build kernels/minigpt.c into `so` and load it with the backend's FFI."""
    from minigpt.backends import c

    built = subprocess.run(["cc", *c.FLAGS, str(kernels / "minigpt.c"), "-o", str(so), "-lm"], capture_output=True,
                           text=True)
    if built.returncode:
        sys.exit(f"compiling {kernels} failed: " + built.stderr.strip().splitlines()[0])
    library = c.ffi.dlopen(str(so), c.ffi.RTLD_NOW)
    library.minigpt_init(c.ffi.NULL)
    return library


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="a git revision, or a directory holding a kernels/ folder")
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--config", choices=("recipe", "gpt2"), default="recipe")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    threads = runtime.configure(args.threads)
    from minigpt.backends import c

    c.lib()  # the tree's own library first: its FFI, and its OpenMP threads counted
    with tempfile.TemporaryDirectory(prefix="minigpt-ab-") as tmp:
        tmp = Path(tmp)
        libraries = {"base": load(kernels_of(args.base, tmp), tmp / "base.so"),
                     "tree": load(ROOT / "kernels", tmp / "tree.so")}
        for library in libraries.values():
            library.minigpt_set_threads(threads)
        V, block_size, L, H, C, B, T = CONFIGS[args.config]
        model = GPT(GPTConfig(vocab_size=V, block_size=block_size, n_layer=L, n_head=H, n_embd=C), backend="c")
        optimizer = AdamW(model.params, kernels=model.kernels)
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))

        def use(name):  # the backend's kernels look their functions up in c._lib through c._kernels
            c._lib = libraries[name]
            c._kernels.clear()

        def steps(n):
            for _ in range(n):
                model.forward(x, y)
                optimizer.step(model.backward(), 1e-4)

        n = 10 if args.config == "recipe" else 2
        for name in libraries:  # warm-up: first touches, the threads' buffers
            use(name)
            steps(2)
        times = {name: [] for name in libraries}
        for i in range(args.blocks):
            for name in (("base", "tree") if i % 2 == 0 else ("tree", "base")):
                use(name)
                t0 = time.perf_counter()
                steps(n)
                times[name].append((time.perf_counter() - t0) / n * 1e3)
    base, tree = np.array(times["base"]), np.array(times["tree"])
    print(f"{cpu_name()}, {threads} threads, {args.config} step, {args.blocks} blocks of {n} steps, alternating")
    print(f"base ({args.base}): {np.median(base):.2f} ms   tree: {np.median(tree):.2f} ms   "
          f"tree / base: {np.median(tree) / np.median(base):.3f} (paired blocks: {np.median(tree / base):.3f})")


if __name__ == "__main__":
    main()
