"""The training loop under `minigpt train`: AdamW on random batches, periodic evaluation, checkpoints,
exact resume. Tests: tests/test_train.py. Math: docs/training.md."""

import json
import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minigpt import checkpoint, distributed, runtime
from minigpt.config import TOKENIZERS, TrainConfig
from minigpt.data.tasks import TASKS
from minigpt.data.text import TextDataset
from minigpt.model import GPT
from minigpt.ops.cross_entropy import IGNORE_INDEX
from minigpt.optim import AdamW, clip_grad_norm, get_lr
from minigpt.distributed import Distributed

# Settings that `--task NAME` puts in place of the Shakespeare recipe (flags and config files still win).
TASK_PRESETS = {
    "sort": dict(n_layer=3, n_head=3, n_embd=48, block_size=11, batch_size=64, max_iters=1000, learning_rate=5e-3,
                 min_lr=5e-4, warmup_iters=50, eval_interval=250, eval_iters=10, weight_decay=0.1, beta2=0.99),
    "add": dict(n_layer=3, n_head=3, n_embd=48, block_size=6, batch_size=64, max_iters=2000, learning_rate=5e-3,
                min_lr=5e-4, warmup_iters=100, eval_interval=500, eval_iters=10, weight_decay=0.1, beta2=0.99),
}
# What a resumed run cannot change, because the checkpoint was made with it.
FIXED_ON_RESUME = ("data", "task", "tokenizer", "vocab_size", "n_layer", "n_head", "n_embd", "block_size", "bias", "dtype")
BPE_VOCAB_SIZE = 512  # --tokenizer bpe without --vocab-size
MODEL_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "bias")


def load_dataset(cfg: TrainConfig, tokenizer=None, progress: bool = False):
    """The task, or the text dataset (tokenized with `tokenizer` when fine-tuning a saved model)."""
    if cfg.task is not None:
        task = TASKS[cfg.task]()
        if tokenizer is not None and tokenizer != task.tokenizer:
            raise ValueError(f"the checkpoint's vocabulary does not match the {cfg.task} task's")
        return task
    if tokenizer is None and cfg.tokenizer not in TOKENIZERS:  # a directory with a tokenizer in it
        tokenizer = read_tokenizer(Path(cfg.tokenizer))
    return TextDataset.load(cfg.data, tokenizer, kind=cfg.tokenizer, vocab_size=cfg.vocab_size or BPE_VOCAB_SIZE,
                            progress=progress)


def read_tokenizer(directory: Path):
    """The tokenizer in a directory: minigpt's tokenizer.json, or GPT-2's vocab.json and merges.txt."""
    from minigpt.data import BPETokenizer, tokenizer_from_json

    if (directory / "tokenizer.json").is_file():
        return tokenizer_from_json((directory / "tokenizer.json").read_text(encoding="utf-8"))
    if (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        return BPETokenizer.from_gpt2_files(directory / "vocab.json", directory / "merges.txt")
    raise FileNotFoundError(f"--tokenizer {directory}: no tokenizer.json, or vocab.json and merges.txt, there; "
                            f"use char, bpe, or a directory written by minigpt tokenizer train")


def sequence_length(cfg: TrainConfig, dataset) -> int:
    """T of the training batches: the task's fixed length, or block_size for text."""
    return getattr(dataset, "sequence_length", cfg.block_size)


def resume_config(out_dir, overrides: dict) -> TrainConfig:
    """The configuration of the run in out_dir, with `overrides` (e.g. a larger max_iters) applied."""
    ckpt = checkpoint.resolve(out_dir, "latest")
    saved = checkpoint.read_json(ckpt / "train_config.json")
    return TrainConfig.from_dict({**saved, **overrides, "resume": True, "out_dir": str(out_dir)}, source="config")


def evaluate(model: GPT, dataset, cfg: TrainConfig, dist: Distributed | None = None) -> dict:
    """Mean loss over eval_iters batches of each split, always the same batches (a fixed generator),
    so that successive evaluations differ only because the model changed; plus the held-out
    exact-match accuracy for a task. Under MPI the ranks share the batches."""
    dist = Distributed() if dist is None else dist
    model.eval()
    T = sequence_length(cfg, dataset)
    result = {}
    for i, split in enumerate(("train", "val")):
        rng = np.random.default_rng([cfg.seed, 2, i])
        batches = [dataset.get_batch(split, cfg.batch_size, T, rng) for _ in range(cfg.eval_iters)]
        mine = sum(model.forward(x, y, keep_cache=False)[1] for x, y in batches[dist.rank::dist.size])
        result[f"{split}_loss"] = dist.sum(mine) / cfg.eval_iters
    if hasattr(dataset, "accuracy"):
        result["val_accuracy"] = dataset.accuracy(model, "val")
    model.train()
    return result


# --8<-- [start:accumulate]
def accumulate_gradients(model: GPT, batches: list, share=None) -> tuple[float, dict]:
    """Mean loss and its gradients over several micro-batches, each weighted by its share of the
    targets: exactly the loss and gradients of one batch holding all of them. With `share` (a range of
    indices), only those micro-batches are computed, still weighted by their share of all the targets:
    the parts that the ranks of a data-parallel run sum (minigpt/distributed.py)."""
    counts = [int((y != IGNORE_INDEX).sum()) for _, y in batches]
    total = sum(counts)
    loss, grads = 0.0, None
    for i in range(len(batches)) if share is None else share:
        (x, y), n = batches[i], counts[i]
        _, micro_loss = model.forward(x, y)
        micro_grads = model.backward()
        w = n / total
        loss += w * micro_loss
        if grads is None:  # (one micro-batch: w = 1, and the gradients are used as they are, not copied)
            grads = micro_grads if w == 1.0 else {name: w * g for name, g in micro_grads.items()}
        else:
            for name, g in micro_grads.items():
                grads[name] += w * g
    return loss, grads
# --8<-- [end:accumulate]


def truncate_log(path: Path, last_iter: int) -> None:
    """Drop log lines past the checkpoint being resumed (steps that ran after it and will run again)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["iter"] <= last_iter]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


class Interrupt:
    """Turns the first Ctrl-C (SIGINT) into a flag that the loop checks after each step."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler
            self.previous = None
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)  # a second Ctrl-C stops at once

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class TrainingInterrupted(Exception):
    pass


