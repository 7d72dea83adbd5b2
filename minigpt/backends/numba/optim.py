"""The AdamW update, fused: one pass over each parameter reads p, g, m, v once and writes p, m, v once
(NumPy's version makes about ten passes), in the parameters' precision as NumPy computes it.
Reference: adamw_kernel in minigpt/optim.py."""

import math

import numba

from minigpt.backends.numba import OPTIONS, compile_once
from minigpt.validate import check_contiguous


@numba.njit(**OPTIONS)
def update_loops(p, g, m, v, lr, beta1, beta2, bias_correction1, bias_correction2_sqrt, eps, decay):
    """Update p, m, v (all (n,)) in place, in the order of adamw_kernel's arithmetic."""
    real = p.dtype.type
    beta1, beta2, eps = real(beta1), real(beta2), real(eps)
    keep = real(1.0 - lr * decay)  # decoupled weight decay
    step = real(lr / bias_correction1)
    correction2 = real(bias_correction2_sqrt)
    for i in range(p.shape[0]):
        m[i] = beta1 * m[i] + (real(1) - beta1) * g[i]
        v[i] = beta2 * v[i] + (real(1) - beta2) * (g[i] * g[i])
        p[i] = p[i] * keep - step * m[i] / (math.sqrt(v[i]) / correction2 + eps)


@compile_once
def adamw_kernel(p, g, m, v, lr, beta1, beta2, bias_correction1, bias_correction2_sqrt, eps, decay):
    check_contiguous("adamw", p=p, g=g, m=m, v=v)
    if not p.shape == g.shape == m.shape == v.shape:
        raise ValueError(f"adamw: shapes differ: p {p.shape}, g {g.shape}, m {m.shape}, v {v.shape}")
    update_loops(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), lr, beta1, beta2,
                 bias_correction1, bias_correction2_sqrt, eps, decay)
