"""minigpt.memory.keep_freed_memory: a large array freed and allocated again costs no page faults."""

import platform
import subprocess
import sys

import pytest

FAULTS_OF_A_NEW_ARRAY = """
import resource, sys
import numpy as np
from minigpt.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
a = np.ones(8 << 20); del a  # 64 MB
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    a = np.ones(8 << 20); del a
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def faults_per_array(mode: str) -> float:
    result = subprocess.run([sys.executable, "-c", FAULTS_OF_A_NEW_ARRAY, mode], capture_output=True, text=True, check=True)
    return float(result.stdout)


def test_a_freed_array_is_reused_without_page_faults():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    assert faults_per_array("default") >= 16  # each 64 MB array faulted in afresh (at least 2 MB a fault)
    assert faults_per_array("keep") < 4
