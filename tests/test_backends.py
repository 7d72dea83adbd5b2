"""Every backend computes what the NumPy reference computes: each kernel on hypothesis-generated shapes
and values, and the whole model's logits and gradients.

Every result is compared with the float64 reference computed from the same inputs, relative to each
tensor's largest entry. A float64 result must agree within FLOAT64_RTOL, a float32 one within
FLOAT32_RTOL. Some problems are ill-conditioned (a layer norm over two channels has a gradient that is
tiny by cancellation; a deep model's gradients sum many terms of both signs), and there the reference's
own float32 result is off by more: its error, `conditioning`, measures how hard the problem is, and a
backend may be off by up to SLACK times that (scaled by the ratio of machine epsilons in float64).
The kernels sum in other orders than NumPy, and some accumulate in float64."""

import copy
import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig, backends
from minigpt.ops.cross_entropy import IGNORE_INDEX
from minigpt.optim import adamw_update
from strategies import batch, channels, seq

BACKENDS = ["numpy", "numba", "c"]
DTYPES = [np.float64, np.float32]
FLOAT64_RTOL = 1e-12
FLOAT32_RTOL = 2e-5
SLACK = 10
EPS_RATIO = np.finfo(np.float64).eps / np.finfo(np.float32).eps  # ~1.9e-9
REFERENCE = backends.get("numpy")


