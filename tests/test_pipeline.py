"""The whole pipeline, `minigpt applications` (minigpt/applications/pipeline.py): its steps in order, its protocol
(steps.json rewritten whole after each step; a step listed there is not run again; what an unlisted step writes is
removed before it runs), a failure and a damaged steps.json said in one line, and the report card made from the
evaluations' files. The commands are stood in for by a fake that writes what each writes; the real ones run in the
slow test at the end, stopped by a kill and run again."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from minigpt.applications import pipeline
from minigpt.applications.baselines import BASELINES
from minigpt.applications.tasks import TASKS, read_split

PLAN = pipeline.PLANS["smoke"]
TASK_NAMES = ("wordnet-qa", "bible-translation")


class Fake:
    """Stands in for the commands: records each argv, writes each step's output (an evaluation's JSON, scored on the
    first records of the test split; a run's directory), and fails or "dies" (raises) at a chosen call."""

    def __init__(self, die_at: int | None = None, fail_at: int | None = None):
        self.calls, self.die_at, self.fail_at = [], die_at, fail_at

    def __call__(self, argv: list) -> int:
        self.calls.append(argv)
        n = len(self.calls)
        if "--json" in argv:
            path = argv[argv.index("--json") + 1]
            task = argv[argv.index("--task") + 1]
            records = read_split(task, "test")[:3]
            answer = TASKS[task].answer_field
            result = {"task": task, "split": "test", "shots": int(argv[argv.index("--shots") + 1])
                      if "--shots" in argv else 0, "num_beams": int(argv[argv.index("--num-beams") + 1])
                      if "--num-beams" in argv else 1,
                      "baseline": argv[argv.index("--baseline") + 1] if "--baseline" in argv else None,
                      "main_metric": TASKS[task].main, TASKS[task].main: float(n),
                      "ids": [r["id"] for r in records], "references": [r[answer] for r in records],
                      "predictions": [f"prediction {n}"] * len(records)}
            with open(path, "w") as f:  # begun: the fake may die before it is whole
                f.write(json.dumps(result)[: 10 if n == self.die_at else None])
        elif "--out-dir" in argv and argv[0] == "train":
            run = argv[argv.index("--out-dir") + 1]
            os.makedirs(run, exist_ok=True)
            open(os.path.join(run, "partial" if n == self.die_at else "ckpt"), "w").close()
        if n == self.die_at:
            raise KeyboardInterrupt  # the process ends here, its output half written
        return 1 if n == self.fail_at else 0


def test_the_steps_run_in_order_and_make_the_report(tmp_path):
    fake = Fake()
    md, html = pipeline.run(PLAN, tmp_path, tmp_path / "base", TASK_NAMES, say=lambda line: None, execute=fake)
    expected = pipeline.steps(PLAN, tmp_path, tmp_path / "base", TASK_NAMES)
    assert [s.argv for s in expected] == fake.calls
    per_task = len(BASELINES["wordnet-qa"]) + 2 + 2 * 2 + 1  # baselines, zero/few-shot, 2 fine-tunes + evals, beams
    assert len(fake.calls) == 2 * per_task
    done = json.loads((tmp_path / "steps.json").read_text())["steps"]
    assert [s["name"] for s in done] == [s.name for s in expected]
    text = md.read_text()
    for task in TASK_NAMES:
        assert f"## {task}" in text
    for row in ("| zero-shot |", "| few-shot (1) |", "| fine-tuned |", "| LoRA |", "| fine-tuned, 2 beams |",
                "| retrieval |", "| dictionary |"):
        assert row in text, row
    assert "trained before this pipeline" in text and "trained before this pipeline" in html.read_text()


def test_a_rerun_runs_nothing_again(tmp_path):
    pipeline.run(PLAN, tmp_path, tmp_path / "base", TASK_NAMES, say=lambda line: None, execute=Fake())
    again = Fake()
    said = []
    pipeline.run(PLAN, tmp_path, tmp_path / "base", TASK_NAMES, say=said.append, execute=again)
    assert again.calls == [] and all("done before" in line for line in said)


