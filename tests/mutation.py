"""How strong the gradient tests are, measured: realistic bugs put into the backward passes one at a time (each in a
copy of minigpt/, never in the source tree), and the op's tests and the model's tests run against each. A bug that
both let through is a surviving mutant: a hole in the tests.

    python tests/mutation.py                  # every mutant, two at a time; the table of docs/gradcheck.md
    pytest -m slow tests/test_mutation.py     # the same, as tests: each mutant must be caught

The unmutated copy is run first, as the control: every test passes on it, so a failure is the bug's doing.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
MODEL_TESTS = "tests/test_model.py"
PREFERENCE_TESTS = "tests/test_preference.py"  # DPO's and the policy gradient's backward through the whole model
RL_ESTIMATOR_TESTS = "tests/test_rl_estimator.py"  # the policy gradient's estimate against the exact gradient


class Mutant(NamedTuple):
    name: str  # what kind of bug it is
    file: str  # the source file it goes into, from the repository's root
    original: str  # the text it replaces (exactly once in the file)
    mutated: str
    tests: str | None  # the op's own tests (None for a bug in the model, which the model's tests alone cover)
    model_tests: str = MODEL_TESTS  # the tests of the whole model's backward: for a preference loss, its own


LN, LIN, EMB, GELU, SM, ATT, CE, DROP = (f"minigpt/ops/{op}.py" for op in (
    "layernorm", "linear", "embedding", "gelu", "softmax", "attention", "cross_entropy", "dropout"))
MODEL, GPT2, LLAMA = "minigpt/model.py", "minigpt/gpt2.py", "minigpt/llama.py"
RMS, ROPE, SWIGLU = (f"minigpt/ops/{op}.py" for op in ("rmsnorm", "rope", "swiglu"))
DPO, PG, LOGP = (f"minigpt/ops/{op}.py" for op in ("dpo", "policy_gradient", "token_logprobs"))
OBJECTIVES = "minigpt/objectives.py"
MUTANTS = [
    Mutant("layernorm: a dropped term (dx without the term through the mean)", LN,
           "(dnorm - dnorm_mean - norm * dnorm_norm_mean)", "(dnorm - norm * dnorm_norm_mean)", "tests/ops/test_layernorm.py"),
    Mutant("layernorm: a dropped term (dx without the term through the variance)", LN,
           "(dnorm - dnorm_mean - norm * dnorm_norm_mean)", "(dnorm - dnorm_mean)", "tests/ops/test_layernorm.py"),
    Mutant("layernorm: a wrong axis (the mean of dnorm over the batch)", LN,
           "dnorm_mean = dnorm.mean(axis=-1, keepdims=True)", "dnorm_mean = dnorm.mean(axis=0, keepdims=True)",
           "tests/ops/test_layernorm.py"),
    Mutant("layernorm: a wrong sum axis (dw over the batch, at one position)", LN,
           "dw = (dout * norm).sum(axis=(0, 1))", "dw = (dout * norm).sum(axis=0)[0]", "tests/ops/test_layernorm.py"),
    Mutant("layernorm: a lost factor (dnorm without the gain w)", LN, "dnorm = dout * w  #", "dnorm = dout  #",
           "tests/ops/test_layernorm.py"),
    Mutant("linear: a wrong sum (db from one position)", LIN,
           "db = dout.sum(axis=0) if has_bias else None", "db = dout[0] if has_bias else None", "tests/ops/test_linear.py"),
    Mutant("linear: a wrong scale (dw a mean over positions, not a sum)", LIN,
           "dw = x.T @ dout  #", "dw = x.T @ dout / x.shape[0]  #", "tests/ops/test_linear.py"),
    Mutant("embedding: a scatter written as an assignment", EMB, "np.add.at(dwte, idx, dout)", "dwte[idx] += dout",
           "tests/ops/test_embedding.py"),
    Mutant("embedding: a dropped sum (dwpe from the first sequence)", EMB,
           "dwpe[start:start + T] += dout.sum(axis=0)", "dwpe[start:start + T] += dout[0]", "tests/ops/test_embedding.py"),
    Mutant("gelu: a dropped term (the product rule's second term)", GELU,
           "(0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du_dx)", "(0.5 * (1.0 + th))", "tests/ops/test_gelu.py"),
    Mutant("gelu: a wrong inner derivative (3 x^2 taken as x^2)", GELU,
           "du_dx = GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * x * x)", "du_dx = GELU_SCALE * (1.0 + GELU_CUBIC * x * x)",
           "tests/ops/test_gelu.py"),
    Mutant("softmax: a dropped term (the VJP without its subtracted sum)", SM,
           "dx = p * (dp - (dp * p).sum(axis=-1, keepdims=True))", "dx = p * dp", "tests/ops/test_softmax.py"),
    Mutant("softmax: a wrong sum axis (the sum over the first axis)", SM,
           "dx = p * (dp - (dp * p).sum(axis=-1, keepdims=True))", "dx = p * (dp - (dp * p).sum(axis=0, keepdims=True))",
           "tests/ops/test_softmax.py"),
    Mutant("attention: a missing scale (dpreatt without 1/sqrt(hs))", ATT,
           "softmax.backward(datt, softmax.SoftmaxCache(att)) / math.sqrt(hs)",
           "softmax.backward(datt, softmax.SoftmaxCache(att))", "tests/ops/test_attention.py"),
    Mutant("attention: a lost transpose (dk = dpreatt @ q)", ATT, "dk = dpreatt.swapaxes(-1, -2) @ q", "dk = dpreatt @ q",
           "tests/ops/test_attention.py"),
    Mutant("attention: dropout forgotten in the backward (datt not masked)", ATT, "datt = datt * mask  #",
           "datt = datt  #", "tests/ops/test_attention.py"),
    Mutant("attention: dv from the probabilities before dropout", ATT, "dv = att_dropped.swapaxes(-1, -2) @ dy",
           "dv = att.swapaxes(-1, -2) @ dy", "tests/ops/test_attention.py"),
    Mutant("cross-entropy: a missing scale (the mean's 1/N)", CE, "(cache.valid * (dloss / cache.n_valid))",
           "(cache.valid * dloss)", "tests/ops/test_cross_entropy.py"),
    Mutant("cross-entropy: ignored positions given a gradient", CE, "(cache.valid * (dloss / cache.n_valid))",
           "(np.ones_like(cache.valid) * (dloss / cache.n_valid))", "tests/ops/test_cross_entropy.py"),
    Mutant("dropout: the mask not applied in the backward", DROP, "    return kernels.dropout.apply_kernel(dout, cache.mask)  # (...)",
           "    return dout  # (...)", "tests/ops/test_dropout.py"),
    Mutant("model: a lost skip path (the MLP's residual)", GPT2, "    dx = residual.add(dx, dm, kernels=kernels)  # (B, T, C) into dm's new array",
           "    dx = dm  # (B, T, C) into dm's new array", None),
    Mutant("model: a lost skip path (the attention's residual)", GPT2, "    dx = residual.add(dx, da, kernels=kernels)  # (B, T, C) into da's new array",
           "    dx = da  # (B, T, C) into da's new array", None),
    Mutant("model: a lost sum (wte's gradient without the tied head's)", MODEL, "            dwte = dhead.T  # (V, C)",
           "            dwte = None  # (V, C)", None),
    Mutant("llama: a lost skip path (the MLP's residual)", LLAMA, "    dx = residual.add(dx, dm, kernels=kernels)  # (B, T, C) into dm's new array",
           "    dx = dm  # (B, T, C) into dm's new array", None),
    Mutant("llama: a lost skip path (the attention's residual)", LLAMA, "    dx = residual.add(dx, da, kernels=kernels)  # (B, T, C) into da's new array",
           "    dx = da  # (B, T, C) into da's new array", None),
    Mutant("rmsnorm: a dropped term (dx without the term through the mean square)", RMS,
           "dx = rstd[..., None] * (dnorm - norm * dnorm_norm_mean)", "dx = rstd[..., None] * dnorm",
           "tests/ops/test_rmsnorm.py"),
    Mutant("rope: the backward rotates forward again (not the transposed rotation)", ROPE,
           "return dout * cos + rotate_half_transposed(dout * sin)", "return dout * cos + rotate_half(dout * sin)",
           "tests/ops/test_rope.py"),
    Mutant("swiglu: SiLU's derivative without its second term (sigmoid only)", SWIGLU,
           "dgate = dout * up * (s * (1.0 + gate * (1.0 - s)))", "dgate = dout * up * s", "tests/ops/test_swiglu.py"),
    Mutant("attention: a key/value head's gradient from one query head of its group, not their sum", ATT,
           "dk = dk.reshape(B, nkv, nh // nkv, T, hs).sum(axis=2)",
           "dk = dk.reshape(B, nkv, nh // nkv, T, hs)[:, :, 0]", "tests/ops/test_attention.py"),
    Mutant("model: the blocks' backward in the forward's order", MODEL, "for l in reversed(range(cfg.n_layer)):",
           "for l in range(cfg.n_layer):", None),
    Mutant("model: the embedding dropout's backward skipped", MODEL,
           "dx = dropout.backward(dx, cache.embd_dropout, kernels=kernels)  # (B, T, C)", "dx = dx  # (B, T, C)", None),
    Mutant("dpo: each pair weighted by how right the model is, sigmoid(z), not how wrong", DPO,
           "np.exp(-np.logaddexp(0.0, z))", "np.exp(-np.logaddexp(0.0, -z))", "tests/ops/test_dpo.py", PREFERENCE_TESTS),
    Mutant("dpo: a missing scale (the mean's 1/B)", DPO, "dz = -dloss * sigmoid_minus_z / B",
           "dz = -dloss * sigmoid_minus_z", "tests/ops/test_dpo.py", PREFERENCE_TESTS),
    Mutant("dpo: the rejected completion's gradient with the chosen's sign", DPO, "return beta * dz, -beta * dz",
           "return beta * dz, beta * dz", "tests/ops/test_dpo.py", PREFERENCE_TESTS),
    Mutant("token log-probabilities: a loss's gradient (the sign not turned)", LOGP,
           "np.where(cache.valid, -np.asarray(dlogp), 0.0)", "np.where(cache.valid, np.asarray(dlogp), 0.0)",
           "tests/ops/test_token_logprobs.py", PREFERENCE_TESTS),
    Mutant("token log-probabilities: the prompt's and the padding's positions given a gradient", LOGP,
           "np.where(cache.valid, -np.asarray(dlogp), 0.0)", "-np.asarray(dlogp)", "tests/ops/test_token_logprobs.py",
           PREFERENCE_TESTS),
    Mutant("policy gradient: a missing scale (the mean's 1/N)", PG, "(-dloss * advantages / N)", "(-dloss * advantages)",
           "tests/ops/test_policy_gradient.py", PREFERENCE_TESTS),
    Mutant("policy gradient: the padding given the completion's advantage", PG,
           "np.where(valid, (-dloss * advantages / N)[:, None], 0.0)",
           "np.broadcast_to((-dloss * advantages / N)[:, None], valid.shape)", "tests/ops/test_policy_gradient.py",
           PREFERENCE_TESTS),
    Mutant("policy gradient: a baseline that includes the completion itself (biased)", PG,
           "others = (rewards.sum(axis=1, keepdims=True) - rewards) / (G - 1)",
           "others = rewards.mean(axis=1, keepdims=True)", "tests/ops/test_policy_gradient.py", RL_ESTIMATOR_TESTS),
    Mutant("dpo objective: the chosen and rejected rows' gradients swapped", OBJECTIVES,
           "dseq = np.concatenate([dchosen, drejected])", "dseq = np.concatenate([drejected, dchosen])", None,
           PREFERENCE_TESTS),
    Mutant("dpo objective: a completion's gradient spread as a mean over its tokens, where its log-probability is "
           "their sum", OBJECTIVES, "dlogp = np.broadcast_to(dseq[:, None], lp_cache.valid.shape)",
           "dlogp = np.broadcast_to(dseq[:, None] / lp_cache.valid.sum(axis=1, keepdims=True), lp_cache.valid.shape)",
           None, PREFERENCE_TESTS),
    Mutant("rpo: the chosen tokens' cross-entropy differentiated as their sum, not their mean", OBJECTIVES,
           "dchosen = dchosen - self.alpha / n_chosen", "dchosen = dchosen - self.alpha", None, PREFERENCE_TESTS),
]


def copy_package(into: Path, mutant: Mutant | None = None) -> Path:
    """minigpt/ copied into `into` (with the C sources it ships: copytree copies what the link
    minigpt/backends/c/kernels points to), with the mutant's bug in it."""
    shutil.copytree(ROOT / "minigpt", into / "minigpt", ignore=shutil.ignore_patterns("__pycache__"))
    if mutant is not None:
        path = into / mutant.file
        source = path.read_text()
        if source.count(mutant.original) != 1:
            raise ValueError(f"{mutant.file}: {mutant.original!r} is there {source.count(mutant.original)} times, not once")
        path.write_text(source.replace(mutant.original, mutant.mutated))
    return into