def train(cfg: TrainConfig, progress: bool = True, dist: Distributed | None = None) -> dict:
    """Train as `cfg` says; return a summary (steps, losses, where the checkpoints are). Under mpiexec,
    every rank runs this and rank 0 alone writes (minigpt/distributed.py)."""
    dist = distributed.init() if dist is None else dist
    if cfg.data is not None:  # saved with the run, so a resume from another directory finds the text too
        cfg = replace(cfg, data=str(Path(cfg.data).expanduser().resolve()))
    out_dir = Path(cfg.out_dir)
    started = time.perf_counter()
    share = dist.share(cfg.gradient_accumulation_steps)  # this rank's micro-batches of each step
    # N ranks on one machine share its cores
    runtime.set_threads(cfg.threads if cfg.threads is not None else max(1, runtime.available_cores() // dist.size))
    progress = progress and dist.is_main
    say = (lambda msg: tqdm.write(msg, file=sys.stderr)) if progress else (lambda msg: None)

    # --- the model, its tokenizer and the data ---
    model = tokenizer = None
    if cfg.resume:
        ckpt = checkpoint.resolve(out_dir, "latest")
        saved = TrainConfig.from_dict(checkpoint.read_json(ckpt / "train_config.json"), source="saved config")
        for key in FIXED_ON_RESUME:
            if getattr(saved, key) != getattr(cfg, key):
                raise ValueError(f"cannot change {key} when resuming ({getattr(saved, key)!r} in {ckpt}, "
                                 f"{getattr(cfg, key)!r} now); start a new run in another --out-dir")
        model, tokenizer = checkpoint.load_model(ckpt, backend=cfg.backend)
    else:
        if checkpoint.read_pointer(out_dir) is not None:
            raise ValueError(f"{out_dir} already holds a run; continue it with --resume, or choose another --out-dir")
        if cfg.init_from is not None:
            ckpt = checkpoint.resolve(cfg.init_from, "best")
            pretrained, tokenizer = checkpoint.load_model(ckpt, backend="numpy")
            for key in MODEL_KEYS:
                want, have = getattr(cfg, key), getattr(pretrained.config, key)
                if want != have and not (key == "block_size" and want < have):  # a shorter context can be cut
                    raise ValueError(f"the checkpoint {ckpt} has {key} {have!r}; it cannot be fine-tuned with {key} {want!r}")
            model = GPT(cfg.model_config(pretrained.config.vocab_size), seed=cfg.seed, dtype=np.dtype(cfg.dtype),
                        backend=cfg.backend)
            weights = {name: p.astype(cfg.dtype) for name, p in pretrained.params.items()}
            # a shorter context than the checkpoint's keeps the first rows of wpe (as nanoGPT's crop_block_size)
            weights["transformer.wpe.weight"] = weights["transformer.wpe.weight"][:cfg.block_size].copy()
            model.load_state_dict(weights)
            say(f"starting from the weights of {ckpt}")
    dataset = load_dataset(cfg, tokenizer, progress)
    if model is None:
        model = GPT(cfg.model_config(dataset.vocab_size), seed=cfg.seed, dtype=np.dtype(cfg.dtype), backend=cfg.backend)
    dist.broadcast_params(model.params)  # every rank starts from rank 0's weights
    T = sequence_length(cfg, dataset)
    if T > cfg.block_size:
        raise ValueError(f"the {cfg.task} task needs block_size >= {T}, got {cfg.block_size}")

    optimizer = AdamW(model.params, cfg.weight_decay, cfg.beta1, cfg.beta2, backend=model.backend)
    sampler = np.random.default_rng(cfg.seed)  # the training batches, the same sequence on every rank
    it, best_val_loss = 0, math.inf
    if cfg.resume:
        _, state = checkpoint.load_training_state(ckpt, optimizer)
        it, best_val_loss = state["iter"], state["best_val_loss"]
        sampler.bit_generator.state = state["sampler_rng"]
        model.rng.bit_generator.state = state["dropout_rng"]
        if dist.is_main:
            truncate_log(out_dir / "log.jsonl", it)
        say(f"resuming {out_dir} at iter {it}")
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    if dist.size > 1:
        say(f"data-parallel over {dist.size} ranks, {len(share)} of the {cfg.gradient_accumulation_steps} "
            f"micro-batches of each step per rank")

    def save(best: bool):
        if not dist.is_main:
            return
        state = {"iter": it, "best_val_loss": best_val_loss, "optimizer_step": optimizer.t, "ranks": dist.size,
                 "sampler_rng": sampler.bit_generator.state, "dropout_rng": model.rng.bit_generator.state}
        checkpoint.save(out_dir, f"ckpt-{it:06d}", model, dataset.tokenizer, cfg, optimizer, state, best)

    # --- the loop ---
    tokens_per_step = cfg.batch_size * T * cfg.gradient_accumulation_steps
    min_lr = cfg.min_lr if cfg.decay_lr else cfg.learning_rate  # decay_lr=False: constant after the warmup
    last_eval = {}
    bar = tqdm(total=cfg.max_iters, initial=it, desc="train", unit="it", file=sys.stderr,
               disable=None if progress else True, dynamic_ncols=True)
    log = open(out_dir / "log.jsonl", "a") if dist.is_main else nullcontext()  # rank 0 alone writes
    with Interrupt() as interrupt, bar, log:
        while it < cfg.max_iters:
            t0 = time.perf_counter()
            lr = get_lr(it, cfg.learning_rate, min_lr, cfg.warmup_iters, cfg.decay_iters)
            # every rank draws the whole global batch (keeping the samplers in step), and computes its share
            batches = [dataset.get_batch("train", cfg.batch_size, T, sampler) for _ in range(cfg.gradient_accumulation_steps)]
            loss, grads = accumulate_gradients(model, batches, share)
            loss, interrupted = dist.sum_gradients(grads, [loss, float(interrupt.requested)])  # one all-reduce
            if not math.isfinite(loss):
                raise FloatingPointError(f"the training loss became {loss} at iter {it + 1}; lower --learning-rate")
            grad_norm = clip_grad_norm(grads, cfg.grad_clip)
            optimizer.step(grads, lr)
            it += 1
            step_time = time.perf_counter() - t0
            record = {"iter": it, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                      "tokens_per_sec": tokens_per_step / step_time}
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_step / step_time:,.0f}", refresh=False)

            if it % cfg.eval_interval == 0 or it == cfg.max_iters:
                dist.check_same_params(model.params, it)
                last_eval = evaluate(model, dataset, cfg, dist)
                record.update(last_eval)
                is_best = last_eval["val_loss"] < best_val_loss
                best_val_loss = min(best_val_loss, last_eval["val_loss"])
                save(best=is_best)
                accuracy = f", val accuracy {last_eval['val_accuracy']:.1%}" if "val_accuracy" in last_eval else ""
                say(f"iter {it}: train loss {last_eval['train_loss']:.4f}, val loss {last_eval['val_loss']:.4f}"
                    f"{accuracy}{' (best)' if is_best else ''}")
            elif interrupted:
                save(best=False)
            if dist.is_main and (it % cfg.log_interval == 0 or "val_loss" in record or interrupted):
                log.write(json.dumps(record) + "\n")
                log.flush()
            if interrupted:
                raise TrainingInterrupted(
                    f"interrupted at iter {it}; checkpoint saved in {out_dir}; continue with "
                    f"minigpt train --resume --out-dir {out_dir}"
                )
    return {"iter": it, "best_val_loss": best_val_loss, **last_eval, "out_dir": str(out_dir),
            "seconds": time.perf_counter() - started, "num_params": model.num_params(), "rank": dist.rank}
