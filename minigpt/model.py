"""The GPT-2 model: the ops of minigpt/ops composed into pre-LN transformer blocks.

    x = dropout(wte[idx] + wpe[:T])                          embedding
    for each of the L blocks:
        x = x + dropout(attn(ln_1(x)))                       attention sub-block
        x = x + dropout(c_proj(gelu(c_fc(ln_2(x)))))         MLP sub-block
    logits = ln_f(x) @ wte^T                                 LM head, tied to the token embedding
    loss = cross_entropy(logits, targets)

`backward` calls the ops in exactly the reverse order. The backend is resolved once, into the table of kernels that
every op is handed (`self.kernels`, minigpt/backends). Parameters are named and laid out as in Hugging Face's GPT-2
state dict (linear weights (in, out)), so weights move both ways unchanged; the files that hold them are read and
written by minigpt/hf.py and minigpt/checkpoint.py, which build on this module.
Overview and data flow: docs/model.md. Tests: tests/test_model.py, tests/test_torch_reference.py.
"""

import math
from typing import NamedTuple

import numpy as np

from minigpt import backends, generate, runtime
from minigpt.config import GPTConfig
from minigpt.ops import attention, cross_entropy, dropout, embedding, gelu, layernorm, linear

# names in a Hugging Face GPT-2 state dict that are no parameters of this model: the causal mask's buffers (built on
# the fly here) and the tied head's copy of wte. minigpt.hf.to_minigpt drops them.
HF_EXTRAS = ("lm_head.weight", ".attn.bias", ".attn.masked_bias")


class BlockCache(NamedTuple):  # what each op of one block saved for its backward
    ln_1: tuple
    attn: tuple
    attn_dropout: tuple
    ln_2: tuple
    c_fc: tuple
    gelu: tuple
    c_proj: tuple
    mlp_dropout: tuple


class ModelCache(NamedTuple):
    embedding: tuple
    embd_dropout: tuple
    blocks: list  # one BlockCache per layer
    ln_f: tuple
    lm_head: tuple
    loss: tuple


def param_shapes(config: GPTConfig) -> dict:
    """Name -> shape of every parameter, in Hugging Face GPT-2 state-dict order."""
    V, C, L = config.vocab_size, config.n_embd, config.n_layer
    shapes = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (config.block_size, C)}
    for l in range(L):
        h = f"transformer.h.{l}."
        shapes[h + "ln_1.weight"] = (C,)
        shapes[h + "ln_1.bias"] = (C,)
        shapes[h + "attn.c_attn.weight"] = (C, 3 * C)
        shapes[h + "attn.c_attn.bias"] = (3 * C,)
        shapes[h + "attn.c_proj.weight"] = (C, C)
        shapes[h + "attn.c_proj.bias"] = (C,)
        shapes[h + "ln_2.weight"] = (C,)
        shapes[h + "ln_2.bias"] = (C,)
        shapes[h + "mlp.c_fc.weight"] = (C, 4 * C)
        shapes[h + "mlp.c_fc.bias"] = (4 * C,)
        shapes[h + "mlp.c_proj.weight"] = (4 * C, C)
        shapes[h + "mlp.c_proj.bias"] = (C,)
    shapes["transformer.ln_f.weight"] = (C,)
    shapes["transformer.ln_f.bias"] = (C,)
    if not config.bias:
        shapes = {name: shape for name, shape in shapes.items() if not name.endswith(".bias")}
    return shapes


def num_params(config: GPTConfig) -> int:
    """The number of parameters of param_shapes(config), counted without listing them."""
    V, C, L = config.vocab_size, config.n_embd, config.n_layer
    per_block = 2 * C + C * 3 * C + 3 * C + C * C + C + 2 * C + C * 4 * C + 4 * C + 4 * C * C + C
    biases = L * (C + 3 * C + C + C + 4 * C + C) + C  # ln_1, c_attn, attn.c_proj, ln_2, c_fc, mlp.c_proj; ln_f
    return V * C + config.block_size * C + L * per_block + 2 * C - (0 if config.bias else biases)


