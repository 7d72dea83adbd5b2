"""minigpt.runtime: importing minigpt changes nothing in the process; configure() applies the settings that
make it fast (threads, memory), whenever it is called; and the numba kernels' parallel loops compute exactly
what their serial loops compute."""

import os
import platform
import subprocess
import sys

import numpy as np
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
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env).stdout


def test_importing_and_using_minigpt_changes_no_environment_variable_and_loads_no_compiler():
    assert python(AN_IMPORT_CHANGES_NOTHING) == "[] False\n"


def test_configure_makes_a_freed_array_reusable_without_page_faults():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    assert float(python(FAULTS_OF_A_NEW_ARRAY, "default")) >= 16  # each 64 MB array faulted in afresh (2 MB a fault at most)
    assert float(python(FAULTS_OF_A_NEW_ARRAY, "configure")) < 4


def test_set_threads_sets_every_loaded_pool():
    from threadpoolctl import threadpool_info

    try:
        assert runtime.set_threads(1) == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
        assert runtime.parallel_threads() == 1
        if "numba" in sys.modules:
            assert sys.modules["numba"].get_num_threads() == 1
    finally:
        runtime.set_threads(None)
    assert runtime.parallel_threads() == runtime.available_cores()
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        runtime.set_threads(0)


def test_numba_parallel_loops_compute_exactly_what_the_serial_loops_do(monkeypatch):
    """Large work runs each kernel's parallel loops (minigpt/backends/numba): the same arithmetic per row, per
    (batch, head) or per chunk of rows as the serial loops, so the results must be bit for bit the same."""
    pytest.importorskip("numba")
    import minigpt.backends.numba as numba_backend
    from minigpt import backends
    from minigpt.ops import cross_entropy, gelu, layernorm
    from minigpt.optim import AdamW

    if runtime.available_cores() < 2:
        pytest.skip("one core: there is no parallel loop")
    rng = np.random.default_rng(0)
    B, T, C, n_head, V = 3, 10, 12, 3, 17
    x, w = rng.normal(size=(B, T, C)).astype(np.float32), rng.normal(size=(C, 3 * C)).astype(np.float32)
    dout, idx = rng.normal(size=(B, T, C)).astype(np.float32), rng.integers(0, V, size=(B, T))
    mask = (rng.random((B, n_head, T, T)) > 0.2).astype(np.float32) / np.float32(0.8)  # dropout on attention

    def run():
        params = {"p": np.linspace(-1, 1, 300, dtype=np.float32)}
        AdamW(params, backend="numba").step({"p": np.cos(np.arange(300, dtype=np.float32))}, 1e-2)
        out, cache = layernorm.forward(x, w[:, 0].copy(), w[:, 1].copy(), backend="numba")
        ln = (out, *layernorm.backward(dout, cache, "numba"))
        h, cache = gelu.forward(x, "numba")
        g = (h, gelu.backward(dout, cache, "numba"))
        qkv = np.ascontiguousarray(x @ w)
        y, lse = backends.kernels("numba").attention_forward(qkv, n_head, 0, mask)
        a = (y, lse, backends.kernels("numba").attention_backward(dout, qkv, y, lse, n_head, mask))
        logits = np.ascontiguousarray(np.concatenate([x, x[..., :V - C]], axis=-1))
        loss, cache = cross_entropy.forward(logits, idx, backend="numba")
        ce = (loss, cache.lse, cross_entropy.backward(1.0, cache, "numba"))
        return (params["p"], *ln, *g, *a, *ce)

    serial = run()
    monkeypatch.setattr(numba_backend, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(runtime, "_threads", 2)
    monkeypatch.setattr(runtime, "_configured", True)
    parallel = run()
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
