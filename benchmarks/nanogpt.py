"""nanoGPT, the peer minigpt's main job is measured against: its GPT module, training step, evaluation and
sampling, written here from its published architecture and settings (github.com/karpathy/nanoGPT, model.py
and train.py), so that benchmarks/bench.py can run it side by side with `minigpt train` on the same machine.

What makes it nanoGPT's and not GPT-2's (benchmarks/torch_gpt.py is the latter): nn.Linear weights (out, in);
the exact GELU (erf), not the tanh approximation; no biases by default (`bias = False` in its train.py); the
tied head computed for the last position only when there are no targets; PyTorch's fused
scaled_dot_product_attention; AdamW over two parameter groups (2-D and larger decay). Its Shakespeare CPU
recipe (its README): 4 layers, 4 heads, 128 channels, context 64, batch 12, 2000 steps, learning rate 1e-3
decayed to 1e-4 after 100 warmup steps, beta2 0.99, weight decay 0.1, gradient clipping at 1.0, dropout 0.
"""

import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

RECIPE = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, max_iters=2000, learning_rate=1e-3,
              min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000, beta1=0.9, beta2=0.99, weight_decay=0.1,
              grad_clip=1.0, dropout=0.0, bias=False, eval_interval=250, eval_iters=200)


class LayerNorm(nn.Module):
    def __init__(self, C, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.bias = nn.Parameter(torch.zeros(C)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class Block(nn.Module):
    def __init__(self, C, n_head, dropout, bias):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.ln_1, self.ln_2 = LayerNorm(C, bias), LayerNorm(C, bias)
        self.c_attn, self.attn_proj = nn.Linear(C, 3 * C, bias=bias), nn.Linear(C, C, bias=bias)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C, bias=bias), nn.Linear(4 * C, C, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = F.dropout(self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C)), self.dropout, self.training)
        x = x + y
        m = F.dropout(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)))), self.dropout, self.training)
        return x + m


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, dropout=0.0, bias=False, seed=1337):
        super().__init__()
        torch.manual_seed(seed)
        self.block_size, self.dropout = block_size, dropout
        self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head, dropout, bias) for _ in range(n_layer)])
        self.ln_f = LayerNorm(n_embd, bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # tied
        for name, p in self.named_parameters():  # nanoGPT's initialisation
            if name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets=None):
        x = F.dropout(self.wte(idx) + self.wpe(torch.arange(idx.shape[1])), self.dropout, self.training)
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None  # inference: the last position only
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-1)

    def configure_optimizer(self, learning_rate, weight_decay, betas):
        decay = [p for p in self.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """nanoGPT's sampling loop: crop the context to block_size, a whole forward, the last position's logits."""
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.block_size:])
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)), dim=1)
        return idx


def get_lr(it, r):
    if it < r["warmup_iters"]:
        return r["learning_rate"] * (it + 1) / (r["warmup_iters"] + 1)
    if it > r["lr_decay_iters"]:
        return r["min_lr"]
    ratio = (it - r["warmup_iters"]) / (r["lr_decay_iters"] - r["warmup_iters"])
    return r["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (r["learning_rate"] - r["min_lr"])


def train_step(model, optimizer, x, y, lr, grad_clip):
    """One step of nanoGPT's loop: forward, backward, clip, AdamW."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    _, loss = model(x, y)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def get_batch(data, batch_size, block_size, rng):
    ix = rng.integers(0, len(data) - block_size, size=batch_size)
    x = torch.from_numpy(np.stack([data[i:i + block_size] for i in ix]).astype(np.int64))
    y = torch.from_numpy(np.stack([data[i + 1:i + 1 + block_size] for i in ix]).astype(np.int64))
    return x, y


@torch.no_grad()
def estimate_loss(model, splits, r, seed=0):
    model.eval()
    out = {}
    for i, (name, data) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, i])
        out[name] = float(np.mean([model(*get_batch(data, r["batch_size"], r["block_size"], rng))[1].item()
                                   for _ in range(r["eval_iters"])]))
    model.train()
    return out


def train(text: str, r: dict = RECIPE, seed: int = 1337) -> dict:
    """The whole recipe on a text, character level, split 90/10 as nanoGPT's prepare.py does: evaluation every
    eval_interval steps and after the last one. Returns the wall time, steps' median and the last losses."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # one code point per character
    chars = np.unique(codes)  # the sorted characters
    ids = np.searchsorted(chars, codes)  # each character's id
    n = int(0.9 * len(ids))
    splits = {"train": ids[:n], "val": ids[n:]}
    model = GPT(len(chars), r["block_size"], r["n_layer"], r["n_head"], r["n_embd"], r["dropout"], r["bias"], seed)
    optimizer = model.configure_optimizer(r["learning_rate"], r["weight_decay"], (r["beta1"], r["beta2"]))
    rng = np.random.default_rng(seed)
    started, steps, last = time.perf_counter(), [], {}
    for it in range(r["max_iters"]):
        x, y = get_batch(splits["train"], r["batch_size"], r["block_size"], rng)
        t0 = time.perf_counter()
        train_step(model, optimizer, x, y, get_lr(it, r), r["grad_clip"])
        steps.append(time.perf_counter() - t0)
        if (it + 1) % r["eval_interval"] == 0 or it + 1 == r["max_iters"]:
            last = estimate_loss(model, splits, r)
    return {"seconds": time.perf_counter() - started, "step_median": float(np.median(steps[20:])), **last}
