"""The whole story in one command, `minigpt applications --out DIR`: a corpus of real English, a tokenizer, a base model
pretrained on it, then for each task (minigpt/applications/tasks.py) its baselines, the base model zero-shot and
few-shot, a full fine-tune and a LoRA fine-tune, each scored on the test split; last, the report card
(minigpt/applications/report.py): DIR/report.md and DIR/report.html.

Every step is a `minigpt` command, run as a reader would type it (a child process), so that the card's commands are
the ones that made its numbers:

    corpus      minigpt data build english
    tokenizer   minigpt tokenizer train --data .../corpora/english/train.txt --vocab-size 4096 --out DIR/tokenizer
    tokens      minigpt data tokenize english --tokenizer DIR/tokenizer
    base        minigpt train --preset base --out-dir DIR/base
    per task    minigpt eval --task T --baseline B --json DIR/eval/T.B.json                        (each baseline)
                minigpt eval --task T --out-dir DIR/base [--shots K] --json DIR/eval/T.zero-shot.json (and few-shot)
                minigpt train --task T --init-from DIR/base --out-dir DIR/runs/T.full ...          (and .lora)
                minigpt eval --task T --out-dir DIR/runs/T.full [--num-beams N] --json ...
With --base RUN the first four are replaced by a base model trained before (the card says so).

The protocol, so that a pipeline stopped anywhere (Ctrl-C, a kill, a crash) goes on where it stopped when run again:
    1. DIR/steps.json lists the steps done: each one's name, command and wall time. It is rewritten whole, atomically
       (minigpt.files.atomic_write), after each step, so it is always a complete list of complete steps.
    2. A step listed there with the same command is done: it is not run again.
    3. A step that is not listed may have begun: what it writes (a run directory, an evaluation's JSON, the tokenizer,
       each inside DIR, named by the plan) is removed before it runs. The corpus and its tokens live in the cache and
       are written by their commands atomically, checked when found: those steps are run again, and say so at once.
    4. A step that fails stops the pipeline with one line: the step, its command, its exit status.
    5. The report is written last, atomically; it is made again from the files on every run.
Tests: tests/test_pipeline.py. Docs: docs/applications.md.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minigpt.applications import report
from minigpt.applications.baselines import BASELINES
from minigpt.applications.tasks import TASKS
from minigpt.files import atomic_write, cache_dir


@dataclass(frozen=True)
class Plan:
    """What the pipeline trains and scores: the corpus and its tokenizer, the base run's flags, the fine-tunes'."""
    corpus: str  # a corpus of `minigpt data build`
    vocab_size: int  # the tokenizer's
    base: tuple[str, ...]  # `minigpt train` flags of the base model
    fine_tune: tuple[str, ...]  # `minigpt train --task T --init-from BASE` flags of every full fine-tune
    lora: tuple[str, ...]  # ... and of every LoRA fine-tune
    shots: int  # the few-shot row's examples
    num_beams: int  # a row of the fine-tuned model decoded with beam search (1: no such row)
    limit: int | None  # records of each test split scored (None: all of them)


FINE_TUNE = ("--max-iters", "300", "--batch-size", "16", "--learning-rate", "3e-4", "--warmup-iters", "30",
             "--eval-interval", "100", "--eval-iters", "20", "--truncate")
# LoRA trains 3% as many weights, each further from where it starts: a larger learning rate
LORA = ("--max-iters", "300", "--batch-size", "16", "--learning-rate", "2e-3", "--warmup-iters", "30",
        "--eval-interval", "100", "--eval-iters", "20", "--truncate", "--lora-rank", "16", "--lora-alpha", "32")
SMOKE_TUNE = ("--max-iters", "2", "--batch-size", "2", "--eval-interval", "2", "--eval-iters", "1", "--warmup-iters",
              "1", "--truncate")
PLANS = {
    # the report card of docs/applications.md: the base preset (about 30 minutes here), then the tasks
    "full": Plan("english", 4096, ("--preset", "base"), FINE_TUNE, LORA, 3, 4, None),
    # every step on the shipped sample corpus, a tiny model and a few records: the pipeline's own test
    "smoke": Plan("sample", 300, ("--arch", "qwen3", "--corpus", "sample", "--n-layer", "1", "--n-head", "2",
                                  "--n-embd", "32", "--block-size", "256", "--batch-size", "2", "--max-iters", "2",
                                  "--eval-interval", "2", "--eval-iters", "1", "--warmup-iters", "1"),
                  SMOKE_TUNE, SMOKE_TUNE + ("--lora-rank", "2"), 1, 2, 3),
}


@dataclass(frozen=True)
class Step:
    """One command of the pipeline."""
    name: str
    argv: list  # after `minigpt`
    output: Path | None  # what it writes inside the output directory (removed before it runs: a step that did not
    # finish may have begun it); None: it writes into the cache only, atomically, itself
    row: tuple | None = None  # an evaluation's (task, model scored): its row of the report card

    @property
    def command(self) -> str:
        return " ".join(["minigpt", *(quoted(a) for a in self.argv)])


def quoted(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./=:," for c in arg) else "'" + arg.replace("'", "'\\''") + "'"


def steps(plan: Plan, out: Path, base: Path | None, tasks: tuple) -> list[Step]:
    """The plan's steps, in order. base: a base run trained before (its steps are left out)."""
    found = []
    if base is None:
        text = cache_dir() / "corpora" / plan.corpus / "train.txt"
        found += [Step("corpus", ["data", "build", plan.corpus], None),
                  Step("tokenizer", ["tokenizer", "train", "--data", str(text), "--vocab-size", str(plan.vocab_size),
                                     "--out", str(out / "tokenizer")], out / "tokenizer"),
                  Step("tokens", ["data", "tokenize", plan.corpus, "--tokenizer", str(out / "tokenizer")], None),
                  Step("base", ["train", *plan.base, "--out-dir", str(out / "base")], out / "base")]
        base = out / "base"
    for task in tasks:
        def evaluation(name: str, flags: list, model: str) -> Step:
            path = out / "eval" / f"{task}.{name}.json"
            return Step(f"{task}: {name}", ["eval", "--task", task, *flags, *limit, "--json", str(path)], path,
                        (task, model))
        limit = [] if plan.limit is None else ["--limit", str(plan.limit)]
        found += [evaluation(b, ["--baseline", b], "base") for b in BASELINES[task]]
        found.append(evaluation("zero-shot", ["--out-dir", str(base)], "base"))
        if plan.shots > 0:
            found.append(evaluation("few-shot", ["--out-dir", str(base), "--shots", str(plan.shots)], "base"))
        for kind, flags, model in (("full", plan.fine_tune, "fine-tuned"), ("lora", plan.lora, "LoRA")):
            run = out / "runs" / f"{task}.{kind}"
            found.append(Step(f"{task}: {kind} fine-tune", ["train", "--task", task, "--init-from", str(base),
                                                            *flags, "--out-dir", str(run)], run))
            found.append(evaluation(kind, ["--out-dir", str(run)], model))
            if plan.num_beams > 1 and kind == "full" and TASKS[task].application != "classification":
                found.append(evaluation(f"{kind}.beams", ["--out-dir", str(run), "--num-beams", str(plan.num_beams)],
                                        model))
    return found


