"""Train the PyTorch peer (benchmarks/torch_gpt.py) with exactly the recipe and data of `minigpt train`,
and evaluate it the way minigpt does, to see what the recipe itself reaches.

    python benchmarks/train_torch_reference.py --data PATH [--no-bias] [--seed N] [--same-init]

--same-init starts from minigpt's initial weights for the seed (GPT(cfg, seed)), so that the two
trainings differ only in who computes the gradients and the updates.
"""

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from minigpt import GPT
from minigpt.config import TrainConfig
from minigpt.data.text import TextDataset
from minigpt.optim import get_lr
from torch_gpt import TorchGPT


def train_torch(cfg: TrainConfig, same_init: bool = False) -> dict:
    """Train TorchGPT as `minigpt train` would train its model with `cfg`; evaluate on minigpt's batches."""
    data = TextDataset.load(cfg.data)
    data.fit(cfg.model.block_size)  # windows of the context, as minigpt train reads them
    config = replace(cfg.model, vocab_size=data.vocab_size)  # (bias: the family's when the run leaves it out)
    model = TorchGPT(data.vocab_size, config.block_size, config.n_layer, config.n_head, config.n_embd, config.bias,
                     seed=cfg.seed)
    if same_init:
        init = GPT(config, seed=cfg.seed).params
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in init.items()})
    opt = model.configure_optimizer(cfg.learning_rate, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    sampler = np.random.default_rng(cfg.seed)  # minigpt's training batches, in minigpt's order
    t0 = time.perf_counter()
    for it in range(cfg.max_iters):
        lr = get_lr(it, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.decay_iters)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = data.get_batch("train", cfg.batch_size, sampler)
        _, loss = model(torch.from_numpy(batch.x), torch.from_numpy(batch.y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    result = {"seconds": time.perf_counter() - t0}
    model.eval()
    with torch.no_grad():
        for i, split in enumerate(("train", "val")):
            rng = np.random.default_rng([cfg.seed, 2, i])  # minigpt's evaluation batches
            batches = [data.get_batch(split, cfg.batch_size, rng) for _ in range(cfg.eval_iters)]
            losses = [model(torch.from_numpy(b.x), torch.from_numpy(b.y))[1].item() for b in batches]
            result[f"{split}_loss"] = float(np.mean(losses))
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    parser.add_argument("--no-bias", action="store_true")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--same-init", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig.from_dict(dict(data=args.data, bias=not args.no_bias, seed=args.seed))
    print(json.dumps(train_torch(cfg, args.same_init)))


if __name__ == "__main__":
    main()
