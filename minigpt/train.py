"""The training loop under `minigpt train`: AdamW on random batches, periodic evaluation, checkpoints, exact resume.

`train(cfg)` is two parts: `start` builds the run (the data, the model, the optimizer, where a resumed run left off,
the run directory, locked) and the loop below it trains, reading as nanoGPT's does. What the run directory holds and
how it survives a crash: minigpt/checkpoint.py and docs/runs.md. Math: docs/training.md. Tests: tests/test_train.py,
tests/test_faults.py.
"""

import math
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from minigpt import checkpoint, distributed, runtime
from minigpt.config import TOKENIZERS, TrainConfig
from minigpt.data import load_tokenizer
from minigpt.data.tasks import TASKS
from minigpt.data.text import TextDataset
from minigpt.distributed import Distributed
from minigpt.model import GPT, num_params
from minigpt.ops.cross_entropy import IGNORE_INDEX
from minigpt.optim import AdamW, clip_grad_norm, get_lr
from minigpt.settings import FIXED_ON_RESUME, MODEL_KEYS

BPE_VOCAB_SIZE = 512  # --tokenizer bpe without --vocab-size


class TrainingInterrupted(Exception):
    pass


class Diverged(FloatingPointError):
    pass


@dataclass
class Run:
    """What the loop works with, made by start()."""
    cfg: TrainConfig
    dist: Distributed
    out_dir: Path
    model: GPT
    dataset: object  # TextDataset, or a task
    optimizer: AdamW
    sampler: np.random.Generator  # draws the training batches
    it: int  # optimizer steps taken
    best_val_loss: float | None
    latest: str | None  # the newest checkpoint, saved or resumed from
    data: dict | None  # the text file's identity: size and SHA-256
    log: checkpoint.Log | None  # rank 0 alone writes
    lock: int | None  # the descriptor holding the run directory's lock (rank 0)
    say: Callable


# --- building a run ----------------------------------------------------------------------------------------------

def load_dataset(cfg: TrainConfig, tokenizer=None, progress: bool = False):
    """The task, or the text dataset (tokenized with `tokenizer` when the model already has one)."""
    if cfg.task is not None:
        task = TASKS[cfg.task]()
        if tokenizer is not None and tokenizer != task.tokenizer:
            raise ValueError(f"the checkpoint's vocabulary does not match the {cfg.task} task's")
        return task
    if tokenizer is None and cfg.tokenizer not in TOKENIZERS:  # a directory with a tokenizer in it
        tokenizer = load_tokenizer(cfg.tokenizer)
        if tokenizer is None:
            raise FileNotFoundError(f"--tokenizer {cfg.tokenizer}: no tokenizer.json, or vocab.json and merges.txt, "
                                    f"there; use char, bpe, or a directory written by minigpt tokenizer train")
    return TextDataset.load(cfg.data, tokenizer, kind=cfg.tokenizer, vocab_size=cfg.vocab_size or BPE_VOCAB_SIZE,
                            progress=progress)


def sequence_length(cfg: TrainConfig, dataset) -> int:
    """T of the training batches: the task's fixed length, or block_size for text."""
    return getattr(dataset, "sequence_length", cfg.block_size)


def memory_needed(cfg: TrainConfig, vocab_size: int, T: int) -> int:
    """Bytes a step needs, roughly from below: parameters, gradients and AdamW's two moments; each block's cached
    activations (about 20 C numbers a token, docs/model.md) and its (T, T) attention scores; the logits and their
    gradient; the micro-batches of a step."""
    itemsize = np.dtype(cfg.dtype).itemsize
    B, C, L, nh = cfg.batch_size, cfg.n_embd, cfg.n_layer, cfg.n_head
    activations = B * T * (L * 20 * C + 3 * vocab_size) + 2 * B * nh * T * T
    batches = cfg.gradient_accumulation_steps * B * T * 2 * 8
    return itemsize * (4 * num_params(cfg.model_config(vocab_size)) + activations) + batches