def rel_error(a, exact):
    a, exact = np.asarray(a, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    assert a.shape == exact.shape
    return float(np.abs(a - exact).max(initial=0.0)) / max(float(np.abs(exact).max(initial=0.0)), 1e-30)


def assert_same(ours, reference, dtype, name="", conditioning=None):
    """ours: the backend's result in `dtype`; reference: the reference's in float64; conditioning: the
    error of the reference's own float32 result (None: a well-conditioned problem)."""
    if reference is None:
        assert ours is None, name
        return
    conditioning = conditioning or 0.0
    if dtype == np.float64:
        allowed = max(FLOAT64_RTOL, SLACK * conditioning * EPS_RATIO)
    else:
        allowed = max(FLOAT32_RTOL, SLACK * conditioning)
    error = rel_error(ours, reference)
    assert error <= allowed, f"{name}: relative error {error:.2e} > {allowed:.1e}"


def compare(dtype, run_ours, run_reference, names, pooled=False):
    """Run the backend in `dtype` and the reference in float64 and float32, and compare. pooled: one
    conditioning for all outputs (the largest error of the reference's float32), as for a whole model,
    whose gradients collect rounding errors from everything upstream, differently for each tensor."""
    ours = run_ours(dtype)
    ref64, ref32 = run_reference(np.float64), run_reference(np.float32)
    conditioning = [None if b is None else rel_error(c, b) for b, c in zip(ref64, ref32)]
    if pooled:
        conditioning = [max(k for k in conditioning if k is not None)] * len(names)
    for name, a, b, k in zip(names, ours, ref64, conditioning):
        assert_same(a, b, dtype, name, k)


@pytest.fixture(scope="module", params=BACKENDS)
def ops(request):
    """The backend; its attention always the fused kernel (where one loaded), which by default serves
    only large score arrays (test_the_fused_attention_serves_large_score_arrays)."""
    backend = backends.get(request.param)
    if os.environ.get("CI") == "true":
        assert backend.name == request.param, f"the {request.param} backend did not load under CI"
    if hasattr(backend.attention, "fused_min_scores"):
        attention = copy.copy(backend.attention)
        attention.fused_min_scores = 0
        backend = backend._replace(attention=attention)
    return backend


def cast(dtype, *arrays):
    return [None if a is None else a.astype(dtype) for a in arrays]


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, channels, st.booleans())
@settings(max_examples=15)
def test_layernorm(ops, dtype, seed, B, T, C, bias):
    rng = np.random.default_rng(seed)
    inputs = (rng.normal(size=(B, T, C)) * 3, rng.normal(size=C), rng.normal(size=C) if bias else None)
    dout = rng.normal(size=(B, T, C))

    def run(impl):
        def f(dtype):
            x, w, b = cast(dtype, *inputs)
            out, cache = impl.layernorm.forward(x, w, b)
            return (out, *impl.layernorm.backward(dout.astype(dtype), cache))
        return f

    compare(dtype, run(ops), run(REFERENCE), ("out", "dx", "dw", "db"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, channels)
@settings(max_examples=15)
def test_gelu(ops, dtype, seed, B, T, C):
    rng = np.random.default_rng(seed)
    x, dout = rng.normal(size=(B, T, 4 * C)) * 3, rng.normal(size=(B, T, 4 * C))

    def run(impl):
        def f(dtype):
            out, cache = impl.gelu.forward(x.astype(dtype))
            return out, impl.gelu.backward(dout.astype(dtype), cache)
        return f

    compare(dtype, run(ops), run(REFERENCE), ("out", "dx"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, channels, channels, st.booleans(), st.booleans())
@settings(max_examples=15)
def test_linear(ops, dtype, seed, B, T, C, OC, bias, transposed):
    rng = np.random.default_rng(seed)
    x, w, dout = rng.normal(size=(B, T, C)), rng.normal(size=(C, OC)), rng.normal(size=(B, T, OC))
    b = rng.normal(size=OC) if bias else None

    def run(impl):
        def f(dtype):
            weight = w.astype(dtype)
            if transposed:  # a transposed view, as the tied LM head uses
                weight = np.ascontiguousarray(weight.T).T
            out, cache = impl.linear.forward(x.astype(dtype), weight, None if b is None else b.astype(dtype))
            return (out, *impl.linear.backward(dout.astype(dtype), cache))
        return f

    compare(dtype, run(ops), run(REFERENCE), ("out", "dx", "dw", "db"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, st.integers(1, 4), st.integers(1, 9), st.booleans())
@settings(max_examples=15)
def test_attention(ops, dtype, seed, B, T, n_head, hs, bias):
    rng = np.random.default_rng(seed)
    C = n_head * hs
    x, dout = rng.normal(size=(B, T, C)), rng.normal(size=(B, T, C))
    weights = [rng.normal(size=(C, 3 * C)) * 0.5, rng.normal(size=3 * C) * 0.2 if bias else None,
               rng.normal(size=(C, C)) * 0.5, rng.normal(size=C) * 0.2 if bias else None]

    def run(impl):
        def f(dtype):
            out, cache = impl.attention.forward(x.astype(dtype), *cast(dtype, *weights), n_head)
            return (out, *impl.attention.backward(dout.astype(dtype), cache))
        return f

    compare(dtype, run(ops), run(REFERENCE), ("out", "dx", "dw_attn", "db_attn", "dw_proj", "db_proj"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, st.integers(1, 70))
@settings(max_examples=15)
def test_cross_entropy(ops, dtype, seed, B, T, V):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(B, T, V)) * 4
    targets = rng.integers(0, V, size=(B, T))
    targets[rng.random((B, T)) < 0.3] = IGNORE_INDEX
    targets[0, 0] = 0

    def run(impl):
        def f(dtype):
            loss, cache = impl.cross_entropy.forward(logits.astype(dtype), targets)
            return loss, impl.cross_entropy.backward(0.7, cache)
        return f

    compare(dtype, run(ops), run(REFERENCE), ("loss", "dlogits"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, st.integers(1, 5), channels, st.integers(0, 3), st.booleans())
@settings(max_examples=15)
def test_embedding(ops, dtype, seed, B, T, V, C, start, into_head):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, size=(B, T))  # few tokens: repeats accumulate
    wte, wpe = rng.normal(size=(V, C)), rng.normal(size=(start + T + 1, C))
    dout, head = rng.normal(size=(B, T, C)), rng.normal(size=(V, C))

    def run(impl):
        def f(dtype):
            out, cache = impl.embedding.forward(idx, wte.astype(dtype), wpe.astype(dtype), start)
            dwte = head.astype(dtype) if into_head else None  # added into another gradient of wte, or alone
            return (out, *impl.embedding.backward(dout.astype(dtype), cache, dwte))
        return f

    compare(dtype, run(ops), run(REFERENCE), ("out", "dwte", "dwpe"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.floats(1e-4, 1e-1), st.sampled_from([0.0, 0.1]), st.integers(1, 50))
@settings(max_examples=15)
def test_adamw_update(ops, dtype, seed, n, lr, decay, t):
    rng = np.random.default_rng(seed)
    state = (rng.normal(size=n), rng.normal(size=n), rng.normal(size=n) * 0.1, np.abs(rng.normal(size=n)) * 0.1)
    args = (lr, 0.9, 0.99, 1 - 0.9**t, np.sqrt(1 - 0.99**t), 1e-8, decay)

    def run(update):
        def f(dtype):
            p, g, m, v = cast(dtype, *state)
            update(p, g, m, v, *args)
            return p, m, v
        return f

    compare(dtype, run(ops.adamw_update), run(adamw_update), ("p", "m", "v"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**16), st.booleans(), st.data())
@settings(max_examples=10)
def test_whole_model_logits_and_gradients(ops, dtype, seed, bias, data):
    # hs >= 3: a layer norm over one or two channels is degenerate (its output is constant up to eps),
    # which makes a whole model's gradients rounding noise; the op tests above cover those widths
    n_head, hs = data.draw(st.integers(1, 3)), data.draw(st.integers(3, 8))
    cfg = GPTConfig(vocab_size=data.draw(st.integers(2, 50)), block_size=16, n_layer=data.draw(st.integers(1, 3)),
                    n_head=n_head, n_embd=n_head * hs, bias=bias)
    rng = np.random.default_rng(seed)
    weights = GPT(cfg, seed=seed, dtype=np.float64).state_dict()
    for p in weights.values():
        p += rng.normal(0.0, 0.2, size=p.shape)
    B, T = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 16))
    idx, targets = rng.integers(0, cfg.vocab_size, size=(B, T)), rng.integers(0, cfg.vocab_size, size=(B, T))

    def run(impl):
        def f(dtype):
            model = GPT(cfg, dtype=dtype)
            model.ops = impl
            model.load_state_dict({name: p.astype(dtype) for name, p in weights.items()})
            logits, loss = model.forward(idx, targets)
            return (logits, loss, *model.backward().values())
        return f

    compare(dtype, run(ops), run(REFERENCE), ("logits", "loss", *weights), pooled=True)


def test_the_fused_attention_serves_large_score_arrays():
    pytest.importorskip("numba")
    from minigpt.backends.numba.attention import FUSED_MIN_SCORES, Attention, AttentionCache

    assert backends.get("numba").attention.fused_min_scores == FUSED_MIN_SCORES
    B, n_head, hs = 2, 3, 4
    attention = Attention(REFERENCE.linear, fused_min_scores=B * n_head * 8 * 8)  # the kernel from T = 8
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(n_head * hs, 3 * n_head * hs)), None, rng.normal(size=(n_head * hs, n_head * hs)), None]
    for T, fused in ((7, False), (8, True), (9, True)):
        x = rng.normal(size=(B, T, n_head * hs))
        out, cache = attention.forward(x, *weights, n_head)
        assert isinstance(cache, AttentionCache) == fused, T
        ref_out, _ = REFERENCE.attention.forward(x, *weights, n_head)
        assert_same(out, ref_out, np.float64)


