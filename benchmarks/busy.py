"""`minigpt sample` and a short `minigpt train` on a busy machine: while N other programs each keep a core busy (a
Python loop apiece), the command with its default threads against `--threads 1`, and against the defaults minigpt
had before it chose its threads from the free cores and shortened the threads' spinning (every core, and the
libraries' own waiting: OpenBLAS 2^28 cycles, GNU OpenMP 300,000 turns, LLVM OpenMP 200 ms). Each run is a fresh
process, start-up included, as a user meets it.

    python benchmarks/busy.py                                  # 0, 1 and 2 competitors, 3 rounds: about 10 minutes
    python benchmarks/busy.py --competitors 0 2 --rounds 5 --backend numpy

Prints the machine (CPU model, cores), then a Markdown table per command: the median wall time of each setting
against each number of competitors (min and max in brackets). Run it on an otherwise quiet machine: the competitors
should be the only load it meets. The settings' reasons: minigpt/runtime.py, docs/kernels.md (Threads).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from minigpt import runtime  # noqa: E402  (only its WAITING and available_cores: nothing is configured here)

SPINNING_AS_BEFORE = {"OPENBLAS_THREAD_TIMEOUT": "28", "GOMP_SPINCOUNT": "300000", "KMP_BLOCKTIME": "200"}
SETTINGS = {  # name: (extra flags, environment)
    "default": ([], {}),
    "--threads 1": (["--threads", "1"], {}),
    "every core, long spins (before)": ([], {"MINIGPT_THREADS": str(runtime.available_cores()), **SPINNING_AS_BEFORE}),
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def minigpt(*args, env: dict | None = None) -> float:
    """Run `minigpt ARGS` to its end; its wall time in seconds (an error stops the benchmark)."""
    base = {k: v for k, v in os.environ.items() if k not in runtime.WAITING and k != "MINIGPT_THREADS"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "minigpt.cli", *args], capture_output=True, text=True,
                          env={**base, "PYTHONPATH": str(HERE.parent), **(env or {})})
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"minigpt {' '.join(args)} failed:\n{done.stderr}")
    return took


class Competitors:
    """N processes that each keep a core busy for as long as the block lasts."""

    def __init__(self, n: int):
        self.n, self.processes = n, []

    def __enter__(self):
        self.processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        time.sleep(1.0)  # running, and in the load average's last second
        return self

    def __exit__(self, *exc):
        for p in self.processes:
            p.kill()
            p.wait()


def text_file(work: Path) -> Path:
    """Tiny Shakespeare ($MINIGPT_DATA, or ../shared/data beside the repository) if it is here, else a made-up text of
    the same size (the speed does not depend on the words)."""
    path = Path(os.environ.get("MINIGPT_DATA") or HERE.parents[1] / "shared" / "data" / "tinyshakespeare.txt")
    if path.is_file():
        return path
    import numpy as np

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=rng.integers(2, 9))) for _ in range(3000)]
    made = work / "text.txt"
    text = " ".join(rng.choice(words, size=200_000))
    made.write_text("\n".join(text[i:i + 60] for i in range(0, len(text), 60)))
    return made


def table(title: str, command, competitors: list, rounds: int, work: Path) -> None:
    """command(): the arguments of one run (a new --out-dir each, for train), in the directory `work`."""
    times = {(name, n): [] for name in SETTINGS for n in competitors}
    for n in competitors:
        with Competitors(n):
            for _ in range(rounds):  # alternate, so that a slow spell of the machine hits every setting
                for name, (flags, env) in SETTINGS.items():
                    times[name, n].append(minigpt(*command(), *flags, env=env))
    shown = " ".join(command()).replace(str(work), "WORK")
    print(f"### {title}\n\n`minigpt {shown}`, wall time in seconds, median of {rounds} (min to max)\n")
    print("| setting | " + " | ".join(f"{n} competing" for n in competitors) + " |")
    print("|---|" + "---|" * len(competitors))
    for name in SETTINGS:
        cells = [f"{statistics.median(t):.2f} ({min(t):.2f} to {max(t):.2f})" for t in (times[name, n] for n in competitors)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--competitors", type=int, nargs="+", default=[0, 1, 2], help="busy programs (default: 0 1 2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="auto", help="minigpt's --backend (default: auto, the C kernels)")
    args = parser.parse_args()
    print(f"{cpu_model()}, {os.cpu_count()} cores ({runtime.available_cores()} for this process); Python "
          f"{sys.version.split()[0]}\n")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        text = text_file(work)
        run = work / "run"  # a default-sized model: its weights do not change the speed
        minigpt("train", "--data", str(text), "--out-dir", str(run), "--max-iters", "1", "--eval-iters", "1",
                "--backend", args.backend)
        minigpt("sample", "--out-dir", str(run), "--max-new-tokens", "5")  # warm: compiled kernels, page cache
        table("Sampling (500 tokens from a newline)", lambda: ["sample", "--out-dir", str(run), "--backend", args.backend],
              args.competitors, args.rounds, work)
        runs = iter(range(10**9))
        table("A short training run (30 steps, an evaluation of 5 batches)",
              lambda: ["train", "--data", str(text), "--out-dir", str(work / f"train-{next(runs)}"), "--max-iters", "30",
                       "--eval-interval", "30", "--eval-iters", "5", "--backend", args.backend],
              args.competitors, args.rounds, work)


if __name__ == "__main__":
    main()