def passes(package: Path, tests: str) -> bool:
    """Whether `tests` pass with the copy of minigpt at `package` (one process, stopping at the first failure)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package), str(ROOT / "tests")]), "CI": "true",
           "MINIGPT_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", "-m", "not slow",
               str(ROOT / tests)]
    check = subprocess.run([sys.executable, "-c", "import minigpt; print(minigpt.__file__)"], env=env,
                           capture_output=True, text=True, cwd=package)
    if not check.stdout.startswith(str(package)):  # the copy must be what the tests import, not the installed one
        raise RuntimeError(f"the tests would import {check.stdout.strip() or check.stderr} instead of {package}")
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=package).returncode == 0


def caught(mutant: Mutant) -> dict:
    """{"op": the op's tests caught it (None: there are none for a model bug), "model": the model's tests did}."""
    with tempfile.TemporaryDirectory() as tmp:
        package = copy_package(Path(tmp), mutant)
        return {"op": None if mutant.tests is None else not passes(package, mutant.tests),
                "model": not passes(package, mutant.model_tests)}


def control() -> None:
    """The unmutated copy passes every test the mutants are run against."""
    with tempfile.TemporaryDirectory() as tmp:
        package = copy_package(Path(tmp))
        for tests in sorted({m.tests for m in MUTANTS if m.tests} | {m.model_tests for m in MUTANTS}):
            if not passes(package, tests):
                raise AssertionError(f"{tests} fails without any mutant: the measurement would mean nothing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    control()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(caught, MUTANTS))
    word = {True: "caught", False: "**missed**", None: "(none)"}
    print("| bug put into the backward | the op's tests | the model's tests |")
    print("|---|---|---|")
    for mutant, result in zip(MUTANTS, results):
        print(f"| {mutant.name} | {word[result['op']]} | {word[result['model']]} |")
    killed = sum(r["op"] or r["model"] for r in results)
    by_op = sum(bool(r["op"]) for r in results if r["op"] is not None)
    ops = sum(r["op"] is not None for r in results)
    by_model = sum(r["model"] for r in results)
    print(f"\ncaught {killed} of {len(MUTANTS)}: the op's tests {by_op} of the {ops} in ops, the model's tests "
          f"{by_model} of {len(MUTANTS)} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
