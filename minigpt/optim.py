"""AdamW with decoupled weight decay, the warmup + cosine learning-rate schedule, and global-norm
gradient clipping, as nanoGPT trains GPT-2. Math: docs/training.md. Tests: tests/test_optim.py."""

import math

import numpy as np

from minigpt.ops.reference import NUMPY


def decays(name: str, p: np.ndarray) -> bool:
    """nanoGPT's split: every parameter of two or more dimensions decays (matmul weights and embeddings);
    biases and layer-norm gains do not."""
    return p.ndim >= 2


# --8<-- [start:update]
def adamw_kernel(p, g, m, v, lr, beta1, beta2, bias_correction1, bias_correction2_sqrt, eps, decay):
    """One AdamW step for one parameter, in place; decay is the weight decay (0 for no decay)."""
    m *= beta1
    m += (1.0 - beta1) * g  # first moment
    v *= beta2
    v += (1.0 - beta2) * (g * g)  # second moment
    if decay > 0.0:
        p *= 1.0 - lr * decay  # decoupled weight decay
    # the bias corrections undo the zero initialisation of m and v: without them the first steps
    # would be too small by a factor 1 - beta^t
    p -= (lr / bias_correction1) * m / (np.sqrt(v) / bias_correction2_sqrt + eps)
# --8<-- [end:update]


class AdamW:
    """Adam (Kingma and Ba) with decoupled weight decay (Loshchilov and Hutter), computed exactly as
    torch.optim.AdamW computes it:

        m = beta1 m + (1 - beta1) g                     first moment
        v = beta2 v + (1 - beta2) g^2                   second moment
        p = p - lr wd p                                 decay, only for parameters that decay()
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Each parameter's step is one call of `kernels.optim.adamw_kernel`: a backend's, from the kernel table given (the
    model's, `model.kernels`: minigpt/backends), or adamw_kernel above with NUMPY, the default.
    """

    def __init__(self, params: dict, weight_decay=0.1, beta1=0.9, beta2=0.99, eps=1e-8, kernels=NUMPY):
        self.params = params
        self.weight_decay, self.beta1, self.beta2, self.eps = weight_decay, beta1, beta2, eps
        self.update = kernels.optim.adamw_kernel
        self.m = {name: np.zeros_like(p) for name, p in params.items()}
        self.v = {name: np.zeros_like(p) for name, p in params.items()}
        self.t = 0  # steps taken: the bias corrections need it

    def step(self, grads: dict, lr: float) -> None:
        """Update every parameter in place."""
        self.t += 1
        bias_correction1 = 1.0 - self.beta1**self.t
        bias_correction2_sqrt = math.sqrt(1.0 - self.beta2**self.t)
        for name, p in self.params.items():
            decay = self.weight_decay if decays(name, p) else 0.0
            self.update(p, grads[name], self.m[name], self.v[name], lr, self.beta1, self.beta2,
                        bias_correction1, bias_correction2_sqrt, self.eps, decay)

    def buffers(self) -> dict:
        """What the optimizer keeps for each parameter, by what it is (a checkpoint checks them finite)."""
        return {"AdamW's first moment of": self.m, "AdamW's second moment of": self.v}

    def state_dict(self) -> dict:
        """The moments, as arrays named exp_avg.<param> and exp_avg_sq.<param> (torch's names)."""
        state = {f"exp_avg.{name}": m for name, m in self.m.items()}
        state.update({f"exp_avg_sq.{name}": v for name, v in self.v.items()})
        return state

    def load_state_dict(self, state: dict, t: int) -> None:
        for name, p in self.params.items():
            for key, dest in ((f"exp_avg.{name}", self.m), (f"exp_avg_sq.{name}", self.v)):
                if key not in state:
                    raise ValueError(f"optimizer state {key!r} is missing")
                if state[key].shape != p.shape or state[key].dtype != p.dtype:
                    raise ValueError(f"optimizer state {key!r} has shape {state[key].shape} and dtype "
                                     f"{state[key].dtype}, expected {p.shape} and {p.dtype}")
                dest[name] = np.array(state[key])
        self.t = t


# --8<-- [start:get_lr]
def get_lr(it: int, learning_rate: float, min_lr: float, warmup_iters: int, decay_iters: int) -> float:
    """The learning rate of step `it` (0-based), as nanoGPT schedules it: linear warmup over warmup_iters
    steps, then a cosine from learning_rate down to min_lr at decay_iters, then min_lr."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / (decay_iters - warmup_iters)  # 0 -> 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return min_lr + coeff * (learning_rate - min_lr)
# --8<-- [end:get_lr]


def sum_of_squares(g: np.ndarray) -> float:
    """sum(g**2), a BLAS dot product; again in float64 where float32 overflowed (entries past 1.8e19), so that a
    huge gradient is clipped like any other rather than becoming an infinite norm."""
    flat = g.reshape(-1)
    s = float(np.dot(flat, flat))
    if math.isinf(s) and g.dtype == np.float32 and np.isfinite(g).all():
        s = float(np.dot(flat.astype(np.float64), flat.astype(np.float64)))
    return s


# --8<-- [start:clip]
def clip_grad_norm(grads: dict, max_norm: float) -> float:
    """Scale all gradients together so that their global L2 norm is at most max_norm (0: no clipping),
    as torch.nn.utils.clip_grad_norm_ does. Returns the norm before clipping."""
    total = math.sqrt(sum(sum_of_squares(g) for g in grads.values()))
    if max_norm > 0:
        coef = max_norm / (total + 1e-6)
        if coef < 1.0:
            for g in grads.values():
                g *= coef
    return total
# --8<-- [end:clip]
