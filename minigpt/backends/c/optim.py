"""The AdamW update through the C kernels (kernels/adamw.c). Same contract as adamw_kernel in minigpt/optim.py."""

from minigpt.backends.c import kernel, ptr
from minigpt.validate import check_contiguous


def adamw_kernel(p, g, m, v, lr, beta1, beta2, bias_correction1, bias_correction2_sqrt, eps, decay):
    check_contiguous("adamw", p=p, g=g, m=m, v=v)
    if not p.shape == g.shape == m.shape == v.shape:
        raise ValueError(f"adamw: shapes differ: p {p.shape}, g {g.shape}, m {m.shape}, v {v.shape}")
    kernel("adamw_update", p.dtype)(ptr(p), ptr(g), ptr(m), ptr(v), p.size, lr, beta1, beta2, bias_correction1,
                                    bias_correction2_sqrt, eps, decay)