def init_params(config: GPTConfig, seed: int = 0, dtype=np.float32) -> dict:
    """GPT-2's initialisation: weights N(0, 0.02), the two residual projections of each block
    N(0, 0.02 / sqrt(2 L)) so the residual stream's variance does not grow with depth,
    biases 0, layer-norm gains 1."""
    rng = np.random.default_rng(seed)
    residual_std = 0.02 / math.sqrt(2 * config.n_layer)
    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith(".bias"):
            p = np.zeros(shape)
        elif ".ln_" in name:
            p = np.ones(shape)
        elif name.endswith("c_proj.weight"):
            p = rng.normal(0.0, residual_std, size=shape)
        else:
            p = rng.normal(0.0, 0.02, size=shape)
        params[name] = p.astype(dtype)
    return params


class GPT:
    """A GPT-2 language model with a hand-written backward pass.

    >>> import numpy as np
    >>> model = GPT(GPTConfig(vocab_size=65, block_size=8, n_layer=2, n_head=2, n_embd=16), seed=0)
    >>> idx = np.array([[1, 2, 3]])
    >>> logits, loss = model.forward(idx, targets=np.array([[2, 3, 4]]))
    >>> logits.shape
    (1, 3, 65)
    >>> grads = model.backward()
    >>> grads["transformer.wte.weight"].shape
    (65, 16)
    """

    def __init__(self, config: GPTConfig, seed: int = 0, dtype=np.float32, backend: str = "numpy"):
        if not isinstance(config, GPTConfig):
            raise ValueError(f"config must be a GPTConfig, got {type(config).__name__}")
        if dtype not in ("float32", "float64", np.float32, np.float64, np.dtype("float32"), np.dtype("float64")):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.config = config
        self.dtype = np.dtype(dtype)
        runtime.check_memory(num_params(config) * self.dtype.itemsize, f"a model of {num_params(config):,} parameters",
                             "make it smaller (n_layer, n_embd, block_size, vocab_size)")
        self.params = init_params(config, seed, self.dtype)
        self.kernels = backends.load(backend)  # the table of kernels every op computes with (minigpt/backends)
        self.rng = np.random.default_rng([seed, 1])  # dropout masks; separate from the init stream
        self.training = True  # dropout is active only in training mode, as in PyTorch
        self.cache = None  # what the last forward kept for the backward: a ModelCache, or None

    @property
    def backend(self) -> str:
        """The name of the backend whose kernels compute the ops: the one asked for, or numpy if it did not load."""
        return self.kernels.name

    def train(self, mode: bool = True) -> "GPT":
        self.training = mode
        return self

    def eval(self) -> "GPT":
        return self.train(False)

    def num_params(self) -> int:
        """Number of parameters (the tied LM head is counted once, as part of wte)."""
        return sum(p.size for p in self.params.values())

    def new_kv_cache(self, B) -> list:
        """Empty key/value caches, one per layer, for incremental decoding of B sequences (minigpt/generate.py)."""
        cfg = self.config
        return [attention.KVCache(B, cfg.block_size, cfg.n_head, cfg.n_head, cfg.head_size, self.dtype)
                for _ in range(cfg.n_layer)]

    # --8<-- [start:forward]
    def forward(self, idx, targets=None, kv_cache=None, keep_cache=True):
        """idx (B, T) int -> logits (B, T, V), loss (mean cross-entropy against targets, or None).

        keep_cache=False (evaluation) keeps nothing for a backward, so each layer's arrays are freed as soon
        as the next layer has used them. With kv_cache (from new_kv_cache), idx holds only new positions,
        which attend to the cached ones as well; that is inference: there is no backward afterwards."""
        cfg, p, k = self.config, self.params, self.kernels
        idx = np.asarray(idx)
        P = 0 if kv_cache is None else kv_cache[0].length  # positions already processed
        if idx.ndim == 2 and P + idx.shape[1] > cfg.block_size:
            raise ValueError(
                f"sequence length {P + idx.shape[1]} exceeds block_size {cfg.block_size}; "
                f"crop the context to the last {cfg.block_size} tokens"
            )
        if idx.ndim == 2 and idx.shape[1] == 0:
            raise ValueError("idx has no positions (T = 0); give at least one token")
        p_drop = cfg.dropout if self.training else 0.0

        keep_cache = keep_cache and kv_cache is None
        x, emb_cache = embedding.forward(idx, p["transformer.wte.weight"], p["transformer.wpe.weight"], P, k)  # (B, T, C)
        x, embd_drop = dropout.forward(x, p_drop, self.rng, k)  # (B, T, C)
        block_caches = []
        for l in range(cfg.n_layer):
            x, block_cache = self._block_forward(x, l, p_drop, None if kv_cache is None else kv_cache[l])  # (B, T, C)
            if keep_cache:
                block_caches.append(block_cache)
        x, lnf_cache = layernorm.forward(x, p["transformer.ln_f.weight"], p.get("transformer.ln_f.bias"), kernels=k)  # (B, T, C)
        logits, head_cache = linear.forward(x, p["transformer.wte.weight"].T, kernels=k)  # (B, T, V) tied: w = wte^T

        loss, loss_cache = None, None
        if targets is not None:
            loss, loss_cache = cross_entropy.forward(logits, targets, kernels=k)
            loss = float(loss)
        self.cache = ModelCache(emb_cache, embd_drop, block_caches, lnf_cache, head_cache, loss_cache) if keep_cache else None
        return logits, loss

    def _block_forward(self, x, l, p_drop, kv_cache=None):
        """One pre-LN transformer block: x (B, T, C) -> x (B, T, C)."""
        p, h, k = self.params, f"transformer.h.{l}.", self.kernels
        a, ln_1 = layernorm.forward(x, p[h + "ln_1.weight"], p.get(h + "ln_1.bias"), kernels=k)  # (B, T, C)
        a, attn = attention.forward(
            a, p[h + "attn.c_attn.weight"], p.get(h + "attn.c_attn.bias"),
            p[h + "attn.c_proj.weight"], p.get(h + "attn.c_proj.bias"),
            self.config.n_head, p_drop, self.rng, kv_cache, k,
        )  # (B, T, C)
        a, attn_drop = dropout.forward(a, p_drop, self.rng, k)  # (B, T, C)
        x = x + a  # (B, T, C) residual
        m, ln_2 = layernorm.forward(x, p[h + "ln_2.weight"], p.get(h + "ln_2.bias"), kernels=k)  # (B, T, C)
        m, c_fc = linear.forward(m, p[h + "mlp.c_fc.weight"], p.get(h + "mlp.c_fc.bias"), k)  # (B, T, 4C)
        m, gelu_cache = gelu.forward(m, k)  # (B, T, 4C)
        m, c_proj = linear.forward(m, p[h + "mlp.c_proj.weight"], p.get(h + "mlp.c_proj.bias"), k)  # (B, T, C)
        m, mlp_drop = dropout.forward(m, p_drop, self.rng, k)  # (B, T, C)
        x = x + m  # (B, T, C) residual
        return x, BlockCache(ln_1, attn, attn_drop, ln_2, c_fc, gelu_cache, c_proj, mlp_drop)
    # --8<-- [end:forward]

    # --8<-- [start:backward]
    def backward(self):
        """Gradients of the mean loss of the last forward(idx, targets) with respect to every parameter:
        a dict with the same keys and shapes as `params`."""
        cache = self.cache
        if cache is None or cache.loss is None:
            raise ValueError("backward() needs a loss: call forward(idx, targets) with targets first")
        cfg, k = self.config, self.kernels
        grads = {}

        dlogits = cross_entropy.backward(1.0, cache.loss, k)  # (B, T, V)
        dx, dwte_head, _ = linear.backward(dlogits, cache.lm_head, k)  # (B, T, C), (C, V) a view of (V, C)
        dx, grads["transformer.ln_f.weight"], grads["transformer.ln_f.bias"] = layernorm.backward(dx, cache.ln_f, k)
        for l in reversed(range(cfg.n_layer)):
            dx = self._block_backward(dx, l, cache.blocks[l], grads)  # (B, T, C)
        dx = dropout.backward(dx, cache.embd_dropout, k)  # (B, T, C)
        # wte is used twice, by the LM head and by the embedding: its gradient is the sum of both, so the
        # embedding's scatter-add goes straight into the head's part (both (V, C))
        grads["transformer.wte.weight"], grads["transformer.wpe.weight"] = embedding.backward(
            dx, cache.embedding, dwte_head.T, k)  # (V, C), (block_size, C)
        return {name: grads[name] for name in self.params}  # the params' order; drops None biases

    def _block_backward(self, dx, l, c, grads):
        """The reverse of _block_forward: dx (B, T, C) -> dx (B, T, C); writes this block's grads."""
        h, k = f"transformer.h.{l}.", self.kernels
        # x = x + m: the residual passes dx through unchanged and also feeds it into the MLP branch
        dm = dropout.backward(dx, c.mlp_dropout, k)  # (B, T, C)
        dm, grads[h + "mlp.c_proj.weight"], grads[h + "mlp.c_proj.bias"] = linear.backward(dm, c.c_proj, k)  # (B, T, 4C)
        dm = gelu.backward(dm, c.gelu, k)  # (B, T, 4C)
        dm, grads[h + "mlp.c_fc.weight"], grads[h + "mlp.c_fc.bias"] = linear.backward(dm, c.c_fc, k)  # (B, T, C)
        dm, grads[h + "ln_2.weight"], grads[h + "ln_2.bias"] = layernorm.backward(dm, c.ln_2, k)  # (B, T, C)
        dx = dx + dm  # (B, T, C)
        # x = x + a: the same for the attention branch
        da = dropout.backward(dx, c.attn_dropout, k)  # (B, T, C)
        (da, grads[h + "attn.c_attn.weight"], grads[h + "attn.c_attn.bias"],
         grads[h + "attn.c_proj.weight"], grads[h + "attn.c_proj.bias"]) = attention.backward(da, c.attn, k)  # (B, T, C)
        da, grads[h + "ln_1.weight"], grads[h + "ln_1.bias"] = layernorm.backward(da, c.ln_1, k)  # (B, T, C)
        dx = dx + da  # (B, T, C)
        return dx
    # --8<-- [end:backward]

    def generate(self, idx, max_new_tokens, do_sample=True, temperature=1.0, top_k=None, top_p=None, seed=None):
        """Continue each prompt of idx (B, T) by max_new_tokens tokens: returns (B, T + max_new_tokens).
        do_sample=False is greedy (argmax); otherwise sample with temperature, top-k and top-p filtering.
        Uses a key/value cache; see minigpt/generate.py."""
        return generate.generate(self, idx, max_new_tokens, do_sample, temperature, top_k, top_p, seed)

    def state_dict(self) -> dict:
        """A copy of the parameters, keyed by their Hugging Face GPT-2 names."""
        return {name: p.copy() for name, p in self.params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Replace every parameter with the arrays of `state_dict`, after checking all of them: names, shapes
        and dtypes must match `params` exactly (nothing is cast or reshaped) and every value must be finite. Any
        error leaves the model unchanged. A Hugging Face state dict (with `lm_head.weight` and the causal-mask
        buffers) goes through minigpt.hf.to_minigpt first."""
        if not isinstance(state_dict, dict):
            raise ValueError(f"state_dict must be a dict of parameter name -> array, got {type(state_dict).__name__}")
        arrays = {name: np.asarray(value) for name, value in state_dict.items()}  # also takes CPU torch tensors
        missing = [name for name in self.params if name not in arrays]
        unexpected = [name for name in arrays if name not in self.params]
        if unexpected:
            hint = (" (this model has bias=False)" if unexpected[0].endswith(".bias") and not self.config.bias else
                    "; a Hugging Face state dict: convert it with minigpt.hf.to_minigpt"
                    if unexpected[0].endswith(HF_EXTRAS) else "")
            raise ValueError(f"unexpected parameter {unexpected[0]!r} in the state dict{hint}")
        if missing:
            raise ValueError(f"parameter {missing[0]!r} is missing from the state dict")
        for name, a in arrays.items():
            want = self.params[name]
            if a.shape != want.shape:
                raise ValueError(f"parameter {name!r} has shape {a.shape}, expected {want.shape}")
            if a.dtype != want.dtype:
                raise ValueError(
                    f"parameter {name!r} has dtype {a.dtype}, expected {want.dtype}; "
                    f"cast the state dict or build the model with dtype={a.dtype}"
                )
            if not np.all(np.isfinite(a)):
                raise ValueError(f"parameter {name!r} contains NaN or infinite values")
        for name, a in arrays.items():
            np.copyto(self.params[name], a)