def start(cfg: TrainConfig, dist: Distributed, say: Callable, allow_data_change: bool = False,
          progress: bool = False) -> Run:
    """Build a run: lock its directory, read where a resumed run left off (or the weights to fine-tune), load the
    data, build the model and optimizer, and only then, with nothing left that could fail on bad input, clean the
    directory of what a crash left behind and open the log."""
    out_dir = Path(cfg.out_dir)
    lock = checkpoint.lock(out_dir) if dist.is_main and out_dir.is_dir() else None
    try:
        pointer = checkpoint.read_pointer(out_dir) if out_dir.is_dir() else None
        weights = tokenizer = state = ckpt = None
        if cfg.resume:
            if pointer is None:
                raise FileNotFoundError(f"nothing to resume in {out_dir}: it holds no checkpoint; start the run without --resume")
            ckpt = out_dir / pointer["latest"]
            saved = checkpoint.read_train_config(ckpt)
            for key in FIXED_ON_RESUME:
                if getattr(saved, key) != getattr(cfg, key):
                    raise ValueError(f"cannot change {key} when resuming ({getattr(saved, key)!r} in {ckpt}, "
                                     f"{getattr(cfg, key)!r} now); start a new run in another --out-dir")
            state = checkpoint.read_state(ckpt)
            _, weights, tokenizer = checkpoint.read(ckpt)
        elif pointer is not None:
            raise ValueError(f"{out_dir} already holds a run; continue it with --resume, or choose another --out-dir")
        elif cfg.init_from is not None:
            ckpt = checkpoint.resolve(cfg.init_from, "best")
            config, weights, tokenizer = checkpoint.read(ckpt)
            for key in MODEL_KEYS:
                want, have = getattr(cfg, key), getattr(config, key)
                if want != have and not (key == "block_size" and want < have):  # a shorter context can be cut
                    raise ValueError(f"the checkpoint {ckpt} has {key} {have!r}; it cannot be fine-tuned with {key} {want!r}")
            # a shorter context than the checkpoint's keeps the first rows of wpe (as nanoGPT's crop_block_size)
            weights = {name: p.astype(cfg.dtype) for name, p in weights.items()}
            weights["transformer.wpe.weight"] = weights["transformer.wpe.weight"][:cfg.block_size].copy()

        dataset = load_dataset(cfg, tokenizer, progress)
        data = getattr(dataset, "identity", None)
        if state is not None and state["data"] != data and state["data"] is not None:
            if not allow_data_change:
                raise ValueError(
                    f"the data is not the text this run was trained on ({state['data']['size']:,} bytes, SHA-256 "
                    f"{state['data']['sha256'][:12]}... then; {data['size']:,} bytes, {data['sha256'][:12]}... now, in "
                    f"{dataset.source}); give the same file, or --allow-data-change to go on with this one")
            say(f"continuing on another text, {dataset.source}, as --allow-data-change asks")
        T = sequence_length(cfg, dataset)
        if T > cfg.block_size:
            raise ValueError(f"the {cfg.task} task needs block_size >= {T}, got {cfg.block_size}")
        runtime.check_memory(memory_needed(cfg, dataset.vocab_size, T), "training this model",
                             "make it smaller (--n-layer, --n-embd, --block-size) or the batch (--batch-size)")

        model = GPT(cfg.model_config(dataset.vocab_size), seed=cfg.seed, dtype=np.dtype(cfg.dtype), backend=cfg.backend)
        if weights is not None:
            try:
                model.load_state_dict(weights)
            except ValueError as e:
                raise ValueError(f"{ckpt}: {e}") from None
            if not cfg.resume:
                say(f"starting from the weights of {ckpt}")
        optimizer = AdamW(model.params, cfg.weight_decay, cfg.beta1, cfg.beta2, backend=model.backend)
        sampler = np.random.default_rng(cfg.seed)  # the training batches, the same sequence on every rank
        it, best_val_loss, latest = 0, None, None
        if state is not None:
            try:
                optimizer.load_state_dict(checkpoint.read_optimizer(ckpt), t=state["optimizer_step"])
            except ValueError as e:
                raise ValueError(f"{ckpt / 'optimizer.safetensors'}: {e}") from None
            it, best_val_loss, latest = state["iter"], state["best_val_loss"], pointer["latest"]
            sampler.bit_generator.state = state["sampler_rng"]
            model.rng.bit_generator.state = state["dropout_rng"]
        dist.broadcast_params(model.params)  # every rank starts from rank 0's weights

        log = None
        if dist.is_main:
            if lock is None:
                out_dir.mkdir(parents=True, exist_ok=True)
                lock = checkpoint.lock(out_dir)
                if checkpoint.read_pointer(out_dir) is not None:  # a run started there since we looked
                    raise ValueError(f"{out_dir} already holds a run; continue it with --resume, or choose another --out-dir")
            checkpoint.clean(out_dir, say)
            if cfg.resume:
                checkpoint.resume_log(out_dir, it, say)
            elif (out_dir / checkpoint.LOG).exists():
                say(f"removing {out_dir / checkpoint.LOG}, left by a run that stopped before its first checkpoint")
                (out_dir / checkpoint.LOG).unlink()
            log = checkpoint.Log(out_dir)
    except BaseException:
        if lock is not None:
            checkpoint.unlock(lock)
        raise
    if cfg.resume:
        say(f"resuming {out_dir} at iter {it}")
    return Run(cfg, dist, out_dir, model, dataset, optimizer, sampler, it, best_val_loss, latest, data, log, lock, say)