def test_dropout_and_kv_cache_fall_back_to_the_reference_attention(ops):
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.3)
    reference = GPT(cfg, seed=3, dtype=np.float64)
    model = GPT(cfg, seed=3, dtype=np.float64, backend=ops.name)
    idx = np.array([[1, 2, 3, 4, 5]])
    logits, _ = model.forward(idx, idx)
    ref_logits, _ = reference.forward(idx, idx)  # same seed, same dropout masks
    assert_same(logits, ref_logits, np.float64)
    ref_grads = reference.backward()
    for name, g in model.backward().items():
        assert_same(g, ref_grads[name], np.float64, name)
    np.testing.assert_array_equal(model.eval().generate(idx, 6, do_sample=False), reference.eval().generate(idx, 6, do_sample=False))


def test_a_backend_that_cannot_load_falls_back_with_one_warning_line(monkeypatch, capsys):
    def no_compiler():
        raise OSError("no C compiler (cc) on this machine")

    monkeypatch.setitem(backends.LOADERS, "c", no_compiler)
    monkeypatch.setattr(backends, "_loaded", {})
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), backend="c")
    assert model.ops.name == "numpy"
    err = capsys.readouterr().err
    assert err == "minigpt: warning: the c backend is not available (no C compiler (cc) on this machine); using numpy\n"
    GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), backend="c")
    assert capsys.readouterr().err == ""  # once per process


