"""The training loop under `minigpt train`: AdamW on random batches, periodic evaluation, checkpoints, exact resume.

    summary = train(settings.given(flags, "run.toml"))     # what the user set (minigpt/settings.py)

`train` opens the run (minigpt/run.py: the data, the model, the optimizer, where a resumed run left off, the run
directory, locked) and `loop` trains it, reading as nanoGPT's does. What the run directory holds and how it survives a
crash: minigpt/checkpoint.py and docs/runs.md; a Ctrl-C: minigpt/interrupt.py; data parallelism: minigpt/distributed.py.
Math: docs/training.md. Tests: tests/test_train.py, tests/test_faults.py, tests/test_stops.py (a stop during an
evaluation).
"""

import math
import shlex
import sys
import time
from typing import Callable

import numpy as np
from tqdm import tqdm

from minigpt import distributed, interrupt, objectives, runtime, settings
from minigpt.config import TrainConfig
from minigpt.data.dataset import Dataset
from minigpt.distributed import Distributed
from minigpt.model import GPT
from minigpt.optim import clip_grad_norm, get_lr
from minigpt.run import Run, open_run


def train(given: settings.Given, progress: bool = True, dist: Distributed | None = None, source: str | None = None,
          allow_data_change: bool = False) -> dict:
    """Train as the settings `given` say (settings.given: the rest come from the defaults, a preset, a fine-tuned
    checkpoint or the resumed run; source names the config file they came from); return a summary (steps, losses,
    where the checkpoints are). Under mpiexec, every rank runs this and rank 0 alone writes
    (minigpt/distributed.py). allow_data_change lets a resumed run go on with a text other than the one it was
    trained on."""
    dist = distributed.init() if dist is None else dist
    started = time.perf_counter()
    progress = progress and dist.is_main
    say = (lambda msg: tqdm.write(msg, file=sys.stderr)) if progress else (lambda msg: None)
    run = open_run(given, dist, say, source, allow_data_change, progress)
    try:
        # N ranks on one machine share its cores
        threads = runtime.within_cores(run.cfg.threads, run.say)
        runtime.set_threads(threads or max(1, runtime.default_threads() // dist.size))
        return loop(run, progress, started)
    finally:
        run.close()


def loop(run: Run, progress: bool, started: float) -> dict:
    cfg, dist, model, optimizer = run.cfg, run.dist, run.model, run.optimizer
    T = run.dataset.sequence_length
    share = dist.share(cfg.gradient_accumulation_steps)  # this rank's micro-batches of each step
    if dist.size > 1:
        run.say(f"data-parallel over {dist.size} ranks, {len(share)} of the {cfg.gradient_accumulation_steps} "
                f"micro-batches of each step per rank")
    tokens_per_step = cfg.batch_size * T * cfg.gradient_accumulation_steps
    min_lr = cfg.min_lr if cfg.decay_lr else cfg.learning_rate  # decay_lr=False: constant after the warmup
    last_eval, reached, first = {}, False, run.it
    bar = tqdm(total=cfg.max_iters, initial=run.it, desc="train", unit="it", file=sys.stderr,
               disable=None if progress else True, dynamic_ncols=True)
    with interrupt.deferred(), bar:
        while run.it < cfg.max_iters:
            t0 = time.perf_counter()
            lr = get_lr(run.it, cfg.learning_rate, min_lr, cfg.warmup_iters, cfg.decay_iters)
            # every rank draws the whole global batch (keeping the samplers in step), and computes its share
            batches = [run.dataset.get_batch("train", cfg.batch_size, run.sampler)
                       for _ in range(cfg.gradient_accumulation_steps)]
            loss, grads, measures = accumulate_gradients(model, batches, share, run.objective, run.it)
            # one all-reduce: the gradients, the loss (and what the objective measures besides), and whether any rank
            # got a Ctrl-C, SIGTERM or SIGHUP (then all stop at this step)
            loss, *summed = dist.sum_gradients(grads, [loss, *measures.values(), *interrupt.received()])
            measures, received = dict(zip(measures, summed)), summed[len(measures):]
            stop = interrupt.agree(received)
            grad_norm = clip_grad_norm(grads, cfg.grad_clip)
            for what, value in (("the training loss", loss), ("the gradient norm", grad_norm)):
                if not math.isfinite(value):
                    raise run.diverged(run.it + 1, what, value)
            evaluating = (run.it + 1) % cfg.eval_interval == 0 or run.it + 1 == cfg.max_iters
            before = {name: p.copy() for name, p in model.params.items()} if cfg.log_stats and evaluating else None
            optimizer.step(grads, lr)
            run.it += 1
            step_time = time.perf_counter() - t0
            record = {"iter": run.it, "loss": loss, **measures, "lr": lr, "grad_norm": grad_norm,
                      "tokens_per_sec": tokens_per_step / step_time}
            if before is not None:  # --log-stats (minigpt inspect shows them over the run)
                record["stats"] = parameter_stats(model.params, before, grads)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_step / step_time:,.0f}", refresh=False)

            # the step ends: evaluated if it is an evaluation step; then a checkpoint if one is due (an evaluation, or
            # a Ctrl-C), which logs the record first, else the record alone if its log line is due; then stopped
            is_best = False
            abandoned = False
            if evaluating:
                evaluated = evaluation(run)
                abandoned = evaluated is None  # by a stop: the step's checkpoint is saved, nothing of it is logged
                if not abandoned:
                    last_eval, is_best = evaluated
                    record.update(last_eval)
                    reached = cfg.target_loss is not None and last_eval["val_loss"] <= cfg.target_loss
            stop = stop or abandoned
            if evaluating or stop:
                with interrupt.shielded():  # a second Ctrl-C (SIGTERM, SIGHUP) does not cut the save short
                    run.save(record, is_best)
            elif run.it % cfg.log_interval == 0:
                run.write(record)
            if stop:
                by = "" if interrupt.name() == "Ctrl-C" else f" by {interrupt.name()}"
                without = ", without the evaluation of that step, which the stop abandoned" if abandoned else ""
                raise interrupt.Interrupted(f"interrupted{by} at iter {run.it}; checkpoint saved in {run.out_dir}{without}; "
                                  f"continue with minigpt train --resume --out-dir {run.out_dir}")
            if reached:  # --target-loss: as good as asked for; the checkpoint of this step is saved
                break
    return {"iter": run.it, "steps": run.it - first, "best_val_loss": run.best_val_loss, **last_eval,
            "out_dir": str(run.out_dir), "next": run.dataset.what_next(shlex.quote(str(run.out_dir))),
            "reached_target": reached,
            "target_loss": cfg.target_loss,
            "seconds": time.perf_counter() - started, "num_params": model.num_params(), "rank": dist.rank}


def evaluation(run: Run) -> tuple[dict, bool] | None:
    """An evaluation step's losses (and the data's held-out accuracy), said on one line, and whether its validation loss is the
    best yet (then remembered); None if a stop abandoned it. A loss that is not finite stops the run as diverged."""
    run.dist.check_same_params(run.model.params, run.it)
    result = evaluate(run.model, run.dataset, run.cfg, run.objective, run.dist)
    if result is None:
        return None
    for key in ("train_loss", "val_loss"):
        if not math.isfinite(result[key]):
            raise run.diverged(run.it, f"the {key.replace('_', ' ')}", result[key])
    is_best = run.best_val_loss is None or result["val_loss"] < run.best_val_loss
    if is_best:
        run.best_val_loss = result["val_loss"]
    accuracy = f", val accuracy {result['val_accuracy']:.1%}" if "val_accuracy" in result else ""
    bpb = f", val bpb {result['val_bpb']:.4f}" if "val_bpb" in result else ""
    run.say(f"iter {run.it}: train loss {result['train_loss']:.4f}, val loss {result['val_loss']:.4f}"
            f"{bpb}{accuracy}{' (best)' if is_best else ''}")
    return result, is_best


def evaluate(model: GPT, dataset: Dataset, cfg: TrainConfig, objective, dist: Distributed | None = None) -> dict | None:
    """Mean loss over eval_iters batches of each split, always the same batches (a fixed generator), so that
    successive evaluations differ only because the model changed; plus the dataset's held-out accuracy, where it has
    one (a task's exact match, instructions' exact match, a classifier's accuracy), and the validation loss in bits per
    byte where the data knows its bytes (a tokenized corpus: val_bpb). Under MPI every rank draws every
    batch and computes its share.

    None if a stop abandoned it, on any rank: an evaluation changes nothing the run keeps, so a stop (Ctrl-C, SIGTERM,
    SIGHUP) lets it run on for STOP_GRACE seconds at most (time to end if it nearly has), rather than to its last
    batch, and what it had computed is not reported (unless_abandoned). The ranks agree on it before each sum of
    their shares (abandoned_anywhere)."""
    dist = Distributed() if dist is None else dist
    model.eval()
    try:
        result = {}
        for i, split in enumerate(("train", "val")):
            rng = np.random.default_rng([cfg.seed, 2, i])
            mine = unless_abandoned(split_loss, model, dataset, cfg, objective, dist, split, rng)
            if abandoned_anywhere(dist, mine is ABANDONED):
                return None
            result[f"{split}_loss"] = dist.sum(mine) / cfg.eval_iters
        bpb = dataset.bits_per_byte(result["val_loss"], "val")  # (a tokenized corpus's; None for the other kinds)
        if bpb is not None:
            result["val_bpb"] = bpb
        accuracy = unless_abandoned(dataset.accuracy, model, "val")
        if abandoned_anywhere(dist, accuracy is ABANDONED):
            return None
        return result if accuracy is None else {**result, "val_accuracy": accuracy}
    finally:
        model.train()


def split_loss(model: GPT, dataset: Dataset, cfg: TrainConfig, objective, dist: Distributed, split: str, rng) -> float:
    """This rank's part of the sum of the losses of a split's eval_iters batches."""
    mine = 0.0
    for k in range(cfg.eval_iters):
        interrupt.check()  # (abandoned here once a stop's grace is over)
        batch = dataset.get_batch(split, cfg.batch_size, rng)
        if k % dist.size == dist.rank:
            mine += objective.eval_loss(model, batch)
    return mine


STOP_GRACE = 0.5  # seconds an evaluation may run on after a stop: one nearly done ends, and is saved with its step
ABANDONED = object()  # what unless_abandoned returns for a computation a stop abandoned (None is an answer: no accuracy)


def unless_abandoned(compute: Callable, *args):
    """compute(*args), or ABANDONED if a stop abandoned it (interrupt.abandonable: inside the training loop's
    deferred(), a stop otherwise waits for the step to end)."""
    try:
        with interrupt.abandonable(STOP_GRACE):
            return compute(*args)
    except interrupt.Abandoned:
        return ABANDONED


def abandoned_anywhere(dist: Distributed, abandoned: bool) -> bool:
    """Whether this rank or another abandoned its part of the evaluation: every rank asks at the same place (an
    all-reduce), all learn the same, and all take the stop as their own (interrupt.agree), so that none is left
    waiting in a sum the others skip."""
    if dist.size == 1:
        return abandoned
    if not dist.sum(float(abandoned)):
        return False
    interrupt.agree([dist.sum(count) for count in interrupt.received()])
    return True


# --8<-- [start:accumulate]
def accumulate_gradients(model: GPT, batches: list, share=None, objective=None,
                         it: int = 0) -> tuple[float, dict, dict]:
    """Mean loss and its gradients over several micro-batches, each weighted by its share of the
    targets: exactly the loss and gradients of one batch holding all of them. With `share` (a range of
    indices), only those micro-batches are computed, still weighted by their share of all the targets:
    the parts that the ranks of a data-parallel run sum (minigpt/distributed.py). (A classifier's micro-batches
    are weighted by their sequences; its auxiliary language-modelling loss, lm_weight > 0, is then each
    micro-batch's mean over its tokens; preference pairs' by their pairs.) objective: what the loss is
    (minigpt/objectives.py; None: the model's own, sft); it: the step, which with each micro-batch's index seeds
    what the objective samples. Returns the loss, the gradients, and what the objective measures besides (DPO's reward
    margin, the policy gradient's reward: their weighted means, by name)."""
    objective = objectives.LanguageModel() if objective is None else objective
    counts = [objective.weight(batch) for batch in batches]
    total = sum(counts)
    loss, grads, measures = 0.0, None, dict.fromkeys(objective.MEASURES, 0.0)
    for i in range(len(batches)) if share is None else share:
        n = counts[i]
        micro_loss, micro_measures = objective.loss(model, batches[i], (it, i))
        micro_grads = objective.backward(model)
        w = n / total
        loss += w * micro_loss
        for name, value in micro_measures.items():
            measures[name] += w * value
        if grads is None:  # (one micro-batch: w = 1, and the gradients are used as they are, not copied)
            grads = micro_grads if w == 1.0 else {name: w * g for name, g in micro_grads.items()}
        else:
            for name, g in micro_grads.items():
                grads[name] += w * g
    return loss, grads, measures
# --8<-- [end:accumulate]


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
