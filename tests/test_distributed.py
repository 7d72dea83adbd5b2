"""Data-parallel training over MPI equals single-process training: `mpiexec -n 2` against one process
with the same global batch, step for step."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minigpt.cli import main
from helpers import make_text, read_log, require, without_timing
from tolerances import DISTRIBUTED_RTOL

HERE = Path(__file__).resolve().parent
TINY = ["--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--eval-iters", "4", "--eval-interval", "10", "--warmup-iters", "2", "--max-iters", "20"]


@pytest.fixture(scope="module")
def mpiexec():
    require("mpi4py", extra="mpi")
    path = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    assert path, "mpi4py is installed but there is no mpiexec"
    return path


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    return make_text(tmp_path_factory.mktemp("mpi") / "text.txt", seed=0)


def run(cmd, timeout=180):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def minigpt(*args):
    return [sys.executable, "-m", "minigpt.cli", *args]


def assert_same_losses(one, two, rtol):
    assert [r["iter"] for r in one] == [r["iter"] for r in two]
    for a, b in zip(one, two):
        for key in ("loss", "train_loss", "val_loss", "grad_norm"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=rtol), (a["iter"], key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("accumulation", [2, 4])
def test_two_ranks_compute_what_one_process_computes(mpiexec, text, tmp_path, dtype, accumulation):
    args = ["--data", str(text), *TINY, "--dtype", dtype, "--gradient-accumulation-steps", str(accumulation)]
    assert main(["train", *args, "--out-dir", str(tmp_path / "one")]) == 0  # one process: this one
    double = run([mpiexec, "-n", "2", *minigpt("train", *args, "--out-dir", str(tmp_path / "two"))])
    assert double.returncode == 0, double.stderr
    assert "data-parallel over 2 ranks" in double.stderr
    assert double.stdout.count("done:") == 1  # rank 0 alone reports, logs and checkpoints
    assert_same_losses(read_log(tmp_path / "one"), read_log(tmp_path / "two"), DISTRIBUTED_RTOL[dtype])


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_two_ranks_train_a_rotary_model_as_one_process_does(mpiexec, text, tmp_path, arch):
    # grouped-query attention (one key/value head) and an untied head: every gradient the ranks average
    args = ["--data", str(text), *TINY, "--arch", arch, "--n-kv-head", "1", "--dtype", "float64",
            "--gradient-accumulation-steps", "2"]
    assert main(["train", *args, "--out-dir", str(tmp_path / "one")]) == 0
    double = run([mpiexec, "-n", "2", *minigpt("train", *args, "--out-dir", str(tmp_path / "two"))])
    assert double.returncode == 0, double.stderr
    assert_same_losses(read_log(tmp_path / "one"), read_log(tmp_path / "two"), DISTRIBUTED_RTOL["float64"])


def test_parameters_stay_identical_on_every_rank(mpiexec, text, tmp_path):
    result = run([mpiexec, "-n", "2", sys.executable, str(HERE / "mpi_worker.py"), "hash", "--data", str(text), *TINY,
                  "--gradient-accumulation-steps", "2", "--out-dir", str(tmp_path / "run")])
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["rank"] for r in reports) == [0, 1]
    assert reports[0]["sha256"] == reports[1]["sha256"]


def test_ranks_that_drift_apart_are_caught(mpiexec, text, tmp_path):
    result = run([mpiexec, "-n", "2", sys.executable, str(HERE / "mpi_worker.py"), "drift", "--data", str(text), *TINY,
                  "--gradient-accumulation-steps", "2", "--out-dir", str(tmp_path / "run")])
    assert result.returncode != 0
    assert "at iter 10 the parameters of rank(s) [1] differ from rank 0's" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_rank_that_dies_ends_the_job_instead_of_hanging(mpiexec, text, tmp_path):
    started = time.time()
    result = run([mpiexec, "-n", "2", sys.executable, str(HERE / "mpi_worker.py"), "die", "--data", str(text), *TINY,
                  "--max-iters", "1000", "--gradient-accumulation-steps", "2", "--out-dir", str(tmp_path / "run")],
                 timeout=120)
    assert result.returncode != 0
    assert time.time() - started < 60


def test_resume_with_two_ranks_continues_exactly(mpiexec, text, tmp_path):
    args = ["--data", str(text), *TINY, "--gradient-accumulation-steps", "2", "--lr-decay-iters", "20"]
    straight = run([mpiexec, "-n", "2", *minigpt("train", *args, "--out-dir", str(tmp_path / "straight"))])
    assert straight.returncode == 0, straight.stderr
    first = run([mpiexec, "-n", "2", *minigpt("train", *args, "--max-iters", "10", "--out-dir", str(tmp_path / "resumed"))])
    assert first.returncode == 0, first.stderr
    second = run([mpiexec, "-n", "2", *minigpt("train", "--resume", "--max-iters", "20", "--out-dir", str(tmp_path / "resumed"))])
    assert second.returncode == 0, second.stderr
    assert without_timing(read_log(tmp_path / "straight")) == without_timing(read_log(tmp_path / "resumed"))


SIGNALLED = ["--gradient-accumulation-steps", "2", "--max-iters", "300", "--eval-interval", "100"]  # few checkpoints


@pytest.fixture(scope="module")
def straight(mpiexec, text, tmp_path_factory):
    """The run the signalled ones are stopped in, uninterrupted (once for both signals)."""
    out = tmp_path_factory.mktemp("straight")
    result = run([mpiexec, "-n", "2", *minigpt("train", "--data", str(text), *TINY, *SIGNALLED, "--out-dir", str(out))])
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("rank, stop, status", [(1, signal.SIGTERM, 143), (0, signal.SIGHUP, 129)])
def test_a_signal_to_one_rank_stops_every_rank_at_one_step_with_one_checkpoint(mpiexec, text, straight, tmp_path, rank,
                                                                                 stop, status):
    args = ["--data", str(text), *TINY, *SIGNALLED]
    out = tmp_path / "stopped"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    job = subprocess.Popen([mpiexec, "-n", "2", sys.executable, str(HERE / "mpi_worker.py"), "pid", *args,
                            "--out-dir", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    pid, log = Path(f"{out}.rank{rank}.pid"), out / "log.jsonl"
    deadline = time.monotonic() + 60
    while not (pid.is_file() and log.is_file() and len(log.read_text().splitlines()) >= 30):
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()
        time.sleep(0.005)
    os.kill(int(pid.read_text()), stop)  # that rank alone
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == status, stderr
    said = [line for line in stderr.splitlines() if line.startswith("minigpt")]
    assert len(said) == 1 and said[0].startswith(f"minigpt: interrupted by {stop.name} at iter "), stderr  # rank 0's
    it = int(said[0].split(" at iter ")[1].split(";")[0])
    assert 30 <= it < 300 and json.loads((out / "checkpoints.json").read_text())["latest"] == f"ckpt-{it:06d}"
    resumed = run([mpiexec, "-n", "2", *minigpt("train", "--resume", "--out-dir", str(out))])
    assert resumed.returncode == 0, resumed.stderr
    assert without_timing(read_log(out)) == without_timing(read_log(straight))
    for name in ("model.safetensors", "optimizer.safetensors"):
        assert (out / "ckpt-000300" / name).read_bytes() == (straight / "ckpt-000300" / name).read_bytes()


def test_accumulation_steps_must_divide_among_the_ranks(mpiexec, text, tmp_path):
    result = run([mpiexec, "-n", "2", *minigpt("train", "--data", str(text), *TINY, "--gradient-accumulation-steps", "3",
                                              "--out-dir", str(tmp_path / "run"))])
    assert result.returncode != 0
    assert "gradient_accumulation_steps (3) must be divisible by the number of ranks (2)" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_mpi4py_a_launched_rank_says_how_to_install_it(text, tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None; from minigpt.cli import main; "
            f"sys.exit(main(['train', '--data', {str(text)!r}, '--out-dir', {str(tmp_path / 'run')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PMI_SIZE": "2", "PMI_RANK": "0", "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "minigpt[rank 0]: error: this process was started by mpiexec but mpi4py is not installed: pip install -e '.[mpi]'"]