def test_without_a_c_compiler_the_package_still_runs(tmp_path):
    import subprocess

    code = ("import numpy as np; from minigpt import GPT, GPTConfig; "
            "m = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), backend='c'); "
            "print(m.ops.name, m.forward(np.array([[1, 2]]))[0].shape)")
    env = {**os.environ, "CC": "no-such-compiler", "MINIGPT_CACHE": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "numpy (1, 2, 5)\n"
    assert result.stderr == ("minigpt: warning: the c backend is not available (no C compiler (no-such-compiler) "
                             "on this machine); using numpy\n")


def test_auto_picks_the_first_backend_that_loads(monkeypatch):
    monkeypatch.setattr(backends, "_loaded", {})
    assert backends.get("auto").name == backends.AUTO_ORDER[0] or os.environ.get("CI") != "true"
    monkeypatch.setitem(backends.LOADERS, "numba", lambda: (_ for _ in ()).throw(ImportError("no numba")))
    monkeypatch.setattr(backends, "_loaded", {})
    assert backends.get("auto").name == "numpy"


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'cuda'; choose one of numpy, numba, c, auto"):
        backends.get("cuda")


@pytest.mark.parametrize("name", ["numba", "c"])
def test_kernels_refuse_arrays_they_would_misread(name):
    ops = backends.get(name)
    x = np.ones((2, 3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="layernorm: w is float64 but the other inputs are float32"):
        ops.layernorm.forward(x, np.ones(4), None)
    with pytest.raises(ValueError, match="gelu: x must be C-contiguous"):
        ops.gelu.forward(np.ones((4, 3, 2), dtype=np.float32).transpose(2, 1, 0))


def test_threads_sets_every_pool(monkeypatch):
    from threadpoolctl import threadpool_info

    import numba
    from minigpt.backends.c import lib
    from minigpt.threads import available_cores, set_threads

    backends.get("numba"), backends.get("c")
    try:
        assert set_threads(1) == 1
        assert numba.get_num_threads() == 1
        assert lib.minigpt_get_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    finally:
        set_threads(None)
    assert numba.get_num_threads() == min(available_cores(), numba.config.NUMBA_NUM_THREADS)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        set_threads(0)


def test_training_steps_with_a_fast_backend_match_the_reference(ops, tmp_path):
    from minigpt.config import TrainConfig
    from minigpt.train import train
    from test_train import make_text

    text = make_text(tmp_path / "t.txt", seed=0)
    common = dict(data=str(text), max_iters=8, eval_interval=4, eval_iters=2, n_layer=2, n_head=2, n_embd=16,
                  block_size=16, batch_size=4, dtype="float64")
    ref = train(TrainConfig(**common, out_dir=str(tmp_path / "ref"), backend="numpy"), progress=False)
    ours = train(TrainConfig(**common, out_dir=str(tmp_path / "ours"), backend=ops.name), progress=False)
    assert ours["val_loss"] == pytest.approx(ref["val_loss"], rel=1e-12)
    assert ours["train_loss"] == pytest.approx(ref["train_loss"], rel=1e-12)
