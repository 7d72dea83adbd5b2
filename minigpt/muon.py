"""Muon (MomentUm Orthogonalized by Newton-Schulz, Keller Jordan 2024) for the blocks' weight matrices, and AdamW for
the rest (embeddings, the head, norms' gains, biases), as modded-nanogpt and nanochat train. Computed exactly as
torch.optim.Muon computes it (its adjust_lr_fn "original", Keller Jordan's scaling), but in the parameters' own dtype
where torch runs the iterations in bfloat16. Math: docs/muon.md. Tests: tests/test_muon.py.

Every matrix is updated as torch lays out nn.Linear's weight, (out, in): Llama's and Qwen's weights are stored so;
GPT-2's (in, out) weights are handed over as their transposed views (`w.T`, which numpy updates in place), so that
both families take the same mathematical step.
"""

import math

import numpy as np

from minigpt.ops.reference import NUMPY
from minigpt.optim import AdamW

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # (a, b, c) of the quintic a X + b (X X^T) X + c (X X^T)^2 X
NS_STEPS = 5
NS_EPS = 1e-7  # the smallest norm divided by: a zero update stays zero instead of becoming NaN


# --8<-- [start:newton_schulz]
def newton_schulz(g: np.ndarray, steps: int = NS_STEPS, coefficients: tuple = NS_COEFFICIENTS,
                  eps: float = NS_EPS) -> np.ndarray:
    """An approximation of U V^T, where U S V^T = g is the SVD: g with its singular values pushed towards 1 (those not
    far below the largest to about [0.7, 1.2] in 5 steps), as torch.optim.Muon's _zeropower_via_newtonschulz computes
    it (in g's dtype, where torch computes in bfloat16)."""
    a, b, c = coefficients
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g  # (m, n), m <= n: the Gram matrix x x^T is the smaller of the two, (m, m)
    # the Frobenius norm is at least the largest singular value: every singular value is now in [0, 1], where the
    # iteration converges
    x = x / max(float(np.linalg.norm(x)), eps)  # (m, n)
    for _ in range(steps):
        gram = x @ x.T  # (m, m)
        poly = b * gram + c * (gram @ gram)  # (m, m)
        x = a * x + poly @ x  # (m, n): each singular value s becomes a s + b s^3 + c s^5
    return x.T if tall else x
# --8<-- [end:newton_schulz]


# --8<-- [start:update]
def muon_kernel(w, g, buf, lr, momentum, weight_decay) -> None:
    """One Muon step for one matrix w (out, in), in place; buf is its momentum (out, in)."""
    buf += (1.0 - momentum) * (g - buf)  # (out, in): the gradients averaged (torch: buf.lerp_(g, 1 - mu))
    update = g + momentum * (buf - g)  # (out, in): Nesterov, a step further along the momentum (g.lerp(buf, mu))
    o = newton_schulz(update)  # (out, in), its singular values about 1
    # a matrix with more outputs than inputs gets a larger step, so that every update has about the same RMS
    # per input: lr sqrt(max(1, out / in))
    out_features, in_features = w.shape
    adjusted_lr = lr * math.sqrt(max(1.0, out_features / in_features))
    if weight_decay > 0.0:
        w *= 1.0 - lr * weight_decay  # decoupled weight decay, by the unadjusted rate (as torch's)
    w -= adjusted_lr * o
# --8<-- [end:update]


class Muon:
    """Muon for some 2-D parameters: `matrices` maps each name to whether it is laid out (in, out) (GPT-2's), whose
    (out, in) view is then its transpose. The momentum buffers are kept in the parameters' own layouts."""

    def __init__(self, params: dict, matrices: dict, momentum: float = 0.95, weight_decay: float = 0.0):
        self.params, self.in_out = params, matrices
        self.momentum, self.weight_decay = momentum, weight_decay
        self.buf = {name: np.zeros_like(params[name]) for name in matrices}

    def view(self, name: str, a: np.ndarray) -> np.ndarray:
        """a (a parameter, its gradient or momentum) as (out, in): a view, so that updating it updates a."""
        return a.T if self.in_out[name] else a

    def step(self, grads: dict, lr: float) -> None:
        for name in self.in_out:
            muon_kernel(self.view(name, self.params[name]), self.view(name, grads[name]),
                        self.view(name, self.buf[name]), lr, self.momentum, self.weight_decay)

    def state_dict(self) -> dict:
        """The momentum buffers, as arrays named momentum_buffer.<param> (torch's name), in the parameters' layouts."""
        return {f"momentum_buffer.{name}": buf for name, buf in self.buf.items()}

    def load_state_dict(self, state: dict) -> None:
        for name in self.in_out:
            key, p = f"momentum_buffer.{name}", self.params[name]
            if key not in state:
                raise ValueError(f"optimizer state {key!r} is missing (was the run trained with --optimizer adamw?)")
            if state[key].shape != p.shape or state[key].dtype != p.dtype:
                raise ValueError(f"optimizer state {key!r} has shape {state[key].shape} and dtype {state[key].dtype}, "
                                 f"expected {p.shape} and {p.dtype}")
            self.buf[name] = np.array(state[key])


class MuonAdamW:
    """Muon for the matrices (names -> laid out (in, out)?), AdamW for every other parameter, behind AdamW's interface:
    step(grads, lr) with AdamW's scheduled rate, of which Muon takes the same fraction of its own rate muon_lr (the
    schedule's warmup and decay scale both alike, as nanochat's does)."""

    def __init__(self, params: dict, matrices: dict, learning_rate: float, muon_lr: float, muon_momentum: float = 0.95,
                 muon_weight_decay: float = 0.0, weight_decay=0.1, beta1=0.9, beta2=0.99, kernels=NUMPY):
        self.learning_rate, self.muon_lr = learning_rate, muon_lr
        self.muon = Muon({name: params[name] for name in matrices}, matrices, muon_momentum, muon_weight_decay)
        self.adamw = AdamW({name: p for name, p in params.items() if name not in matrices}, weight_decay, beta1,
                           beta2, kernels=kernels)

    @property
    def t(self) -> int:
        """Steps taken (AdamW's bias corrections need it; Muon does not)."""
        return self.adamw.t

    def step(self, grads: dict, lr: float) -> None:
        self.muon.step(grads, self.muon_lr * (lr / self.learning_rate))
        self.adamw.step(grads, lr)

    def buffers(self) -> dict:
        """What the optimizer keeps for each parameter, by what it is."""
        return {**self.adamw.buffers(), "Muon's momentum of": self.muon.buf}

    def state_dict(self) -> dict:
        return {**self.adamw.state_dict(), **self.muon.state_dict()}

    def load_state_dict(self, state: dict, t: int) -> None:
        self.muon.load_state_dict(state)
        self.adamw.load_state_dict(state, t)