# --- the loop ----------------------------------------------------------------------------------------------------

def evaluate(model: GPT, dataset, cfg: TrainConfig, dist: Distributed | None = None) -> dict:
    """Mean loss over eval_iters batches of each split, always the same batches (a fixed generator), so that
    successive evaluations differ only because the model changed; plus the held-out exact-match accuracy for a
    task. Under MPI every rank draws every batch and computes its share."""
    dist = Distributed() if dist is None else dist
    model.eval()
    T = sequence_length(cfg, dataset)
    result = {}
    for i, split in enumerate(("train", "val")):
        rng = np.random.default_rng([cfg.seed, 2, i])
        mine = 0.0
        for k in range(cfg.eval_iters):
            x, y = dataset.get_batch(split, cfg.batch_size, T, rng)
            if k % dist.size == dist.rank:
                mine += model.forward(x, y, keep_cache=False)[1]
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


def diverged(run: Run, it: int, what: str, value) -> Diverged:
    """The error that stops a run whose numbers stopped being finite; nothing of that step is saved."""
    if run.latest is not None:
        last = (f"the last good checkpoint, {run.out_dir / run.latest}, stays the latest: continue from it with "
                f"--resume and a lower --learning-rate")
        best = checkpoint.read_pointer(run.out_dir)["best"] if run.dist.is_main else run.latest
        if best != run.latest:
            last += f" (the best, {run.out_dir / best}, is kept too)"
    else:
        last = "no checkpoint was saved before it: start again with a lower --learning-rate"
    return Diverged(f"the run diverged at iter {it}: {what} is {value}; nothing of that step was saved, and {last}")


def non_finite(arrays: dict) -> str | None:
    """The name of the first array holding a NaN or an infinity, or None."""
    return next((name for name, a in arrays.items() if not np.isfinite(a).all()), None)


def check_finite(run: Run) -> None:
    """Before a checkpoint: the weights and AdamW's moments are finite, or the run stops as diverged."""
    for what, arrays in (("parameter", run.model.params), ("AdamW's first moment of", run.optimizer.m),
                         ("AdamW's second moment of", run.optimizer.v)):
        name = non_finite(arrays)
        if name is not None:
            raise diverged(run, run.it, f"{what} {name}", "not finite")


