"""Every backend computes what the NumPy reference computes: each op (through its kernels) on
hypothesis-generated shapes and values, and the whole model's logits and gradients.

Every result is compared with the float64 reference computed from the same inputs, relative to each
tensor's largest entry. A float64 result must agree within BACKEND_RTOL_FLOAT64, a float32 one within
BACKEND_RTOL_FLOAT32. Some problems are ill-conditioned (a layer norm over two channels has a gradient that
is tiny by cancellation; a deep model's gradients sum many terms of both signs), and there the reference's
own float32 result is off by more: its error, `conditioning`, measures how hard the problem is, and a
backend may be off by up to BACKEND_SLACK times that (scaled by the ratio of machine epsilons in float64).
The kernels sum in other orders than NumPy, and some accumulate in float64."""

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig, backends, ops
from minigpt.ops import (attention, cross_entropy, embedding, gelu, layernorm, linear, q8_0, residual, rmsnorm, rope,
                         swiglu)
from minigpt.ops.cross_entropy import IGNORE_INDEX
from minigpt.ops.reference import NUMPY
from minigpt.optim import AdamW
from strategies import batch, channels, seq
from tolerances import BACKEND_RTOL_FLOAT32, BACKEND_RTOL_FLOAT64, BACKEND_SLACK, ZERO_GRADIENT_ATOL

DTYPES = [np.float64, np.float32]
EPS_RATIO = np.finfo(np.float64).eps / np.finfo(np.float32).eps  # ~1.9e-9