def done_steps(out: Path) -> dict:
    """steps.json: name -> {"name", "command", "seconds"} of each step done ({} before the first)."""
    path = out / "steps.json"
    if not path.is_file():
        return {}
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))["steps"]
        return {s["name"]: {"name": str(s["name"]), "command": str(s["command"]), "seconds": float(s["seconds"])}
                for s in listed}
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is not the list of steps this pipeline writes; move it away (or choose another "
                         f"--out) and run again") from None


def child(argv: list) -> int:
    """Run `minigpt ARGV` as a child process, its output on ours; its exit status."""
    return subprocess.run([sys.executable, "-m", "minigpt.cli", *argv], env=os.environ).returncode


def run(plan: Plan, out: Path, base: Path | None, tasks: tuple, say: Callable = print,
        execute: Callable[[list], int] = child) -> tuple:
    """Every step not done yet, in order, then the report card: (report.md, report.html)."""
    out.mkdir(parents=True, exist_ok=True)
    plan_steps = steps(plan, out, base, tasks)
    done = done_steps(out)
    for n, step in enumerate(plan_steps, 1):
        if step.name in done and done[step.name]["command"] == step.command:
            say(f"[{n}/{len(plan_steps)}] {step.name}: done before ({done[step.name]['seconds']:.0f} s)")
            continue
        if step.output is not None and step.output.exists():  # begun by a run that stopped: begin again
            shutil.rmtree(step.output) if step.output.is_dir() else step.output.unlink()
        if step.output is not None:
            step.output.parent.mkdir(parents=True, exist_ok=True)
        say(f"[{n}/{len(plan_steps)}] {step.name}: {step.command}")
        start = time.perf_counter()
        status = execute(step.argv)
        if status != 0:
            raise RuntimeError(f"the pipeline stopped at its step {step.name!r} (exit status {status}): "
                               f"{step.command}; fix what it said above and run the pipeline again: it goes on there")
        done[step.name] = {"name": step.name, "command": step.command, "seconds": time.perf_counter() - start}
        with atomic_write(out / "steps.json") as f:
            f.write(json.dumps({"steps": list(done.values())}, indent=1) + "\n")
    return report.write(card(plan_steps, done, base), out)


def card(plan_steps: list, done: dict, base: Path | None) -> report.ReportCard:
    """The report card of the steps done: their times, and one table a task from its evaluations' JSON."""
    timed = tuple(report.Step(s.name, s.command, done[s.name]["seconds"]) for s in plan_steps)
    note = "" if base is None else (f"The base model is a run trained before this pipeline ({base}): its corpus, "
                                    f"tokenizer and training are not among the steps, nor in the time.")
    tables = {}
    for s in plan_steps:
        if s.row is not None:
            task, model = s.row
            tables.setdefault(task, []).append(report.Evaluation(report.read_result(s.output), s.command, model))
    return report.ReportCard(report.this_machine(), timed, tuple(report.table(rows) for rows in tables.values()),
                             note=note)
