"""The model: the ops of minigpt/ops composed into pre-norm transformer blocks, of one of two families.

    x = embedding(idx)                         gpt2: dropout(wte[idx] + wpe[P:P+T]); llama, qwen3: embed_tokens[idx]
    for each of the L blocks:
        x = block(x)                           gpt2: minigpt/gpt2.py; llama, qwen3: minigpt/llama.py
    logits = norm(x) @ head^T                  head: the token embedding (tied), or lm_head.weight (V, C)
    loss = cross_entropy(logits, targets)

A classifier (config.labels) has a second head, score.weight (K, C), on the last token's hidden state, trained
with the labels' cross-entropy and, optionally, the language-modelling loss weighted by lm_weight (the GPT paper's
lambda, 0.5 there):
    scores = norm(x)[b, last[b]] @ score^T     (B, K)
    loss = cross_entropy(scores, labels) + lm_weight cross_entropy(logits, targets)

config.arch picks the family module (FAMILIES), which names the parameters and holds its block's forward and
backward, the same interface for every family (minigpt/block.py: each block is handed a Step, built once per forward);
this module does what every family shares, and `backward` calls the ops in exactly the reverse order of `forward`.
The backend is resolved once, into the table of kernels that every op is handed (`self.kernels`, minigpt/backends).
Parameters are named and laid out as in the family's Hugging Face state dict (GPT2LMHeadModel,
LlamaForCausalLM, Qwen3ForCausalLM), so weights move both ways unchanged; the files that hold them are read and
written by minigpt/hf.py and minigpt/checkpoint.py, which build on this module.
Overview and data flow: docs/model.md, docs/llama.md. Tests: tests/test_model.py, tests/test_torch_reference.py,
tests/test_torch_llama.py.
"""

import math
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from minigpt import backends, block, generate, gpt2, llama, lora, runtime
from minigpt.block import Step
from minigpt.config import QUANTIZATIONS, GPTConfig
from minigpt.ops import attention, cross_entropy, dropout, embedding, last_token, linear, q8_0, rope, token_logprobs

FAMILIES = {"gpt2": gpt2, "llama": llama, "qwen3": llama}  # config.arch -> the module of its parameters and block
HEAD = "lm_head.weight"  # an LM head of its own (tie_word_embeddings false), (V, C) as Hugging Face lays it out
SCORE = "score.weight"  # a classifier's head, (K, C), as Hugging Face's *ForSequenceClassification names it
# names in a Hugging Face state dict that are no parameters here: buffers (GPT-2's causal mask, built on the fly; the
# rotary frequencies older Llama files saved) and a tied head's copy of the token embedding. minigpt.hf.to_minigpt
# drops them.
HF_EXTRAS = ("lm_head.weight", ".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")
# what a quantized model (GPT.quantize) says when asked for what only a float one can do
INFERENCE_ONLY = ("this model's weights are quantized (GPT.quantize, --quantize): it runs inference only; use the "
                  "float model to train, save or load weights")


class ModelCache(NamedTuple):
    embedding: tuple
    embd_dropout: tuple
    step: Step  # what every block was given, which their backward reads too (minigpt/block.py)
    blocks: list  # one BlockCache of the family per layer
    norm: tuple
    lm_head: tuple | None  # None: a classifier trained without the language-modelling loss
    loss: tuple | None
    last_token: tuple | None = None  # a classifier's: the gather of each sequence's last token
    score: tuple | None = None  # its head
    class_loss: tuple | None = None  # and its labels' cross-entropy
    lm_weight: float = 1.0  # the weight of the language-modelling loss in the total


def param_shapes(config: GPTConfig) -> dict:
    """Name -> shape of every parameter, in the family's Hugging Face state-dict order; a classifier's head last."""
    shapes = FAMILIES[config.arch].param_shapes(config)
    if config.num_labels is not None:
        shapes[SCORE] = (config.num_labels, config.n_embd)
    shapes.update(lora.param_shapes(config))  # LoRA's adapters, if any (minigpt/lora.py)
    return shapes


def num_params(config: GPTConfig) -> int:
    """The number of parameters of param_shapes(config), before any is allocated: the count of a model of one block
    and the L - 1 blocks more, each as large as the second of a model of two (the L entries of param_shapes are never
    listed, so that a size too large to allocate, n_layer 10^9, is counted, and refused, at once)."""
    one, two = (sum(math.prod(shape) for shape in param_shapes(replace(config, n_layer=L)).values()) for L in (1, 2))
    return one + (config.n_layer - 1) * (two - one)


