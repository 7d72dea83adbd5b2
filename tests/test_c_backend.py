"""The C backend beyond what every backend shares (tests/test_backends.py): its matmul on every layout, on shapes
that cross its blocks and tiles, with each micro-kernel this CPU runs; that it needs no numba; that a process using
it exits cleanly; and that an installed (not editable) copy compiles the C sources it ships."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import backends


@pytest.fixture(scope="module", autouse=True)
def c_backend():
    """The C backend, loaded (compiled on a machine's first run) when the first of these tests runs, not while the
    tests are collected: both workers would wait for it then. Skipped without a C compiler, except under CI."""
    if backends.kernels_for("c").name != "c":
        if os.environ.get("CI") == "true":
            pytest.fail("the c backend did not load under CI")
        pytest.skip("the c backend is not available here (no C compiler)")


MICROKERNELS = ["avx512", "avx2", "portable"]


@pytest.fixture(scope="module", params=MICROKERNELS)
def microkernel(request):
    from minigpt.backends import c

    if c.use_microkernel(request.param) != request.param:
        c.use_microkernel()
        pytest.skip(f"this CPU does not run the {request.param} micro-kernel")
    yield request.param
    c.use_microkernel()  # the best one again


def gemm(A, B, bias=None, accumulate_into=None):
    """C = A @ B (+ bias) through the C matmul, A and B read through their strides as they lie."""
    from minigpt.backends import c

    M, K = A.shape
    N = B.shape[1]
    C = np.empty((M, N), dtype=A.dtype) if accumulate_into is None else accumulate_into
    s = A.itemsize
    c.kernel("gemm", A.dtype)(M, N, K, c.ptr(A), A.strides[0] // s, A.strides[1] // s, c.ptr(B), B.strides[0] // s,
                              B.strides[1] // s, c.ptr(C), N, c.ptr(bias), int(accumulate_into is not None), 1)
    return C


# shapes up to 300: across the matmul's blocks (MC = 144 rows, KC = 256) and its tiles (6 x 16, 12 x 32, 4 x 8); at
# most 8 rows, which skip the packing (gemm_few_rows), and 9; and more than 512 rows, where a transposed A takes steps
# of more than 2 KB and is packed (kernels/gemm.c, pack_a)
size = st.integers(1, 300)
rows = st.integers(1, 9) | size | st.integers(513, 700)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(st.integers(0, 2**32 - 1), rows, size, size, st.booleans(), st.booleans(), st.sampled_from(["none", "bias", "accumulate"]))
@settings(max_examples=16)
def test_matmul_of_every_layout_within_the_rounding_bound(microkernel, dtype, seed, M, N, K, a_transposed, b_transposed, extra):
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(M, K)).astype(dtype), rng.normal(size=(K, N)).astype(dtype)
    bias = rng.normal(size=N).astype(dtype) if extra == "bias" else None
    start = rng.normal(size=(M, N)).astype(dtype) if extra == "accumulate" else None
    a = np.ascontiguousarray(A.T).T if a_transposed else A  # the same matrix, stored transposed
    b = np.ascontiguousarray(B.T).T if b_transposed else B
    C = gemm(a, b, bias, None if start is None else start.copy())
    exact = A.astype(np.float64) @ B.astype(np.float64) + (0 if bias is None else bias) + (0 if start is None else start)
    # a sum of K products in any order is within K u (|A| |B| + |bias| + |start|) of the exact one (u: unit roundoff)
    bound = (K + 2) * np.finfo(dtype).eps * (np.abs(A) @ np.abs(B) + np.abs(0 if bias is None else bias) + np.abs(0 if start is None else start))
    assert C.dtype == dtype
    assert np.all(np.abs(C - exact) <= bound)


@pytest.mark.parametrize("M", [1, 5, 8])
@pytest.mark.parametrize("b_transposed", [False, True])
def test_a_few_rows_on_both_threads_within_the_rounding_bound(M, b_transposed):
    """A product of a few rows with a B large enough (600 x 500: past 2^18 numbers) that both threads share it: the
    row-major B split along K, or B = w^T (Llama's layout) split by columns, four at a time with the next four
    prefetched, and a last column that is no group of four."""
    from minigpt import runtime

    rng = np.random.default_rng(M)
    A, B = rng.normal(size=(M, 500)).astype(np.float32), rng.normal(size=(500, 601)).astype(np.float32)
    b = np.ascontiguousarray(B.T).T if b_transposed else B
    runtime.set_threads(2)
    try:
        C = gemm(A, b, None, None)
    finally:
        runtime.set_threads(None)
    exact = A.astype(np.float64) @ B.astype(np.float64)
    bound = 502 * np.finfo(np.float32).eps * (np.abs(A).astype(np.float64) @ np.abs(B))
    assert np.all(np.abs(C - exact) <= bound)


@pytest.mark.parametrize("M, N, K, a_transposed", [(100, 300, 300, False), (260, 250, 300, False),
                                                   (600, 300, 300, True), (2100, 2100, 20, False),
                                                   (300, 2100, 300, False)])
@pytest.mark.parametrize("extra", ["bias", "accumulate"])
def test_rows_or_tiles_shared_out_among_both_threads_within_the_rounding_bound(M, N, K, a_transposed, extra):
    """Products on both threads, shared out as kernels/gemm.c's gemm_team does: by rows of A where A has at least as
    many rows as B has columns (260 x 250, 600 x 300: each thread its own slivers, over two panels of K, 300 > KC;
    2100 x 2100: over two panels of N, the threads waiting for each other before the next panel of B is packed), else
    by tiles (100 rows, 9 slivers of 12: too few; 300 rows against 2100 columns); a transposed A with steps of 600
    floats (> 2 KB) is packed by each thread into its own buffer."""
    from minigpt import runtime

    rng = np.random.default_rng(M + N)
    A, B = rng.normal(size=(M, K)).astype(np.float32), rng.normal(size=(K, N)).astype(np.float32)
    bias = rng.normal(size=N).astype(np.float32) if extra == "bias" else None
    start = rng.normal(size=(M, N)).astype(np.float32) if extra == "accumulate" else None
    a = np.ascontiguousarray(A.T).T if a_transposed else A
    runtime.set_threads(2)
    try:
        C = gemm(a, B, bias, None if start is None else start.copy())
    finally:
        runtime.set_threads(None)
    added = bias if bias is not None else start
    exact = A.astype(np.float64) @ B.astype(np.float64) + added
    bound = (K + 2) * np.finfo(np.float32).eps * (np.abs(A).astype(np.float64) @ np.abs(B) + np.abs(added))
    assert np.all(np.abs(C - exact) <= bound)


@pytest.mark.parametrize("C, OC", [(512, 128), (128, 512), (128, 128)])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("rows", [64, 150])
def test_a_weight_gradient_on_both_threads_within_the_rounding_bound(C, OC, transposed, rows):
    """dw as x^T @ dout, or, where that product has more rows than the other and reads its transposed operand in place
    (a step of at most 2 KB: C = 512 in GPT-2's (in, out) layout, OC = 512 in Llama's), as dout^T @ x into a scratch
    array transposed into dw by both threads (C x OC = 2^16 numbers); with 150 rows (at least SPLIT_K_MIN for each
    thread) each thread multiplies its own rows and the two partial products are added (kernels/linear.c)."""
    from minigpt import backends, runtime
    from minigpt.ops import linear

    rng = np.random.default_rng(C + rows)
    shapes = ((2, rows // 2, C), (2, rows // 2, OC), (C, OC))
    x, dout, w = (rng.normal(size=shape).astype(np.float32) for shape in shapes)
    weight = np.ascontiguousarray(w.T).T if transposed else w  # Llama's: the transpose of an (OC, C) array
    runtime.set_threads(2)
    try:
        _, dw, _ = linear.backward(dout, linear.LinearCache(x, weight, False), kernels=backends.kernels_for("c"))
    finally:
        runtime.set_threads(None)
    X, D = x.reshape(-1, C).astype(np.float64), dout.reshape(-1, OC).astype(np.float64)
    assert dw.shape == (C, OC) and dw.flags.c_contiguous != transposed  # in the weight's own layout
    bound = (rows + 2) * np.finfo(np.float32).eps * (np.abs(X).T @ np.abs(D))
    assert np.all(np.abs(dw - X.T @ D) <= bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_over_rows_do_not_depend_on_the_thread_count(dtype):
    """The parameters' gradients that sum over rows (a linear's bias, layer norm's and RMS norm's weight and bias) are
    summed by fixed chunks of rows (kernels/linear.c, sum_row_chunks): the same bits on one thread as on two, for
    1001 rows (not a whole number of chunks) of 128 channels (past the threshold for threads)."""
    from minigpt import runtime

    c = backends.kernels_for("c")
    rng = np.random.default_rng(7)
    x, dout, w = (rng.normal(size=shape).astype(dtype) for shape in ((1001, 128), (1001, 128), (128, 128)))

    def sums():
        _, dw_lin, db_lin = c.linear.backward_kernel(dout, x, w, True)
        _, mean, rstd = c.layernorm.forward_kernel(x[None], w[0], w[1], 1e-5)
        _, dw_ln, db_ln = c.layernorm.backward_kernel(dout[None], x[None], mean, rstd, w[0], True)
        _, rms_rstd = c.rmsnorm.forward_kernel(x[None], w[0], 1e-5)
        _, dw_rms = c.rmsnorm.backward_kernel(dout[None], x[None], rms_rstd, w[0])
        return db_lin, dw_ln, db_ln, dw_rms

    try:
        runtime.set_threads(1)
        one = sums()
        runtime.set_threads(2)
        two = sums()
    finally:
        runtime.set_threads(None)
    for a, b in zip(one, two):
        assert a.tobytes() == b.tobytes()
    assert np.allclose(one[0], dout.sum(axis=0), rtol=1e-5, atol=1e-4)  # and they are the sums


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_within_a_few_ulp_of_the_exact_function(dtype):
    """The C GELU (kernels/gelu.c, on vecmath.h's logistic function) against GELU in extended precision, number by
    number: the output within 8 ulp of itself, or of an ulp of the input where it vanishes (x far below 0, where the
    logistic function is taken as 0); the derivative sig + factor (1 - sig) within 8 ulp of the sizes of its terms and
    of factor (1 - sig carries sig's rounding: 1 - sig is 0 in float32 from x = 4.96), or a thousandth of an ulp of 1
    where it vanishes. Inputs on both sides of every cut."""
    c = backends.kernels_for("c")
    edges = [-1000, -40, -20.5, -9.9, -0.0, 0.0, 1e-30, 30, 1000]
    x = np.concatenate([np.linspace(-12, 12, 24001), edges]).astype(dtype)
    out = c.gelu.forward_kernel(x)
    dx = c.gelu.backward_kernel(np.ones_like(x), x)
    X = x.astype(np.longdouble)
    u = np.longdouble(np.sqrt(2 / np.pi)) * (X + np.longdouble(0.044715) * X**3)
    with np.errstate(over="ignore"):
        sig = 1 / (1 + np.exp(-2 * u))  # 0.5 (1 + tanh(u)), without its cancellation
    du_dx = np.longdouble(np.sqrt(2 / np.pi)) * (1 + 3 * np.longdouble(0.044715) * X**2)
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(out - X * sig) <= 8 * eps * np.abs(X * sig) + eps * np.abs(X))
    factor = 2 * X * sig * du_dx  # the second term is factor (1 - sig): sig's rounding, times |factor|, is its error
    slope = factor * (1 - sig)
    assert np.all(np.abs(dx - (sig + slope)) <= 8 * eps * (np.abs(sig) + np.abs(slope) + np.abs(factor)) + 1e-3 * eps)
    assert np.all(out[x <= -12] == 0) and np.all(dx[x <= -12] == 0)  # as the reference's, exactly


@pytest.mark.parametrize("N", [1, 6, 40])
def test_q8_0_with_each_micro_kernel_within_the_rounding_bound(microkernel, N):
    """The Q8_0 layer's float kernel follows the micro-kernel's instruction set (AVX-512, or the portable loop): a
    few rows straight from the bytes, in groups of four, and more through dequantized panels, against float64."""
    from minigpt import backends
    from minigpt.ops import q8_0

    rng = np.random.default_rng(N)
    x, blocks = rng.normal(size=(1, N, 96)).astype(np.float32), q8_0.quantize(rng.normal(size=(300, 96)))
    out, _ = q8_0.forward(x, blocks, kernels=backends.kernels_for("c"))
    W = q8_0.dequantize(blocks, np.float64)
    exact = x[0].astype(np.float64) @ W.T
    bound = 98 * np.finfo(np.float32).eps * (np.abs(x[0]).astype(np.float64) @ np.abs(W).T)
    assert np.all(np.abs(out[0] - exact) <= bound)


def python(code: str, env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


TRAIN_A_STEP = """
import numpy as np
from minigpt import GPT, GPTConfig, runtime
from minigpt.optim import AdamW
runtime.configure(2)
model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=128), backend="c")
idx = np.random.default_rng(0).integers(0, 65, size=(8, 64))
_, loss = model.forward(idx, idx)
AdamW(model.params, kernels=model.kernels).step(model.backward(), 1e-3)
print(model.backend, round(loss, 2))
"""


def test_the_c_backend_needs_no_numba():
    blocked = "import sys; sys.modules['numba'] = None  # any import of numba now fails\n"
    result = python(blocked + TRAIN_A_STEP + "print(sys.modules['numba'])")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "c 3.16\nNone\n"  # the loss every backend gives (tests/test_backends.py)


def test_a_process_using_the_c_backend_exits_cleanly():
    """The library brings the OpenMP runtime; unloading it at exit under its live threads crashed the process."""
    for _ in range(3):
        result = python(TRAIN_A_STEP)
        assert result.returncode == 0, (result.returncode, result.stderr)


def install_a_copy(tmp_path) -> Path:
    """minigpt installed (not editable) from a copy of the repository, as `pip install .` installs it: its site."""
    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # a copy: setuptools writes its build/ beside the sources, not in the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    for name in ("minigpt", "kernels"):
        shutil.copytree(root / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(tmp_path / "site"), str(source)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    return tmp_path / "site"


IN_THE_COPY = ("import sys; import minigpt.backends.c as c; print(c.sources().relative_to(sys.argv[1])); "
               "print(c.build()[0].name); from minigpt import GPT, GPTConfig; import numpy as np; "
               "m = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), backend='c'); "
               "print(m.backend, m.forward(np.array([[1, 2]]))[0].shape)")


def test_an_installed_copy_ships_every_c_source_and_builds_what_the_repository_builds(tmp_path):
    # The library's name is a hash of every source file the build finds (minigpt/backends/c build()): the copy's is
    # the repository's only if it ships every .c and .h byte for byte, in minigpt/backends/c/kernels. A file left out
    # of the package makes another name, and the copy compiles from what it has, and fails. (Compiling it afresh
    # takes seconds: test_an_installed_copy_compiles_the_sources_it_ships, under -m slow.)
    from minigpt.backends import c

    site = install_a_copy(tmp_path)
    result = subprocess.run([sys.executable, "-c", IN_THE_COPY, str(site)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(site)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"minigpt/backends/c/kernels\n{c.build()[0].name}\nc (1, 2, 5)\n"


@pytest.mark.slow
def test_an_installed_copy_compiles_the_sources_it_ships(tmp_path):
    site = install_a_copy(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site), "MINIGPT_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", IN_THE_COPY, str(site)], capture_output=True, text=True, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("c (1, 2, 5)\n")
    assert result.stderr.startswith("minigpt: compiling the C kernels (once, into ")  # from the copy's own sources


@settings(max_examples=20, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 9), n_kv_head=st.integers(1, 3), group=st.integers(1, 2),
       hs=st.integers(1, 5), dtype=st.sampled_from([np.float32, np.float64]))
def test_attention_reads_views_where_they_lie_as_it_reads_copies(B, T, n_kv_head, group, hs, dtype):
    # GPT-2's q, k and v are views of its c_attn output (rows 3C apart): the C kernels read them through their strides,
    # and compute exactly what they compute on contiguous copies
    from minigpt.backends.c import attention

    n_head = n_kv_head * group
    rng = np.random.default_rng(0)
    qkv = rng.standard_normal((B, T, n_head + 2 * n_kv_head, hs)).astype(dtype)  # (B, T, nh + 2 nkv, hs)
    q, k, v = qkv[:, :, :n_head], qkv[:, :, n_head:n_head + n_kv_head], qkv[:, :, n_head + n_kv_head:]  # views
    assert B * T == 1 or not q.flags.c_contiguous  # (rows further apart than a row: what is tested)
    copies = [np.ascontiguousarray(a) for a in (q, k, v)]
    y, lse = attention.forward_kernel(q, k, v, None)
    y_copy, lse_copy = attention.forward_kernel(*copies, None)
    np.testing.assert_array_equal(y, y_copy)
    np.testing.assert_array_equal(lse, lse_copy)
    dy = rng.standard_normal(y.shape).astype(dtype)  # (B, T, nh hs)
    dqkv = np.full(qkv.shape, np.nan, dtype)  # (B, T, nh + 2 nkv, hs) the gradients side by side, written in place
    views = dqkv[:, :, :n_head], dqkv[:, :, n_head:n_head + n_kv_head], dqkv[:, :, n_head + n_kv_head:]
    separate = [np.full(a.shape, np.nan, dtype) for a in copies]
    attention.backward_kernel(dy, q, k, v, y, lse, None, *views)
    attention.backward_kernel(dy, *copies, y, lse, None, *separate)
    for d, d_copy in zip(views, separate):
        np.testing.assert_array_equal(d, d_copy)
    assert not np.isnan(dqkv).any()