@pytest.mark.parametrize("die_at", [1, 5, 9, 12])
def test_a_pipeline_killed_at_a_step_goes_on_from_that_step(tmp_path, die_at):
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(PLAN, tmp_path, tmp_path / "base", TASK_NAMES, say=lambda line: None, execute=Fake(die_at))
    expected = pipeline.steps(PLAN, tmp_path, tmp_path / "base", TASK_NAMES)
    listed = json.loads((tmp_path / "steps.json").read_text())["steps"] if die_at > 1 else []
    assert [s["name"] for s in listed] == [s.name for s in expected[: die_at - 1]]
    half = expected[die_at - 1].output
    assert half.exists()  # what the killed step began is there...
    again = Fake()
    md, _ = pipeline.run(PLAN, tmp_path, tmp_path / "base", TASK_NAMES, say=lambda line: None, execute=again)
    assert again.calls == [s.argv for s in expected[die_at - 1:]]  # ... the rerun begins at that step
    if half.is_dir():  # and redid it whole
        assert sorted(p.name for p in half.iterdir()) == ["ckpt"]
    else:
        assert json.loads(half.read_text())["task"] in TASK_NAMES
    whole = tmp_path / "whole"
    md_whole, _ = pipeline.run(PLAN, whole, whole / "base", TASK_NAMES, say=lambda line: None, execute=Fake())
    assert md.read_text().count("|") == md_whole.read_text().count("|")


def test_a_failed_step_stops_the_pipeline_in_one_line(tmp_path):
    with pytest.raises(RuntimeError) as e:
        pipeline.run(PLAN, tmp_path, tmp_path / "base", TASK_NAMES, say=lambda line: None, execute=Fake(fail_at=3))
    step = pipeline.steps(PLAN, tmp_path, tmp_path / "base", TASK_NAMES)[2]
    assert str(e.value).count("\n") == 0 and repr(step.name) in str(e.value) and "exit status 1" in str(e.value)
    listed = json.loads((tmp_path / "steps.json").read_text())["steps"]
    assert len(listed) == 2


def test_a_damaged_steps_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "steps.json").write_text('{"steps": [{"name": 1}')
    with pytest.raises(ValueError, match=r"steps.json is not the list of steps .*move it away") as e:
        pipeline.run(PLAN, tmp_path, None, TASK_NAMES, say=lambda line: None, execute=Fake())
    assert "\n" not in str(e.value)


def test_without_a_base_the_pipeline_builds_the_corpus_and_trains_one(tmp_path):
    names = [s.name for s in pipeline.steps(pipeline.PLANS["full"], tmp_path, None, ("wordnet-qa",))]
    assert names[:4] == ["corpus", "tokenizer", "tokens", "base"]
    base = pipeline.steps(pipeline.PLANS["full"], tmp_path, None, ("wordnet-qa",))[3]
    assert base.command == f"minigpt train --preset base --out-dir {tmp_path / 'base'}"


def test_the_command_refuses_unknown_tasks_and_a_missing_base(tmp_path):
    for flags, message in ((["--tasks", "wordnet-qa,poetry"], "the tasks are"),
                           (["--base", str(tmp_path / "nothing")], "no such run directory")):
        out = subprocess.run([sys.executable, "-m", "minigpt.cli", "applications", "--out", str(tmp_path / "o"),
                              *flags], capture_output=True, text=True)
        assert out.returncode == 1 and message in out.stderr and out.stderr.count("\n") == 1, out.stderr


@pytest.mark.slow
def test_the_smoke_pipeline_killed_and_run_again_gives_the_tables_of_one_run(tmp_path):
    """Every command for real (the shipped sample corpus, a tiny model, three records a split), killed with SIGKILL
    partway and run again: its tables equal those of a run that was never stopped (the runs are seeded)."""
    env = {**os.environ, "MINIGPT_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "minigpt.cli", "applications", "--plan", "smoke", "--tasks", ",".join(TASK_NAMES)]
    subprocess.run([*command, "--out", str(tmp_path / "whole")], env=env, check=True, capture_output=True)
    stopped = subprocess.Popen([*command, "--out", str(tmp_path / "stopped")], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    for line in stopped.stdout:  # killed as its eighth step begins, the whole process group with its child
        if line.startswith(b"[8/"):
            time.sleep(1.0)
            os.killpg(stopped.pid, signal.SIGKILL)
            break
    assert stopped.wait() == -signal.SIGKILL  # (killed, not finished)
    assert not (tmp_path / "stopped" / "report.md").exists()
    subprocess.run([*command, "--out", str(tmp_path / "stopped")], env=env, check=True, capture_output=True)

    def tables(out):
        text = (out / "report.md").read_text()
        return text[text.index("## " + TASK_NAMES[0]):].replace(str(out), "OUT")
    assert tables(tmp_path / "stopped") == tables(tmp_path / "whole")