class GPT:
    """A GPT (GPT-2, Llama or Qwen 3, by config.arch) with a hand-written backward pass.

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
        self.family = FAMILIES[config.arch]  # minigpt/gpt2.py or minigpt/llama.py
        self.dtype = np.dtype(dtype)
        runtime.check_memory(num_params(config) * self.dtype.itemsize, f"a model of {num_params(config):,} parameters",
                             "make it smaller (n_layer, n_embd, block_size, vocab_size)")
        init_rng = np.random.default_rng(seed)
        f = self.family
        self.params = block.init_params(f.param_shapes(config), config.n_layer, f.GAINS, f.RESIDUAL, init_rng,
                                        self.dtype)
        if config.num_labels is not None:  # N(0, 0.02), as transformers initialises score.weight
            self.params[SCORE] = init_rng.normal(0.0, 0.02, size=(config.num_labels, config.n_embd)).astype(self.dtype)
        # LoRA: the adapters, and every other weight frozen (a classifier's head trains with the adapters): the
        # blocks compute no gradient for it (Step.frozen), and its array is read-only, so that nothing changes it
        self.params.update(lora.init_params(config, init_rng, self.dtype))
        # each block's weights that multiply the same input (f.FUSED: Llama's q, k and v; gate and up) become rows of
        # one array, and their parameters views of it: a decoding step makes one product of the group
        # (block.linears). Whatever writes a parameter writes it in place (the optimizers, load_state_dict), so the
        # array always holds them.
        self.fused = {}
        for l in range(config.n_layer):
            for modules in f.FUSED:
                names = tuple(f"{f.BLOCKS}{l}.{module}.weight" for module in modules)
                self.fused[names] = rows = np.concatenate([self.params[name] for name in names])  # (sum of outs, C)
                for name, view in zip(names, block.cut(rows, [len(self.params[name]) for name in names])):
                    self.params[name] = view
        self.frozen = frozenset()  # the names of the parameters that do not train
        if config.lora_rank is not None:
            self.frozen = frozenset(name for name in self.params if not lora.is_adapter(name) and name != SCORE)
            for name in self.frozen:
                self.params[name].setflags(write=False)
        # the rotary embeddings' frequencies (hs/2,), float64, or None: GPT-2 learns a table of positions instead
        self.inv_freq = (None if config.rope_theta is None else
                         rope.inverse_frequencies(config.head_dim, config.rope_theta, config.rope_scaling))
        self.kernels = backends.kernels_for(backend)  # the table of kernels every op computes with (minigpt/backends)
        self.rng = np.random.default_rng([seed, 1])  # dropout masks; separate from the init stream
        self.training = True  # dropout is active only in training mode, as in PyTorch
        self.cache = None  # what the last forward kept for the backward: a ModelCache, or None
        # weight name -> its Q8_0 bytes, in place of its float array, once quantize() has run: inference only
        self.quantized = {}

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
        """Number of parameters (a tied LM head is counted once, as part of the token embedding)."""
        return sum(p.size for p in self.params.values())

    def trainable(self) -> dict:
        """The parameters that train: all but LoRA's frozen ones, by name (the same arrays)."""
        return {name: p for name, p in self.params.items() if name not in self.frozen}

    def matrices(self) -> dict:
        """The blocks' weight matrices that train (those Muon orthogonalises, minigpt/muon.py), by name: each True if
        laid out (in, out), GPT-2's, False if (out, in), Llama's and Qwen's. (Not the embeddings, the heads, the
        norms' gains, the biases, nor LoRA's adapters.)"""
        f = self.family
        return {name: f.LINEAR_IN_OUT for name, p in self.trainable().items()
                if name.startswith(f.BLOCKS) and p.ndim == 2 and not lora.is_adapter(name)}

    def new_kv_cache(self, B, length=None) -> list:
        """Empty key/value caches, one per layer, for incremental decoding of B sequences of up to `length` positions
        (None: block_size) (minigpt/generate.py)."""
        cfg = self.config
        length = cfg.block_size if length is None else min(length, cfg.block_size)
        return [attention.KVCache(B, length, cfg.n_kv_head, cfg.head_dim, self.dtype)
                for _ in range(cfg.n_layer)]

    # --8<-- [start:forward]
    def forward(self, idx, targets=None, kv_cache=None, keep_cache=True, last=None, labels=None, lm_weight=0.0):
        """idx (B, T) int -> logits (B, T, V), loss (mean cross-entropy against targets, or None).

        keep_cache=False (evaluation) keeps nothing for a backward, so each layer's arrays are freed as soon
        as the next layer has used them. With kv_cache (from new_kv_cache), idx holds only new positions,
        which attend to the cached ones as well; that is inference: there is no backward afterwards.
        A classifier given last (B,), the position of each sequence's last token, returns its scores (B, K) instead
        of the logits, and with labels (B,) the loss cross_entropy(scores, labels) + lm_weight x the language-modelling
        loss against targets (when lm_weight > 0)."""
        cfg, p, kernels, f = self.config, self.params, self.kernels, self.family
        idx = np.asarray(idx)
        P = 0 if kv_cache is None else kv_cache[0].length  # positions already processed
        if idx.ndim == 2 and P + idx.shape[1] > cfg.block_size:
            raise ValueError(
                f"sequence length {P + idx.shape[1]} exceeds block_size {cfg.block_size}; "
                f"crop the context to the last {cfg.block_size} tokens"
            )
        if idx.ndim == 2 and idx.shape[1] == 0:
            raise ValueError("idx has no positions (T = 0); give at least one token")
        if last is not None and cfg.num_labels is None:
            raise ValueError("this model has no classification head (it was not trained on labels); it computes logits only")
        p_drop = cfg.dropout if self.training else 0.0

        keep_cache = keep_cache and kv_cache is None
        wpe = p[f.WPE] if f.WPE else None  # GPT-2's table of positions; None with rotary embeddings
        x, emb_cache = embedding.forward(idx, p[f.WTE], wpe, P, kernels=kernels)  # (B, T, C)
        x, embd_drop = dropout.forward(x, p_drop if f.EMBEDDING_DROPOUT else 0.0, self.rng, kernels=kernels)  # (B, T, C)
        angles = None if self.inv_freq is None else rope.angles(self.inv_freq, P, x.shape[1], self.dtype)  # (T, hs) x2
        step = Step(cfg, kernels, p_drop, cfg.lora_dropout if self.training else 0.0, self.rng, kv_cache, angles,
                    self.frozen, self.quantized, self.fused)  # what every block is given (minigpt/block.py)
        block_caches = []
        for l in range(cfg.n_layer):
            x, block_cache = f.block_forward(p, l, x, step)  # (B, T, C)
            if keep_cache:
                block_caches.append(block_cache)
        x, norm_cache = f.final_norm(p, cfg, x, kernels=kernels)  # (B, T, C)
        if last is not None:
            return self.classify(x, last, labels, targets if lm_weight > 0 else None, lm_weight,
                                 (emb_cache, embd_drop, step, block_caches, norm_cache) if keep_cache else None)
        logits, loss, head_cache, loss_cache = self.lm_head(x, targets)  # (B, T, V)
        self.cache = (ModelCache(emb_cache, embd_drop, step, block_caches, norm_cache, head_cache, loss_cache)
                      if keep_cache else None)
        return logits, loss

    def lm_head(self, x, targets):
        """x (B, T, C) -> logits (B, T, V), their loss against targets (or None), and the caches of both."""
        kernels = self.kernels
        if HEAD in self.quantized:  # the head's weight (tied or not) in Q8_0
            logits, head_cache = q8_0.forward(x, self.quantized[HEAD], kernels=kernels)  # (B, T, V)
        else:
            head = self.params[self.family.WTE] if self.config.tie_word_embeddings else self.params[HEAD]  # (V, C)
            logits, head_cache = linear.forward(x, head.T, kernels=kernels)  # (B, T, V)
        loss, loss_cache = None, None
        if targets is not None:
            loss, loss_cache = cross_entropy.forward(logits, targets, kernels=kernels)
            loss = float(loss)
        return logits, loss, head_cache, loss_cache

    def classify(self, x, last, labels, targets, lm_weight, trunk):
        """A classifier's head on x (B, T, C), the final norm's output: scores (B, K) and the loss (or None)."""
        kernels = self.kernels
        h, last_cache = last_token.forward(x, last)  # (B, C)
        scores, score_cache = linear.forward(h[:, None, :], self.params[SCORE].T, kernels=kernels)  # (B, 1, K)
        loss = class_cache = head_cache = loss_cache = None
        if labels is not None:
            labels = np.asarray(labels).reshape(-1, 1)  # (B, 1)
            loss, class_cache = cross_entropy.forward(scores, labels, kernels=kernels)
            loss = float(loss)
            if targets is not None:  # the auxiliary language-modelling loss
                _, lm_loss, head_cache, loss_cache = self.lm_head(x, targets)
                loss += lm_weight * lm_loss
        self.cache = None if trunk is None or labels is None else ModelCache(
            *trunk, head_cache, loss_cache, last_cache, score_cache, class_cache, lm_weight)
        return scores[:, 0, :], loss
    # --8<-- [end:forward]

    # --8<-- [start:backward]
    def backward(self, dlogits=None):
        """Gradients of the mean loss of the last forward(idx, targets) (or of a classifier's loss) with respect to
        every parameter that trains: a dict with the keys and shapes of `params` (LoRA's frozen ones left out). The
        forward's cache is consumed, as PyTorch frees its graph: its arrays are not kept beside the next forward's.
        dlogits (B, T, V): the gradient of another loss computed from the logits of forward(idx) without targets
        (preference training and the policy gradient, minigpt/objectives.py), back-propagated instead."""
        if self.quantized:
            raise ValueError(INFERENCE_ONLY)
        cache, self.cache = self.cache, None
        if cache is None or (dlogits is None) == (cache.loss is None and cache.class_loss is None):
            raise ValueError("backward() needs a loss: call forward(idx, targets) with targets first" if dlogits is None
                             else "backward(dlogits) back-propagates a loss computed from the logits: call "
                                  "forward(idx) without targets first")
        cfg, kernels, f = self.config, self.kernels, self.family
        grads = {}

        dx = dhead = None
        if cache.class_loss is not None:  # a classifier's head
            dscores = cross_entropy.backward(1.0, cache.class_loss, kernels=kernels)  # (B, 1, K)
            dh, dscore, _ = linear.backward(dscores, cache.score, kernels=kernels)  # (B, 1, C), (C, K) a view of (K, C)
            grads[SCORE] = dscore.T  # (K, C)
            dx = last_token.backward(dh[:, 0, :], cache.last_token)  # (B, T, C)
        if cache.loss is not None:  # the language-modelling loss, weighted in a classifier's total
            dlogits = cross_entropy.backward(1.0 if cache.class_loss is None else cache.lm_weight, cache.loss,
                                             kernels=kernels)  # (B, T, V)
        if dlogits is not None:
            head_trains = (f.WTE if cfg.tie_word_embeddings else HEAD) not in self.frozen
            dx_lm, dhead, _ = linear.backward(dlogits, cache.lm_head, kernels=kernels,
                                              weight_grad=head_trains)  # (B, T, C), (C, V) a view of (V, C)
            dx = dx_lm if dx is None else dx + dx_lm  # (B, T, C)
        dx = f.final_norm_backward(dx, cache.norm, grads, kernels=kernels)  # (B, T, C)
        for l in reversed(range(cfg.n_layer)):
            dx = f.block_backward(l, dx, cache.blocks[l], cache.step, grads)  # (B, T, C)
        if f.WTE in self.frozen:  # LoRA: the embeddings are frozen, and the input needs no gradient
            return {name: grads[name] for name in self.params if name not in self.frozen}
        dx = dropout.backward(dx, cache.embd_dropout, kernels=kernels)  # (B, T, C)
        if dhead is None:  # a classifier without the language-modelling loss: the LM head had no part in it
            dwte = None
            if not cfg.tie_word_embeddings:
                grads[HEAD] = np.zeros_like(self.params[HEAD])
        elif cfg.tie_word_embeddings:
            # the token embedding is used twice, by the LM head and by the embedding: its gradient is the sum of
            # both, so the embedding's scatter-add goes straight into the head's part (both (V, C))
            dwte = dhead.T  # (V, C)
        else:
            grads[HEAD], dwte = dhead.T, None  # (V, C)
        grads[f.WTE], dwpe = embedding.backward(dx, cache.embedding, dwte, kernels=kernels)  # (V, C), (block_size, C) or None
        if f.WPE:
            grads[f.WPE] = dwpe
        return {name: grads[name] for name in self.params if name not in self.frozen}  # the params' order
    # --8<-- [end:backward]

    def completion_logprobs(self, x, y, keep_cache=True):
        """x, y (N, T) -> log pi(each row's completion) (N,) float64, the sum of its targets' log-probabilities (y's
        ignore_index positions, its prompt and padding, left out), and token_logprobs' cache, whose backward gives
        the gradient of the logits to hand to backward(dlogits) (minigpt/objectives.py)."""
        logits, _ = self.forward(x, keep_cache=keep_cache)  # (N, T, V)
        logp, cache = token_logprobs.forward(logits, y, kernels=self.kernels)  # (N, T)
        return logp.sum(axis=1, dtype=np.float64), cache  # (N,)

    def generate(self, idx, max_new_tokens, do_sample=True, temperature=1.0, top_k=None, top_p=None, seed=None):
        """Continue each prompt of idx (B, T) by max_new_tokens tokens: returns (B, T + max_new_tokens).
        do_sample=False is greedy (argmax); otherwise sample with temperature, top-k and top-p filtering.
        Uses a key/value cache; see minigpt/generate.py."""
        return generate.generate(self, idx, max_new_tokens, do_sample, temperature, top_k, top_p, seed)

    # --8<-- [start:quantize]
    def quantize(self, kind: str = "q8_0") -> "GPT":
        """Hold the linear layers' weights (every block's, and the LM head's) in GGUF's Q8_0 (minigpt/ops/q8_0.py),
        8.5 bits a weight, in place of their float arrays, which are freed: what decoding reads from memory for each
        token falls about 4x. One way, for inference: the model then computes no gradients. A tied LM head keeps the
        float token embedding for the input's lookup and gets a Q8_0 copy for the output's product, as
        `quantized[HEAD]`; LoRA's adapters and a classifier's head stay float, and so does a weight whose rows (its
        input width) are no whole number of Q8_0's blocks of 32 (an MLP of 688, say), as llama.cpp's converter writes
        it F16 in a Q8_0 file. Returns the model."""
        if kind not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {kind!r}; choose one of {', '.join(QUANTIZATIONS)}")
        if self.quantized:
            raise ValueError("this model is already quantized")
        f, cfg = self.family, self.config
        head = f.WTE if cfg.tie_word_embeddings else HEAD
        names = [name for name, p in self.params.items()
                 if name.startswith(f.BLOCKS) and p.ndim == 2 and not lora.is_adapter(name)] + [head]
        # those whose input's width (a row of the weight laid out (out, in)) is a whole number of blocks
        names = [name for name in names
                 if self.params[name].shape[0 if f.LINEAR_IN_OUT and name != head else 1] % q8_0.BLOCK == 0]
        for group, rows in self.fused.items():  # a group at once: its bytes are rows of one array too
            if all(name in names for name in group):
                self.fused[group] = blocks = q8_0.quantize(rows)  # (rows quantize one by one: the same bytes)
                self.quantized.update(zip(group, block.cut(blocks, [len(self.params[name]) for name in group])))
        for name in names:
            w = self.params[name]
            if name not in self.quantized:
                self.quantized[HEAD if name == head else name] = q8_0.quantize(w.T if f.LINEAR_IN_OUT and name != head
                                                                               else w)  # rows along the input
            if name != f.WTE:  # (the tied head's token embedding still looks up the input's tokens)
                del self.params[name]
        return self
    # --8<-- [end:quantize]

    def state_dict(self) -> dict:
        """A copy of the parameters, keyed by their Hugging Face names."""
        if self.quantized:
            raise ValueError(INFERENCE_ONLY)
        return {name: p.copy() for name, p in self.params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Replace every parameter with the arrays of `state_dict`, after checking all of them: names, shapes
        and dtypes must match `params` exactly (nothing is cast or reshaped) and every value must be finite. Any
        error leaves the model unchanged. A Hugging Face state dict (with `lm_head.weight` and the causal-mask
        buffers) goes through minigpt.hf.to_minigpt first."""
        if self.quantized:
            raise ValueError(INFERENCE_ONLY)
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
            self.params[name].setflags(write=True)  # (a frozen weight, read-only while it trains, is written here)
            np.copyto(self.params[name], a)
            self.params[name].setflags(write=name not in self.frozen)
