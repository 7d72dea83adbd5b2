"""minigpt.runtime: importing minigpt changes nothing in the process; configure() applies the settings that
make it fast (threads, memory), whenever it is called."""

import os
import platform
import subprocess
import sys

import pytest

from minigpt import runtime

AN_IMPORT_CHANGES_NOTHING = """
import os, sys
before = dict(os.environ)
import numpy as np
import minigpt
from minigpt import GPT, GPTConfig
model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4))
model.forward(np.array([[1, 2]]), np.array([[2, 3]]))
model.backward()
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(changed, "numba" in sys.modules)
"""

FAULTS_OF_A_NEW_ARRAY = """
import resource, sys
import numpy as np
import minigpt  # on its own, changes nothing: the second array faults in afresh
if sys.argv[1] == "configure":
    minigpt.runtime.configure()
a = np.ones(8 << 20); del a  # 64 MB
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    a = np.ones(8 << 20); del a
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def python(code: str, *args) -> str:
    # an environment of its own, not this process's: what importing minigpt (or threadpoolctl, in conftest.py) set here
    # must not hide a change the new process would make
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), "PYTHONPATH": os.pathsep.join(sys.path),
           "MINIGPT_CACHE": os.environ.get("MINIGPT_CACHE", "")}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env).stdout


def test_importing_and_using_minigpt_changes_no_environment_variable_and_loads_no_compiler():
    assert python(AN_IMPORT_CHANGES_NOTHING) == "[] False\n"


EVERY_MODULE = """
import os, pkgutil
before = dict(os.environ)  # (walk_packages imports each package to look inside it: the snapshot comes first)
import minigpt
names = sorted(m.name for m in pkgutil.walk_packages(minigpt.__path__, "minigpt."))
for name in names:
    __import__(name)
print(len(names), sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)))
"""


def test_importing_every_module_of_minigpt_changes_no_environment_variable():
    count, changed = python(EVERY_MODULE).split(" ", 1)
    assert int(count) > 40  # every module was imported, the backends' too
    assert changed.strip() == "[]"


def test_the_environment_test_sees_a_change():
    # its negative control: the same check catches a module that sets a variable, as threadpoolctl's import does
    assert python("import os; before = dict(os.environ); import threadpoolctl; "
                  "print(sorted(k for k in os.environ if before.get(k) != os.environ[k]))") == "['KMP_DUPLICATE_LIB_OK']\n"


def test_configure_makes_a_freed_array_reusable_without_page_faults():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    assert float(python(FAULTS_OF_A_NEW_ARRAY, "default")) >= 16  # each 64 MB array faulted in afresh (2 MB a fault at most)
    assert float(python(FAULTS_OF_A_NEW_ARRAY, "configure")) < 4


def test_set_threads_sets_every_loaded_pool(monkeypatch):
    from threadpoolctl import threadpool_info

    monkeypatch.setattr(runtime, "machine_load", lambda: (0.0, 0))  # an idle machine: the default is the same each time

    try:
        assert runtime.set_threads(1) == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
        assert runtime.threads() == 1
    finally:
        runtime.set_threads(None)
    assert runtime.threads() == runtime.default_threads()
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        runtime.set_threads(0)


def test_the_default_thread_count_is_every_core_or_minigpt_threads(monkeypatch):
    monkeypatch.delenv("MINIGPT_THREADS", raising=False)
    monkeypatch.setattr(runtime, "machine_load", lambda: (0.0, 0))  # an idle machine (a busy one: tests/test_threads.py)
    assert runtime.default_threads() == runtime.available_cores()
    monkeypatch.setenv("MINIGPT_THREADS", "3")
    assert runtime.default_threads() == 3
    monkeypatch.setenv("MINIGPT_THREADS", "0")
    with pytest.raises(ValueError, match="MINIGPT_THREADS='0' must be a positive integer"):
        runtime.default_threads()
