"""The same GPT-2 architecture in PyTorch (nanoGPT's model.py, condensed), the peer that minigpt is
compared with in the benchmarks. Parameter names are Hugging Face's, like minigpt's, and linear weights
are stored (in, out), so minigpt's params load into it unchanged."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Linear(nn.Module):
    """x @ w + b with w (in, out): GPT-2's Conv1D layout."""

    def __init__(self, n_in, n_out, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x):
        return x @ self.weight + self.bias if self.bias is not None else x @ self.weight


class Block(nn.Module):
    def __init__(self, C, n_head, bias):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(C, bias=bias)
        self.attn = nn.Module()
        self.attn.c_attn = Linear(C, 3 * C, bias)
        self.attn.c_proj = Linear(C, C, bias)
        self.ln_2 = nn.LayerNorm(C, bias=bias)
        self.mlp = nn.Module()
        self.mlp.c_fc = Linear(C, 4 * C, bias)
        self.mlp.c_proj = Linear(4 * C, C, bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn.c_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class TorchGPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(vocab_size, n_embd)
        self.transformer.wpe = nn.Embedding(block_size, n_embd)
        self.transformer.h = nn.ModuleList([Block(n_embd, n_head, bias) for _ in range(n_layer)])
        self.transformer.ln_f = nn.LayerNorm(n_embd, bias=bias)
        for name, p in self.named_parameters():  # GPT-2's initialisation, as nanoGPT does it
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx, targets=None):
        t = self.transformer
        x = t.wte(idx) + t.wpe(torch.arange(idx.shape[1]))
        for block in t.h:
            x = block(x)
        logits = t.ln_f(x) @ t.wte.weight.T  # tied LM head
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss

    def configure_optimizer(self, lr, weight_decay, betas):
        """nanoGPT's split: two-or-more-dimensional parameters decay, the rest do not."""
        decay = [p for p in self.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