def rel_error(a, exact):
    a, exact = np.asarray(a, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    assert a.shape == exact.shape
    return float(np.abs(a - exact).max(initial=0.0)) / max(float(np.abs(exact).max(initial=0.0)), 1e-30)


def assert_same(ours, reference, dtype, name="", conditioning=None, largest=None):
    """ours: the backend's result in `dtype`; reference: the reference's in float64; conditioning: the
    error of the reference's own float32 result (None: a well-conditioned problem); largest: a whole model's
    largest gradient entry, for gradients that are 0 in exact arithmetic (ZERO_GRADIENT_ATOL)."""
    if reference is None:
        assert ours is None, name
        return
    if isinstance(ours, np.ndarray):  # a Python float (the model's loss) has no dtype
        assert ours.dtype == dtype, f"{name}: {ours.dtype}, expected {np.dtype(dtype)}"
    conditioning = conditioning or 0.0
    if dtype == np.float64:
        allowed = max(BACKEND_RTOL_FLOAT64, BACKEND_SLACK * conditioning * EPS_RATIO)
    else:
        allowed = max(BACKEND_RTOL_FLOAT32, BACKEND_SLACK * conditioning)
    error = rel_error(ours, reference)
    if largest is not None and error > allowed:
        absolute = float(np.abs(np.asarray(ours, dtype=np.float64) - reference).max())
        if absolute <= ZERO_GRADIENT_ATOL[np.dtype(dtype).name] * largest:
            return
    assert error <= allowed, f"{name}: relative error {error:.2e} > {allowed:.1e}"


def compare(kernels, dtype, run, names, pooled=False):
    """Run `run(kernels, dtype)` with a fast backend's kernels and with the reference's (NUMPY) in float64 and
    float32, and compare. pooled: one conditioning for all outputs (the largest error of the reference's float32),
    as for a whole model, whose gradients collect rounding errors from everything upstream, differently for each
    tensor."""
    assert kernels.name != "numpy"  # never the reference compared with itself
    ours = run(kernels, dtype)
    ref64, ref32 = run(NUMPY, np.float64), run(NUMPY, np.float32)
    conditioning = [None if b is None else rel_error(c, b) for b, c in zip(ref64, ref32)]
    largest = None
    if pooled:
        conditioning = [max(k for k in conditioning if k is not None)] * len(names)
        largest = max(float(np.abs(b).max()) for b in ref64[2:] if b is not None)  # the gradients, after logits, loss
    for name, a, b, k in zip(names, ours, ref64, conditioning):
        assert_same(a, b, dtype, name, k, largest)


FAST = [name for name in backends.NAMES if name != "numpy"]


@pytest.fixture(scope="module", params=FAST)
def kernels(request):
    """A fast backend's kernel table: each is compared with the reference's kernels, never the reference with itself."""
    table = backends.kernels_for(request.param)
    if table.name != request.param:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the {request.param} backend did not load under CI")
        pytest.skip(f"the {request.param} backend is not available here")
    return table


def cast(dtype, *arrays):
    return [None if a is None else a.astype(dtype) for a in arrays]


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, channels, st.booleans(), st.sampled_from([0.0, 1e3]))
@settings(max_examples=15)
def test_layernorm(kernels, dtype, seed, B, T, C, bias, shift):
    rng = np.random.default_rng(seed)
    # rows far from zero (shift): a kernel that sums x^2 - mean^2, or dnorm * x - mean * dnorm, loses its digits
    x = rng.normal(size=(B, T, C)) * 3 + shift * rng.normal(size=(B, T, 1))
    inputs = (x, rng.normal(size=C), rng.normal(size=C) if bias else None)
    dout = rng.normal(size=(B, T, C))

    def run(kernels, dtype):
        x, w, b = cast(dtype, *inputs)
        out, cache = layernorm.forward(x, w, b, kernels=kernels)
        return (out, cache.mean, cache.rstd, *layernorm.backward(dout.astype(dtype), cache, kernels))

    compare(kernels, dtype, run, ("out", "mean", "rstd", "dx", "dw", "db"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, channels.filter(lambda C: C >= 2), st.sampled_from([1e-3, 1.0, 1e3]))
@settings(max_examples=15)
def test_rmsnorm(kernels, dtype, seed, B, T, C, scale):
    # C >= 2: over one channel dx is eps / (x^2 + eps) of the terms it is the difference of, below float32's
    # resolution, so every float32 result is rounding noise of its own (tests/ops/test_rmsnorm.py checks C = 1)
    rng = np.random.default_rng(seed)
    # rows of every size (a sum of squares of large numbers, of small ones near eps) and shifted ones
    x = rng.normal(size=(B, T, C)) * scale + rng.normal(size=(B, T, 1)) * scale
    inputs = (x, rng.normal(size=C))
    dout = rng.normal(size=(B, T, C))

    def run(kernels, dtype):
        x, w = cast(dtype, *inputs)
        out, cache = rmsnorm.forward(x, w, 1e-6, kernels)
        return (out, cache.rstd, *rmsnorm.backward(dout.astype(dtype), cache, kernels))

    compare(kernels, dtype, run, ("out", "rstd", "dx", "dw"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, st.integers(1, 4), st.integers(1, 5), st.integers(0, 100))
@settings(max_examples=15)
def test_rope(kernels, dtype, seed, B, T, nh, half, start):
    rng = np.random.default_rng(seed)
    hs = 2 * half  # head size 2 (one pair) and up
    x, dout = rng.normal(size=(B, T, nh, hs)), rng.normal(size=(B, T, nh, hs))
    inv_freq = rope.inverse_frequencies(hs, 10000.0)

    def run(kernels, dtype):
        out, cache = rope.forward(x.astype(dtype), rope.angles(inv_freq, start, T, dtype), kernels)
        return out, rope.backward(dout.astype(dtype), cache, kernels)

    compare(kernels, dtype, run, ("out", "dx"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, channels, st.floats(0.1, 100.0))
@settings(max_examples=15)
def test_swiglu(kernels, dtype, seed, B, T, C, scale):
    rng = np.random.default_rng(seed)
    # gates far into both tails (sigmoid 0 and 1, where exp(-|g|) underflows) and around 0
    gate, up, dout = rng.normal(size=(B, T, C)) * scale, rng.normal(size=(B, T, C)), rng.normal(size=(B, T, C))

    def run(kernels, dtype):
        out, cache = swiglu.forward(*cast(dtype, gate, up), kernels)
        return (out, *swiglu.backward(dout.astype(dtype), cache, kernels))

    compare(kernels, dtype, run, ("out", "dgate", "dup"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, channels, st.floats(0.1, 12.0))
@settings(max_examples=15)
def test_gelu(kernels, dtype, seed, B, T, C, scale):
    rng = np.random.default_rng(seed)
    x, dout = rng.normal(size=(B, T, 4 * C)) * scale, rng.normal(size=(B, T, 4 * C))

    def run(kernels, dtype):
        out, cache = gelu.forward(x.astype(dtype), kernels)
        return out, gelu.backward(dout.astype(dtype), cache, kernels)

    compare(kernels, dtype, run, ("out", "dx"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, channels, channels, st.booleans(), st.booleans())
@settings(max_examples=15)
def test_linear(kernels, dtype, seed, B, T, C, OC, bias, transposed):
    rng = np.random.default_rng(seed)
    x, w, dout = rng.normal(size=(B, T, C)), rng.normal(size=(C, OC)), rng.normal(size=(B, T, OC))
    b = rng.normal(size=OC) if bias else None

    def run(kernels, dtype):
        weight = w.astype(dtype)
        if transposed:  # a transposed view, as the tied LM head uses
            weight = np.ascontiguousarray(weight.T).T
        out, cache = linear.forward(x.astype(dtype), weight, None if b is None else b.astype(dtype), kernels)
        return (out, *linear.backward(dout.astype(dtype), cache, kernels))

    compare(kernels, dtype, run, ("out", "dx", "dw", "db"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), st.integers(1, 9), st.integers(1, 4), st.integers(1, 40), st.booleans())
@settings(max_examples=15)
def test_q8_0(kernels, dtype, seed, N, nb, OC, bias):
    """N rows of x, straight from the bytes (decoding) in groups of 4 (C: up to 32 rows; numba: up to 4); more
    through dequantized rows of W (test_q8_0_panels)."""
    rng = np.random.default_rng(seed)
    x, blocks = rng.normal(size=(1, N, nb * q8_0.BLOCK)), q8_0.quantize(rng.normal(size=(OC, nb * q8_0.BLOCK)))
    b = rng.normal(size=OC) if bias else None

    def run(kernels, dtype):
        return q8_0.forward(x.astype(dtype), blocks, None if b is None else b.astype(dtype), kernels)[:1]

    compare(kernels, dtype, run, ("out",))


@pytest.mark.parametrize("N", [1, 5, 40])
def test_q8_0_panels(kernels, N):
    """OC = 1000: for 40 rows, four panels of W dequantized for the matmul, the last a partial one; for a few rows,
    threads (1000 rows of 136 bytes: past the C kernel's threshold for threads, 128 KiB)."""
    rng = np.random.default_rng(N)
    x, blocks = rng.normal(size=(1, N, 128)), q8_0.quantize(rng.normal(size=(1000, 128)))
    b = rng.normal(size=1000)
    compare(kernels, np.float32, lambda kernels, dtype: q8_0.forward(x.astype(dtype), blocks, b.astype(dtype),
                                                                      kernels)[:1], ("out",))


def side_by_side(grads):
    """dq (B, T, nh, hs), dk and dv (B, T, nkv, hs) -> dqkv (B, T, (nh + 2 nkv) hs), compared as one array: with one
    position (T = 1) dq and dk are 0 in exact arithmetic, and their rounding is measured against dv's scale."""
    return np.concatenate([d.reshape(*d.shape[:2], -1) for d in grads], axis=2)  # (B, T, (nh + 2 nkv) hs)


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, st.integers(1, 4), st.integers(1, 9), st.sampled_from([0.0, 0.3]))
@settings(max_examples=15)
def test_attention(kernels, dtype, seed, B, T, n_head, hs, dropout_p):
    """Multi-head attention on q, k and v as GPT-2 gives them: views of the three parts of one (B, T, 3C) array."""
    rng = np.random.default_rng(seed)
    qkv, dy = rng.normal(size=(B, T, 3 * n_head * hs)), rng.normal(size=(B, T, n_head * hs))

    def run(kernels, dtype):
        dropout_rng = np.random.default_rng(seed)  # the same dropout mask for every backend
        q, k, v = (a.reshape(B, T, n_head, hs) for a in np.split(qkv.astype(dtype), 3, axis=2))  # (B, T, nh, hs) each
        y, cache = attention.forward(q, k, v, dropout_p, dropout_rng, kernels=kernels)
        return y, cache.lse, side_by_side(attention.backward(dy.astype(dtype), cache, kernels))

    compare(kernels, dtype, run, ("y", "lse", "dqkv"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(0, 4),
       st.sampled_from([0.0, 0.3]))
@settings(max_examples=15)
def test_grouped_query_attention(kernels, dtype, seed, B, T, n_kv_head, group, hs, P, dropout_p):
    """Fewer key/value heads than query heads (multi-query with one), after P cached positions or none."""
    rng = np.random.default_rng(seed)
    n_head = n_kv_head * group
    q, k, v = (rng.normal(size=(B, P + T, heads, hs)) for heads in (n_head, n_kv_head, n_kv_head))
    dy = rng.normal(size=(B, T, n_head * hs))

    def run(kernels, dtype):
        q_, k_, v_ = cast(dtype, q, k, v)
        if P:  # decoding: T new positions after P cached ones (inference: no backward)
            cache = attention.KVCache(B, P + T, n_kv_head, hs, dtype)
            attention.forward(q_[:, :P], k_[:, :P], v_[:, :P], kv_cache=cache, kernels=kernels)
            y, _ = attention.forward(q_[:, P:], k_[:, P:], v_[:, P:], kv_cache=cache, kernels=kernels)
            return (y,)
        y, cache = attention.forward(q_, k_, v_, dropout_p, np.random.default_rng(seed), kernels=kernels)
        return y, cache.lse, side_by_side(attention.backward(dy.astype(dtype), cache, kernels))

    compare(kernels, dtype, run, ("y",) if P else ("y", "lse", "dqkv"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(0, 5), st.integers(1, 4), st.integers(1, 3), st.integers(1, 6))
@settings(max_examples=15)
def test_attention_with_a_kv_cache(kernels, dtype, seed, B, P, T, n_head, hs):
    """T new positions after P cached ones: their outputs equal those of the whole sequence at once."""
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(B, P + T, n_head, hs)) for _ in range(3))

    def run(kernels, dtype):
        kv_cache = attention.KVCache(B, P + T, n_head, hs, dtype)
        q_, k_, v_ = cast(dtype, q, k, v)
        if P:
            attention.forward(q_[:, :P], k_[:, :P], v_[:, :P], kv_cache=kv_cache, kernels=kernels)
        y, _ = attention.forward(q_[:, P:], k_[:, P:], v_[:, P:], kv_cache=kv_cache, kernels=kernels)
        return (y,)

    compare(kernels, dtype, run, ("y",))
    whole, _ = attention.forward(q, k, v)
    assert_same(run(kernels, np.float64)[0], whole[:, P:], np.float64, "y")


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, st.integers(1, 70))
@settings(max_examples=15)
def test_cross_entropy(kernels, dtype, seed, B, T, V):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(B, T, V)) * 4
    targets = rng.integers(0, V, size=(B, T))
    targets[rng.random((B, T)) < 0.3] = IGNORE_INDEX
    targets[0, 0] = 0

    def run(kernels, dtype):
        loss, cache = cross_entropy.forward(logits.astype(dtype), targets, kernels=kernels)
        return loss, cache.lse, cross_entropy.backward(0.7, cache, kernels)

    compare(kernels, dtype, run, ("loss", "lse", "dlogits"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), batch, seq, st.integers(1, 5), channels, st.integers(0, 3), st.booleans(), st.booleans())
@settings(max_examples=15)
def test_embedding(kernels, dtype, seed, B, T, V, C, start, into_head, positions):
    """positions False: token embedding alone, as Llama's and Qwen's (no wpe)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, size=(B, T))  # few tokens: repeats accumulate
    wte, wpe = rng.normal(size=(V, C)), rng.normal(size=(start + T + 1, C)) if positions else None
    dout, head = rng.normal(size=(B, T, C)), rng.normal(size=(V, C))

    def run(kernels, dtype):
        out, cache = embedding.forward(idx, wte.astype(dtype), None if wpe is None else wpe.astype(dtype), start, kernels)
        dwte = head.astype(dtype) if into_head else None  # added into another gradient of wte, or alone
        return (out, *embedding.backward(dout.astype(dtype), cache, dwte, kernels))

    compare(kernels, dtype, run, ("out", "dwte", "dwpe"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.floats(1e-4, 1e-1), st.sampled_from([0.0, 0.1]), st.integers(1, 5))
@settings(max_examples=15)
def test_adamw(kernels, dtype, seed, n, lr, weight_decay, steps):
    rng = np.random.default_rng(seed)
    p0, grads = rng.normal(size=(n, 2)), [rng.normal(size=(n, 2)) for _ in range(steps)]

    def run(kernels, dtype):
        params = {"w": p0.astype(dtype)}
        optimizer = AdamW(params, weight_decay=weight_decay, kernels=kernels)
        for g in grads:
            optimizer.step({"w": g.astype(dtype)}, lr)
        return params["w"], optimizer.m["w"], optimizer.v["w"]

    compare(kernels, dtype, run, ("p", "m", "v"))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**16), st.booleans(), st.data())
@settings(max_examples=10)
def test_whole_model_logits_and_gradients(kernels, dtype, seed, bias, data):
    # hs >= 3: a layer norm over one or two channels is degenerate (its output is constant up to eps),
    # which makes a whole model's gradients rounding noise; the op tests above cover those widths
    n_head, hs = data.draw(st.integers(1, 3)), data.draw(st.integers(3, 8))
    shape = dict(vocab_size=data.draw(st.integers(2, 50)), block_size=16, n_layer=data.draw(st.integers(1, 3)),
                 n_head=n_head, n_embd=n_head * hs, dropout=data.draw(st.sampled_from([0.0, 0.2])))
    arch = data.draw(st.sampled_from(["gpt2", "llama", "qwen3"]))
    if arch == "gpt2":
        cfg = GPTConfig(**shape, bias=bias)
    else:  # twice the query heads of key/value heads, an even head size 2 hs; the head tied or not (as bias is drawn)
        shape.update(n_head=2 * n_head, n_embd=2 * n_head * 2 * hs)
        cfg = GPTConfig(**shape, arch=arch, n_kv_head=n_head, tie_word_embeddings=bias)
    rng = np.random.default_rng(seed)
    weights = GPT(cfg, seed=seed, dtype=np.float64).state_dict()
    for p in weights.values():
        p += rng.normal(0.0, 0.2, size=p.shape)
    B, T = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 16))
    idx, targets = rng.integers(0, cfg.vocab_size, size=(B, T)), rng.integers(0, cfg.vocab_size, size=(B, T))

    def run(kernels, dtype):
        model = GPT(cfg, seed=seed, dtype=dtype, backend=kernels.name)  # the same seed: the same dropout masks
        model.load_state_dict({name: p.astype(dtype) for name, p in weights.items()})
        logits, loss = model.forward(idx, targets)
        return (logits, loss, *model.backward().values())

    compare(kernels, dtype, run, ("logits", "loss", *weights), pooled=True)


@pytest.mark.parametrize("arch", ["gpt2", "qwen3"])
def test_generation_is_the_same_with_every_backend(kernels, arch):
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, arch=arch,
                    n_kv_head=1 if arch == "qwen3" else None)
    reference, model = GPT(cfg, seed=3, dtype=np.float64).eval(), GPT(cfg, seed=3, dtype=np.float64, backend=kernels.name).eval()
    idx = np.array([[1, 2, 3], [4, 5, 6]])  # two sequences: a KV cache of strided rows
    # past block_size the window slides and the cache is rebuilt: 12 new tokens cover both paths
    np.testing.assert_array_equal(model.generate(idx, 12, do_sample=False), reference.generate(idx, 12, do_sample=False))


@pytest.mark.parametrize("dtype", DTYPES)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 5, 768]), st.sampled_from([1, 7, 128]))
@settings(max_examples=15)
def test_residual(kernels, dtype, seed, N, C):
    # 768 x 128 (the recipe's stream) is past the kernels' threading threshold: both threads add their rows. An
    # addition of two numbers is one rounding, the same in every backend: equal bit for bit
    rng = np.random.default_rng(seed)
    x, a = rng.normal(size=(N, C)).astype(dtype), rng.normal(size=(N, C)).astype(dtype)
    expected = residual.add(x, a.copy())
    out = residual.add(x, a, kernels=kernels)
    assert out is a and np.array_equal(out, expected)


def test_the_ops_refuse_mixed_dtypes(kernels):
    x = np.ones((2, 3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="layernorm: w is float64 but x is float32"):
        layernorm.forward(x, np.ones(4), None, kernels=kernels)
    with pytest.raises(ValueError, match="linear: x is int64"):
        linear.forward(np.ones((2, 3, 4), dtype=np.int64), np.ones((4, 2)), kernels=kernels)


@pytest.mark.parametrize("name", ["numba", "c"])
def test_compiled_kernels_refuse_arrays_they_would_misread(name):
    if backends.kernels_for(name).name != name:
        pytest.skip(f"the {name} backend is not available here")
    with pytest.raises(ValueError, match="gelu: x must be C-contiguous"):
        gelu.forward(np.ones((4, 3, 2), dtype=np.float32).transpose(2, 1, 0), kernels=backends.kernels_for(name))


def test_numba_exp_and_tanh_agree_with_numpy():
    numba = pytest.importorskip("numba")
    from minigpt.backends.numba import exp, tanh

    @numba.njit
    def apply(x):
        out = np.empty((2, x.size), dtype=x.dtype)
        for i in range(x.size):
            out[0, i], out[1, i] = exp(x[i]), tanh(x[i])
        return out

    for dtype in DTYPES:
        x = np.concatenate([np.linspace(-120, 100, 200001), [-np.inf, -1e30, 0.0, 1e-30, -1e-30]]).astype(dtype)
        ours = apply(x)
        with np.errstate(over="ignore"):
            ref_exp, ref_tanh = np.exp(x.astype(np.float64)), np.tanh(x.astype(np.float64))
        finfo = np.finfo(dtype)
        normal = (ref_exp > finfo.tiny) & (ref_exp < finfo.max)  # the subnormal range is flushed to 0
        ulps = np.abs(ours[0][normal] - ref_exp[normal]) / (ref_exp[normal] * finfo.eps)
        assert ulps.max() < 2, f"{np.dtype(dtype)}: exp is off by {ulps.max():.1f} ulp"
        assert np.all(ours[0][ref_exp <= finfo.tiny] <= finfo.tiny)
        assert np.all(ours[0][ref_exp >= finfo.max] >= finfo.max)  # inf, or the largest finite
        assert np.abs(ours[1] - ref_tanh).max() <= 2 * finfo.eps, f"{np.dtype(dtype)}: tanh"
        assert np.isnan(apply(np.array([np.nan], dtype=dtype))).all()  # a diverged run stays visible


def test_a_backend_that_cannot_load_falls_back_with_one_warning_line(monkeypatch, capsys):
    def no_compiler():
        raise OSError("no C compiler (cc) on this machine")

    table = backends.table
    monkeypatch.setattr(backends, "table", lambda name: no_compiler() if name == "c" else table(name))
    monkeypatch.setattr(backends, "_tables", {})
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), backend="c")
    assert model.backend == "numpy"
    err = capsys.readouterr().err
    assert err == "minigpt: warning: the c backend is not available (no C compiler (cc) on this machine); using numpy\n"
    GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), backend="c")
    assert capsys.readouterr().err == ""  # once per process


def test_without_a_c_compiler_the_package_still_runs(tmp_path):
    code = ("import numpy as np; from minigpt import GPT, GPTConfig; "
            "m = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4), backend='c'); "
            "print(m.backend, m.forward(np.array([[1, 2]]))[0].shape)")
    env = {**os.environ, "CC": "no-such-compiler", "MINIGPT_CACHE": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "numpy (1, 2, 5)\n"
    assert result.stderr == ("minigpt: warning: the c backend is not available (no C compiler (no-such-compiler) "
                             "on this machine); using numpy\n")


def test_auto_picks_the_first_backend_that_loads(monkeypatch):
    table, missing = backends.table, set()

    def loads(name):
        if name in missing:
            raise ImportError(f"{name} is not here")
        return table(name)

    monkeypatch.setattr(backends, "table", loads)
    for gone, expected in ((set(), "c"), ({"c"}, "numba"), ({"c", "numba"}, "numpy")):
        missing.clear()
        missing.update(gone)
        monkeypatch.setattr(backends, "_tables", {})
        assert backends.kernels_for("auto").name == expected, gone


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'cuda'; choose one of numpy, numba, c, auto"):
        backends.kernels_for("cuda")


def modules_with_kernels() -> dict:
    """op -> module, for every module of minigpt/ops that holds reference kernels (functions named *_kernel), and the
    optimizer's: found in the source tree, not read from the registry's list of ops."""
    found = {"optim": importlib.import_module("minigpt.optim")}
    for path in sorted(Path(ops.__file__).parent.glob("*.py")):
        module = importlib.import_module(f"minigpt.ops.{path.stem}")
        if backends.kernel_names(module):
            found[path.stem] = module
    return found


def disagreements(table, modules: dict) -> list:
    """The ops for which NUMPY (the ops' default) and `table` do not both hold the op's module."""
    return [op for op, module in modules.items() if getattr(NUMPY, op) is not module
            or getattr(table, op, None) is not module]


def test_the_numpy_backend_computes_with_the_ops_default_kernels():
    modules = modules_with_kernels()
    assert {"layernorm", "attention", "optim"} <= set(modules)  # what is found: the ops' own files
    assert set(modules) <= set(backends.REFERENCE), "an op with kernels that no backend's table has"
    numpy_table = backends.table("numpy")
    assert numpy_table.name == NUMPY.name == "numpy"
    assert disagreements(numpy_table, modules) == []
    assert disagreements(backends.kernels_for("numpy"), modules) == []  # the table a model built with "numpy" holds
    # the check's negative controls: a table without an op, or with another module for it
    assert disagreements(SimpleNamespace(**{op: m for op, m in modules.items() if op != "gelu"}), modules) == ["gelu"]
    assert disagreements(SimpleNamespace(**{**modules, "rope": modules["swiglu"]}), modules) == ["rope"]


def test_processes_that_start_together_compile_a_numba_kernel_once(tmp_path):
    # test workers and MPI ranks start together with an empty cache: one compiles, the others wait and load
    code = ("import numpy as np; from minigpt import backends; from minigpt.backends.numba import dropout; "
            "x = np.ones(5); backends.kernels_for('numba').dropout.apply_kernel(x, x); "
            "print(sum(dropout.apply_loops.stats.cache_misses.values()))")
    env = {**os.environ, "MINIGPT_CACHE": str(tmp_path / "cache")}
    processes = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
                 for _ in range(3)]
    compiled = [int(p.communicate()[0]) for p in processes]
    assert sorted(compiled) == [0, 0, 1], compiled


def test_a_numba_kernel_runs_where_the_cache_cannot_be_written(tmp_path, monkeypatch):
    from minigpt.backends.numba import compile_once, dropout

    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path / "a-file" / "cache"))  # no directory can be made there
    x = np.arange(4.0)
    np.testing.assert_array_equal(compile_once(dropout.apply_kernel)(x, x), x * x)  # a wrapper that has not run yet
