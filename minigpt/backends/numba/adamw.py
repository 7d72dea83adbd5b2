"""The AdamW update, fused: one pass over each parameter reads p, g, m, v once and writes p, m, v once
(NumPy's version makes about ten passes). Reference: AdamW.step in minigpt/optim.py."""

import math

from numba import njit, prange

from minigpt.backends.common import check_arrays
from minigpt.backends.numba import threads_for


@njit(cache=True, parallel=True)
def adamw_kernel(p, g, m, v, lr, beta1, beta2, bias_correction1, bias_correction2_sqrt, eps, decay):
    """Update p, m, v (all (n,)) in place, exactly as AdamW.step orders the arithmetic."""
    for i in prange(p.shape[0]):
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
        v[i] = beta2 * v[i] + (1.0 - beta2) * (g[i] * g[i])
        if decay > 0.0:
            p[i] *= 1.0 - lr * decay
        p[i] -= (lr / bias_correction1) * m[i] / (math.sqrt(v[i]) / bias_correction2_sqrt + eps)


def adamw_update(p, g, m, v, lr, beta1, beta2, bias_correction1, bias_correction2_sqrt, eps, decay):
    check_arrays("adamw", p.dtype, p=p, g=g, m=m, v=v)
    if not p.shape == g.shape == m.shape == v.shape:
        raise ValueError(f"adamw: shapes differ: p {p.shape}, g {g.shape}, m {m.shape}, v {v.shape}")
    with threads_for(p.size):
        adamw_kernel(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), lr, beta1, beta2,
                     bias_correction1, bias_correction2_sqrt, eps, decay)
