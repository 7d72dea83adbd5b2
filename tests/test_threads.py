"""Threads on a machine that other programs keep busy (minigpt/runtime.py): the default count leaves out the cores
they hold, and the thread pools' idle threads spin briefly before they sleep, set by configure() (never by an
import) before NumPy loads. The timings under a competing load: benchmarks/busy.py."""

import os
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt import runtime


def python(code: str, env: dict | None = None) -> str:
    """`code` in a new process with an environment of its own (none of this process's settings)."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""),
            "PYTHONPATH": os.pathsep.join(sys.path), "MINIGPT_CACHE": os.environ.get("MINIGPT_CACHE", "")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**base, **(env or {})}).stdout


# --- how idle threads wait ---------------------------------------------------------------------------------------

WAITING_AFTER = """
import os, sys
import minigpt
from minigpt import GPT, GPTConfig
GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4))
print({name: os.environ.get(name) for name in minigpt.runtime.WAITING})  # after an import: nothing
minigpt.runtime.configure()
print({name: os.environ.get(name) for name in minigpt.runtime.WAITING})
"""


def test_configure_sets_how_idle_threads_wait_and_an_import_does_not():
    imported, configured = python(WAITING_AFTER).splitlines()
    assert imported == repr({name: None for name in runtime.WAITING})
    assert configured == repr(runtime.WAITING)


def test_a_waiting_setting_in_the_environment_wins():
    _, configured = python(WAITING_AFTER, env={"GOMP_SPINCOUNT": "INFINITY", "KMP_BLOCKTIME": "0"}).splitlines()
    assert configured == repr({**runtime.WAITING, "GOMP_SPINCOUNT": "INFINITY", "KMP_BLOCKTIME": "0"})


# Records, as NumPy is imported for the first time, what the environment says to OpenBLAS then; runs the command.
AT_NUMPYS_IMPORT = """
import importlib.abc, os, sys

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "numpy":
            print("numpy loads with OPENBLAS_THREAD_TIMEOUT", os.environ.get("OPENBLAS_THREAD_TIMEOUT"), flush=True)
            sys.meta_path.remove(self)
        return None

sys.meta_path.insert(0, Watch())
from minigpt.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("args", [["sample", "--max-new-tokens", "-1"], ["--help"]])
def test_the_command_sets_the_waiting_before_numpy_loads(args):
    env = {k: v for k, v in os.environ.items() if k not in runtime.WAITING}  # (this process's configure() set them)
    done = subprocess.run([sys.executable, "-c", AT_NUMPYS_IMPORT, *args], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.splitlines()[0] == f"numpy loads with OPENBLAS_THREAD_TIMEOUT {runtime.WAITING['OPENBLAS_THREAD_TIMEOUT']}"


# --- how many threads ----------------------------------------------------------------------------------------------

def test_an_idle_machine_gets_every_core():
    assert runtime.free_cores(8, 8, 0.0, 0) == 8
    assert runtime.free_cores(2, 2, 0.3, 1) == 2  # a program that wakes now and then takes no core


def test_each_program_that_keeps_a_core_busy_takes_one():
    assert runtime.free_cores(2, 2, 1.0, 1) == 1
    assert runtime.free_cores(8, 8, 3.1, 3) == 5
    assert runtime.free_cores(2, 2, 6.0, 6) == 1  # at least one thread, however busy


def test_a_load_that_has_ended_or_has_just_begun_takes_nothing():
    assert runtime.free_cores(4, 4, 3.9, 0) == 4  # the last minute was busy, nothing runs now (a run just ended)
    assert runtime.free_cores(4, 4, 0.0, 3) == 4  # three threads run now, and ran no more than that a moment ago


def test_the_machines_load_counts_on_this_process_cores_in_proportion():
    assert runtime.free_cores(2, 64, 32.0, 32) == 1  # half of a 64-core machine busy: one of this process's two
    assert runtime.free_cores(2, 64, 8.0, 8) == 2  # an eighth of it: a quarter of a core here


@given(cores=st.integers(1, 256), extra=st.integers(0, 256), load=st.floats(0, 1000), running=st.integers(0, 1000),
       more=st.floats(0, 100), more_running=st.integers(0, 100))
def test_the_free_cores_are_between_one_and_every_core_and_fewer_the_busier_the_machine(cores, extra, load, running,
                                                                                     more, more_running):
    free = runtime.free_cores(cores, cores + extra, load, running)
    assert 1 <= free <= cores
    assert runtime.free_cores(cores, cores + extra, load + more, running + more_running) <= free


def test_the_default_is_minigpt_threads_else_the_free_cores(monkeypatch):
    monkeypatch.delenv("MINIGPT_THREADS", raising=False)
    monkeypatch.setattr(runtime, "available_cores", lambda: 4)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(runtime, "machine_load", lambda: (2.0, 2))
    assert runtime.default_threads() == 2
    monkeypatch.setattr(runtime, "machine_load", lambda: None)  # not Linux: no load to read
    assert runtime.default_threads() == 4
    monkeypatch.setenv("MINIGPT_THREADS", "3")
    assert runtime.default_threads() == 3


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="Linux's /proc")
def test_the_machines_load_counts_a_busy_program_and_not_this_process():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        average, running = runtime.machine_load()
        assert average >= 0 and running >= 1  # the busy program at least (this process is not counted)
    finally:
        busy.kill()
        busy.wait()
