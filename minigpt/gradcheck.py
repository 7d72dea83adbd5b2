"""Finite-difference gradient checking for minigpt's ops and model, and for your own.

A backward pass is checked against central differences of the forward pass, in float64:

    f'(x) ~ (f(x + eps) - f(x - eps)) / (2 eps)      error O(eps^2) from truncation, O(u |f| / eps) from rounding

>>> import numpy as np
>>> from minigpt.ops import gelu
>>> x = np.linspace(-3.0, 3.0, 12).reshape(1, 3, 4)
>>> report = check_op(gelu.forward, gelu.backward, {"x": x})
>>> report.max_rel_error < 1e-6
True

Two kinds of check run on each tensor:
  - element by element: perturb one entry at a time (every entry, or `max_elements` chosen at random);
  - along random directions d: perturb the whole tensor along d and compare with <g, d>, which covers
    every entry of a large tensor at the cost of two evaluations.
Both are the same measurement, the derivative along a direction d (an element is d = e_i), and both
report relative error = |<g, d> - numerical| / (G ||d||_1), where G is the largest analytic gradient
entry among all tensors checked together: <g, d> can be at most G ||d||_1 in size. A gradient that is
tiny by cancellation (layer norm over two channels, say) is thus judged against the scale of the
function's gradient rather than against rounding noise alone. Tutorial: docs/gradcheck.md.
"""

from typing import Callable, NamedTuple

import numpy as np

EPS = 1e-6  # step: balances O(eps^2) truncation against O(1e-16 / eps) rounding error in float64
RESOLVED = 1e-6  # the relative error the check can resolve: G's floor (below) is set from it


class TensorError(NamedTuple):
    name: str
    shape: tuple
    n_checked: int  # entries checked one by one
    n_directions: int  # random directions checked
    max_abs_error: float  # largest |analytic - numerical| over entries
    max_rel_error: float  # largest relative error over entries and directions


class GradcheckReport(NamedTuple):
    tensors: list  # one TensorError per checked tensor
    scale: float  # G, the largest analytic gradient entry (or the floor the differences can resolve): errors are relative to it

    @property
    def max_rel_error(self) -> float:
        return max((t.max_rel_error for t in self.tensors), default=0.0)

    @property
    def worst(self) -> TensorError:
        return max(self.tensors, key=lambda t: t.max_rel_error)

    def __str__(self) -> str:
        lines = [f"{'tensor':<40} {'shape':<16} {'checked':>8} {'max abs err':>12} {'max rel err':>12}"]
        for t in self.tensors:
            checked = f"{t.n_checked}+{t.n_directions}d"
            lines.append(f"{t.name:<40} {str(t.shape):<16} {checked:>8} {t.max_abs_error:>12.3e} {t.max_rel_error:>12.3e}")
        lines.append(f"relative to G = {self.scale:.3e}, the largest analytic gradient entry or, if larger, the "
                     f"smallest gradient the differences resolve")
        return "\n".join(lines)

    __repr__ = __str__  # so that a failing `assert report.max_rel_error < tol, report` prints the table