def save(run: Run, best: bool) -> None:
    """Get the log's lines onto disk, then write the checkpoint (rank 0)."""
    if not run.dist.is_main:
        return
    state = {"iter": run.it, "best_val_loss": run.best_val_loss, "optimizer_step": run.optimizer.t,
             "ranks": run.dist.size, "sampler_rng": run.sampler.bit_generator.state,
             "dropout_rng": run.model.rng.bit_generator.state, "data": run.data}
    run.log.sync()  # the log's lines up to this step are on disk before the checkpoint that covers them
    run.latest = checkpoint.save(run.out_dir, run.it, run.model, run.dataset.tokenizer, run.cfg, run.optimizer,
                                 state, best)


class Interrupt:
    """Turns the first Ctrl-C (SIGINT) into a flag that the loop checks after each step. `earlier` says whether a
    Ctrl-C came before the loop began: the KeyboardInterrupt it raised may have been swallowed by a library's
    import (a bare `except:`), and the run must stop all the same."""

    def __init__(self, earlier: Callable[[], bool] | None = None):
        self.requested = False
        self.earlier = earlier

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler
            self.previous = None
        if self.earlier is not None and self.earlier():
            self.__exit__()
            raise KeyboardInterrupt
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)  # a second Ctrl-C stops at once

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(cfg: TrainConfig, progress: bool = True, dist: Distributed | None = None,
          allow_data_change: bool = False, interrupted_earlier: Callable[[], bool] | None = None) -> dict:
    """Train as `cfg` says; return a summary (steps, losses, where the checkpoints are). Under mpiexec, every rank
    runs this and rank 0 alone writes (minigpt/distributed.py). allow_data_change lets a resumed run go on with a
    text other than the one it was trained on. interrupted_earlier: whether a Ctrl-C came during the start-up (the
    command's handler knows; see Interrupt)."""
    dist = distributed.init() if dist is None else dist
    if cfg.data is not None:  # saved with the run, so a resume from another directory finds the text too
        cfg = replace(cfg, data=str(Path(cfg.data).expanduser().resolve()))
    started = time.perf_counter()
    # N ranks on one machine share its cores
    runtime.set_threads(cfg.threads if cfg.threads is not None else max(1, runtime.default_threads() // dist.size))
    progress = progress and dist.is_main
    say = (lambda msg: tqdm.write(msg, file=sys.stderr)) if progress else (lambda msg: None)
    run = start(cfg, dist, say, allow_data_change, progress)
    try:
        return loop(run, progress, started, interrupted_earlier)
    finally:
        if run.log is not None:
            run.log.close()
        if run.lock is not None:
            checkpoint.unlock(run.lock)


def parameter_stats(params: dict, before: dict, grads: dict) -> dict:
    """Per parameter, the size of this step's update and of its (clipped) gradient relative to the weight's:
    ||p - p_before|| / ||p_before|| and ||g|| / ||p_before||. An update ratio far above 1e-3 a step means a
    learning rate too high for that layer; far below, one too low (docs/inspect.md)."""
    stats = {"update_ratio": {}, "grad_ratio": {}}
    for name, p in params.items():
        old = before[name].astype(np.float64)
        norm = float(np.sqrt(np.sum(old * old))) or 1.0  # a weight of zeros (a bias at the start): absolute sizes
        stats["update_ratio"][name] = float(np.sqrt(np.sum((p.astype(np.float64) - old) ** 2))) / norm
        stats["grad_ratio"][name] = float(np.sqrt(np.sum(grads[name].astype(np.float64) ** 2))) / norm
    return stats


def loop(run: Run, progress: bool, started: float, interrupted_earlier: Callable[[], bool] | None = None) -> dict:
    cfg, dist, model, optimizer = run.cfg, run.dist, run.model, run.optimizer
    T = sequence_length(cfg, run.dataset)
    share = dist.share(cfg.gradient_accumulation_steps)  # this rank's micro-batches of each step
    if dist.size > 1:
        run.say(f"data-parallel over {dist.size} ranks, {len(share)} of the {cfg.gradient_accumulation_steps} "
                f"micro-batches of each step per rank")
    tokens_per_step = cfg.batch_size * T * cfg.gradient_accumulation_steps
    min_lr = cfg.min_lr if cfg.decay_lr else cfg.learning_rate  # decay_lr=False: constant after the warmup
    last_eval = {}
    bar = tqdm(total=cfg.max_iters, initial=run.it, desc="train", unit="it", file=sys.stderr,
               disable=None if progress else True, dynamic_ncols=True)
    with Interrupt(interrupted_earlier) as interrupt, bar:
        while run.it < cfg.max_iters:
            t0 = time.perf_counter()
            lr = get_lr(run.it, cfg.learning_rate, min_lr, cfg.warmup_iters, cfg.decay_iters)
            # every rank draws the whole global batch (keeping the samplers in step), and computes its share
            batches = [run.dataset.get_batch("train", cfg.batch_size, T, run.sampler)
                       for _ in range(cfg.gradient_accumulation_steps)]
            loss, grads = accumulate_gradients(model, batches, share)
            loss, interrupted = dist.sum_gradients(grads, [loss, float(interrupt.requested)])  # one all-reduce
            grad_norm = clip_grad_norm(grads, cfg.grad_clip)
            for what, value in (("the training loss", loss), ("the gradient norm", grad_norm)):
                if not math.isfinite(value):
                    raise diverged(run, run.it + 1, what, value)
            evaluating = (run.it + 1) % cfg.eval_interval == 0 or run.it + 1 == cfg.max_iters
            before = {name: p.copy() for name, p in model.params.items()} if cfg.log_stats and evaluating else None
            optimizer.step(grads, lr)
            run.it += 1
            step_time = time.perf_counter() - t0
            record = {"iter": run.it, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                      "tokens_per_sec": tokens_per_step / step_time}
            if before is not None:  # --log-stats (minigpt inspect shows them over the run)
                record["stats"] = parameter_stats(model.params, before, grads)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_step / step_time:,.0f}", refresh=False)

            is_best = False
            if evaluating:
                dist.check_same_params(model.params, run.it)
                last_eval = evaluate(model, run.dataset, cfg, dist)
                for key in ("train_loss", "val_loss"):
                    if not math.isfinite(last_eval[key]):
                        raise diverged(run, run.it, f"the {key.replace('_', ' ')}", last_eval[key])
                record.update(last_eval)
                is_best = run.best_val_loss is None or last_eval["val_loss"] < run.best_val_loss
                if is_best:
                    run.best_val_loss = last_eval["val_loss"]
            if evaluating or interrupted:
                check_finite(run)
            if run.log is not None and (run.it % cfg.log_interval == 0 or evaluating or interrupted):
                run.log.write(record)
            if evaluating or interrupted:
                save(run, best=is_best)
            if evaluating:
                accuracy = f", val accuracy {last_eval['val_accuracy']:.1%}" if "val_accuracy" in last_eval else ""
                run.say(f"iter {run.it}: train loss {last_eval['train_loss']:.4f}, val loss {last_eval['val_loss']:.4f}"
                        f"{accuracy}{' (best)' if is_best else ''}")
            if interrupted:
                raise TrainingInterrupted(
                    f"interrupted at iter {run.it}; checkpoint saved in {run.out_dir}; continue with "
                    f"minigpt train --resume --out-dir {run.out_dir}"
                )
    return {"iter": run.it, "best_val_loss": run.best_val_loss, **last_eval, "out_dir": str(run.out_dir),
            "seconds": time.perf_counter() - started, "num_params": model.num_params(), "rank": dist.rank}
