"""The C backend's matmul (kernels/gemm.c) against OpenBLAS's sgemm (NumPy's `@`), in the same run:

    python benchmarks/bench_matmul.py                      # about 3 minutes on 2 cores
    python benchmarks/bench_matmul.py --figure docs/figures/roofline.png

The three products of a linear layer, out = x @ w, dx = dout @ w^T and dw = x^T @ dout, at the shapes of GPT-2 small
(B * T = 256 rows, B=4, T=64) and of nanoGPT's recipe (768 rows), float32, with every core. Each implementation is
measured in its own process (so that neither's waiting threads take the other's cores), in alternating rounds; a
product's figure is the best of its round, and a ratio the median of adjacent rounds' ratios. Also measured: the
micro-kernel alone on data in its L1 cache (the roof of the roofline: the most the matmul can reach here), with the
FLOPs a cycle of two FMA units and the clock that implies; what packing a transposed A (x^T @ dout) buys,
always packed against never; and NumPy's sgemm on a 2048-cube product. With --figure, draws the roofline (needs
matplotlib).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SHAPES = {  # (rows N, in C, out OC) of the linear layers
    "gpt2": [(256, 768, 2304), (256, 768, 768), (256, 768, 3072), (256, 3072, 768)],
    "recipe": [(768, 128, 384), (768, 128, 128), (768, 128, 512), (768, 512, 128)],
}
PRODUCTS = ("x @ w", "dout @ w^T", "x^T @ dout")
MICROKERNEL_TILE = {"avx512": 12 * 32, "avx2": 6 * 16, "portable": 4 * 8}  # MR x NR (kernels/microkernels.c)
KC = 256  # kernels/minigpt.c


def operands(N, C, OC, product, rng):
    """A and B of the product, laid out as the linear layer holds them (the transposes are views)."""
    import numpy as np

    x, w, dout = (rng.normal(size=shape).astype(np.float32) for shape in ((N, C), (C, OC), (N, OC)))
    return {"x @ w": (x, w), "dout @ w^T": (dout, w.T), "x^T @ dout": (x.T, dout)}[product]


def best_time(f, seconds=0.3):
    f()
    n = 1
    while True:  # enough repeats for about `seconds`, the best of five such runs
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        if time.perf_counter() - t0 > seconds / 5:
            break
        n *= 2
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def worker(impl: str, threads: int) -> dict:
    import numpy as np

    from minigpt import runtime

    runtime.configure(threads)
    rng = np.random.default_rng(0)
    results = {}
    if impl == "c":
        from minigpt.backends import c

        lib = c.lib()

        def matmul(A, B):
            M, K = A.shape
            out = np.empty((M, B.shape[1]), dtype=np.float32)
            s = A.itemsize
            lib.gemm_f32(M, B.shape[1], K, c.ptr(A), A.strides[0] // s, A.strides[1] // s, c.ptr(B), B.strides[0] // s,
                         B.strides[1] // s, c.ptr(out), out.shape[1], c.ffi.NULL, 0, 1)
            return out
        results["microkernel"] = c.use_microkernel()
        # the roof: the micro-kernel alone on data in L1 (kernels/minigpt.c), one thread; FLOPs of one call
        flops = 2 * MICROKERNEL_TILE[results["microkernel"]] * KC
        repeats = 200_000
        results["roof_one_core"] = flops * repeats / min(lib.minigpt_microkernel_seconds(repeats) for _ in range(5))
        # what packing a transposed A buys: x^T @ dout with it always packed, and never
        for config, shapes in SHAPES.items():
            for N, C, OC in shapes:
                A, B = operands(N, C, OC, "x^T @ dout", rng)
                for how, step in (("packed", 0), ("in place", 1 << 62)):
                    lib.minigpt_set_pack_a_min_step(step)
                    results[f"pack {config} {N}x{C}x{OC} {how}"] = 2 * N * C * OC / best_time(lambda: matmul(A, B))
                lib.minigpt_set_pack_a_min_step(-1)
    else:
        def matmul(A, B):
            return A @ B
        A = B = np.ones((2048, 2048), np.float32)
        results["peak_2048"] = 2 * 2048**3 / best_time(lambda: matmul(A, B))
    for config, shapes in SHAPES.items():
        for N, C, OC in shapes:
            for product in PRODUCTS:
                A, B = operands(N, C, OC, product, rng)
                results[f"{config} {N}x{C}x{OC} {product}"] = 2 * N * C * OC / best_time(lambda: matmul(A, B))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--figure", help="draw the roofline into this PNG")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads)))
        return
    runs = {"c": [], "numpy": []}
    for _ in range(args.rounds):
        for impl in runs:
            out = subprocess.run([sys.executable, __file__, "--worker", impl, "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True)
            runs[impl].append(json.loads(out.stdout.strip().splitlines()[-1]))
    ours, blas = runs["c"], runs["numpy"]
    roof = statistics.median(r["roof_one_core"] for r in ours) * args.threads
    ghz = clock_ghz()
    lanes = {"avx512": 16, "avx2": 8, "portable": 8}[ours[0]["microkernel"]]
    # two FMA units, each a multiply and an add on `lanes` floats: 4 * lanes FLOPs a cycle; the clock under load is not
    # what /proc/cpuinfo reports (the nominal one) when the core boosts, so the rate gives the clock it ran at
    per_cycle = 2 * 2 * lanes
    theory = (f"; two FMA units of {lanes} floats make {per_cycle} FLOPs a cycle, so the kernel ran at least at "
              f"{roof / args.threads / per_cycle / 1e9:.2f} GHz" + (f" (/proc/cpuinfo: {ghz:.2f} GHz)" if ghz else ""))
    print(f"micro-kernel {ours[0]['microkernel']} alone, data in L1: {roof / args.threads / 1e9:.0f} GFLOP/s a core, "
          f"{roof / 1e9:.0f} with {args.threads} threads{theory}; NumPy's sgemm on 2048^3: "
          f"{statistics.median(r['peak_2048'] for r in blas) / 1e9:.0f} GFLOP/s\n")
    print("What packing a transposed A buys (x^T @ dout, GFLOP/s):\n")
    print("| shape (N, C, OC) | step of A along k (bytes) | packed | in place | packed / in place |")
    print("|---|---|---|---|---|")
    for key in [k for k in ours[0] if k.startswith("pack ") and k.endswith(" packed")]:
        _, config, shape, _ = key.split(" ")
        packed = statistics.median(r[key] for r in ours)
        in_place = statistics.median(r[key.replace(" packed", " in place")] for r in ours)
        print(f"| {config} {shape} | {4 * int(shape.split('x')[1])} | {packed / 1e9:.0f} | {in_place / 1e9:.0f} | "
              f"{packed / in_place:.2f} |")
    print()
    print("| shape (N, C, OC) | product | C matmul (GFLOP/s) | OpenBLAS (GFLOP/s) | C / OpenBLAS |")
    print("|---|---|---|---|---|")
    rows = []
    for key in [k for k in ours[0] if k.count(" ") >= 2 and not k.startswith("pack ")]:
        config, shape, product = key.split(" ", 2)
        a, b = statistics.median(r[key] for r in ours), statistics.median(r[key] for r in blas)
        ratio = statistics.median(x[key] / y[key] for x, y in zip(ours, blas))
        rows.append((config, shape, product, a, b, ratio))
        print(f"| {config} {shape} | `{product}` | {a / 1e9:.0f} | {b / 1e9:.0f} | {ratio:.2f} |")
    for config in SHAPES:
        ratios = [r[5] for r in rows if r[0] == config]
        print(f"\n{config}: C / OpenBLAS, median {statistics.median(ratios):.2f}, lowest {min(ratios):.2f}")
    if args.figure:
        draw_roofline(args.figure, rows, roof)


def clock_ghz() -> float | None:
    """The CPU's clock as the kernel reports it (Linux), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
        return max(mhz) / 1000 if mhz else None
    except OSError:
        return None


def draw_roofline(path, rows, roof):
    """GFLOP/s against arithmetic intensity (FLOPs per byte of A, B and C moved once), with the compute roof."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for config, marker in (("gpt2", "o"), ("recipe", "s")):
        for impl, index, color in (("C matmul", 3, "tab:blue"), ("OpenBLAS", 4, "tab:orange")):
            points = []
            for c, shape, _, *rates in ((r[0], r[1], r[2], r[3], r[4]) for r in rows):
                if c != config:
                    continue
                N, C, OC = (int(v) for v in shape.split("x"))
                intensity = 2 * N * C * OC / (4 * (N * C + C * OC + N * OC))
                points.append((intensity, rates[index - 3] / 1e9))
            ax.scatter(*zip(*points), marker=marker, color=color, label=f"{impl}, {config} shapes", alpha=0.8)
    ax.axhline(roof / 1e9, color="black", lw=1, ls="--", label="the micro-kernel alone, data in L1 (compute roof)")
    ax.set_xscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs per byte of A, B and C)")
    ax.set_ylabel("GFLOP/s (float32, every core)")
    ax.set_title("The three products of a linear layer: C matmul and OpenBLAS")
    ax.set_ylim(0, roof / 1e9 * 1.15)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