def gradcheck(
    f: Callable[[], float],
    params: dict,
    grads: dict,
    *,
    eps: float = EPS,
    max_elements: int | None = None,
    n_directions: int = 2,
    seed: int = 0,
) -> GradcheckReport:
    """Compare `grads` (analytic) with central differences of the scalar function `f`.

    `f()` takes no arguments and reads the arrays in `params`, which gradcheck perturbs in place
    (and restores exactly). Every array must be float64. A gradient of None is skipped.
    """
    rng = np.random.default_rng(seed)
    for name, x in params.items():
        if x.dtype != np.float64:
            raise ValueError(
                f"gradcheck needs float64 arrays but {name!r} is {x.dtype}; in float32 a central difference "
                f"keeps only about 3 correct digits. Build the inputs (or the model) with dtype=np.float64"
            )
        if not x.flags.c_contiguous:
            raise ValueError(f"{name!r} must be a C-contiguous array so that it can be perturbed in place")
        g = grads.get(name)
        if g is not None and g.shape != x.shape:
            raise ValueError(f"gradient of {name!r} has shape {g.shape}, but the array has shape {x.shape}")
    checked = {name: g for name, g in grads.items() if g is not None and name in params}
    f0 = float(f())
    # G, the gradient's scale. Rounding in f is about u max(|f|, 1) per evaluation (the 1: terms of order one inside
    # f round too, as the log of a sum near 1 does in a small cross-entropy), so a difference quotient carries an
    # absolute error of up to about u max(|f|, 1) / eps. G is never smaller than that error over RESOLVED: a gradient
    # too small for the differences to check to RESOLVED relative error is measured against the smallest one they
    # can, so that rounding noise is never reported as a wrong gradient (and a wrong gradient still is).
    resolution = np.finfo(np.float64).eps * max(abs(f0), 1.0) / eps / RESOLVED
    G = max([resolution] + [float(np.abs(g).max(initial=0.0)) for g in checked.values()])

    def derivative_along(x, d):
        """(f(x + eps d) - f(x - eps d)) / (2 eps), restoring x exactly afterwards."""
        orig = x.copy()
        x += eps * d
        f_plus = float(f())
        np.copyto(x, orig)
        x -= eps * d
        f_minus = float(f())
        np.copyto(x, orig)
        return (f_plus - f_minus) / (2 * eps)

    results = []
    for name, g in checked.items():
        x = params[name]
        flat = x.reshape(-1)  # a view: writing into it perturbs x, which f reads
        # element by element: d = e_i, so ||d||_1 = 1
        if max_elements is None or x.size <= max_elements:
            elements = np.arange(x.size)
        else:
            elements = rng.choice(x.size, size=max_elements, replace=False)
        numeric = np.empty(len(elements))
        for j, i in enumerate(elements):
            orig = flat[i]
            flat[i] = orig + eps
            f_plus = float(f())
            flat[i] = orig - eps
            f_minus = float(f())
            flat[i] = orig
            numeric[j] = (f_plus - f_minus) / (2 * eps)
        max_abs = float(np.abs(g.reshape(-1)[elements] - numeric).max(initial=0.0))
        max_rel = max_abs / G
        # along random directions
        for _ in range(n_directions):
            d = rng.standard_normal(x.shape)
            d /= np.abs(d).max(initial=1e-300)  # the largest entry 1: a tiny d would measure only rounding noise
            error = abs(float(np.sum(g * d)) - derivative_along(x, d))
            max_rel = max(max_rel, error / (G * np.abs(d).sum()))
        results.append(TensorError(name, tuple(x.shape), len(elements), n_directions, max_abs, max_rel))
    return GradcheckReport(results, G)


def check_op(forward, backward, inputs: dict, *, seed: int = 0, **kwargs) -> GradcheckReport:
    """Check an op's backward against its forward.

    `forward(**inputs)` returns (out, cache) and `backward(dout, cache)` returns the gradients of the
    inputs in the order of `inputs` (further trailing entries must be None, e.g. the db of an op
    called without a bias). Wrap anything that is not differentiated (token ids, n_head, a seeded rng)
    in a lambda. The scalar checked is sum(out * dout) for a random upstream gradient dout, so every
    entry of out contributes with its own weight.
    """
    rng = np.random.default_rng(seed)
    out, cache = forward(**inputs)
    dout = rng.standard_normal(np.shape(out))  # (*out.shape)
    if np.ndim(out) == 0:
        dout = float(dout)
    grads = backward(dout, cache)
    if not isinstance(grads, tuple):
        grads = (grads,)
    if len(grads) < len(inputs) or any(g is not None for g in grads[len(inputs):]):
        raise ValueError(
            f"backward returned {len(grads)} gradients for inputs {list(inputs)}; it must return one per input, "
            f"in the same order (followed only by None)"
        )
    named = dict(zip(inputs, grads))
    return gradcheck(lambda: np.sum(forward(**inputs)[0] * dout), inputs, named, seed=seed, **kwargs)


def check_model(model, idx, targets, head=None, **kwargs) -> GradcheckReport:
    """Check `model.backward()` against finite differences of the loss `model.forward(idx, targets)` (a classifier's:
    `model.forward(idx, targets, **head)`, head holding last, labels and lm_weight).

    The model must be float64. Dropout masks are held fixed: the dropout generator is rewound to the
    same state before every evaluation, so each perturbed forward sees the masks of the analytic one.
    """
    rng_state = model.rng.bit_generator.state

    def loss():
        model.rng.bit_generator.state = rng_state
        return model.forward(idx, targets, **(head or {}))[1]

    loss()
    grads = model.backward()
    return gradcheck(loss, model.params, grads, **kwargs)
