"""A training run, opened: the one place that reads and checks everything a run starts from, for a fresh run, a resume
or a fine-tune, and hands the loop (minigpt/train.py) what it needs.

    run = open_run(settings.given(flags, "run.toml"), dist, say)   # what the user set, and where
    run.model, run.optimizer, run.dataset, run.sampler, run.it     # what the loop computes with
    run.objective                                                  # what a step minimises (--method)
    run.save(record, best)                                         # the step's log record, then a checkpoint
    run.close()

Opening, in this order, so that nothing is written before every check has passed (bad input leaves the directory as
it was):
    1. check --out-dir (minigpt/outputs.py), and lock the run directory if it exists (rank 0; the lock lasts as long
       as the process);
    2. survey the directory (what a crash left, its checkpoints found if checkpoints.json is missing), and read what
       the run starts from, its origin: a resumed run's latest checkpoint, a fine-tune's checkpoint or Hugging Face
       directory, or nothing; a fresh run refuses a directory that holds one;
    3. merge the settings over the origin's (minigpt/settings.py), which checks them against it: a resumed run changes
       its model's dropout alone and none of config.FIXED_ON_RESUME, a fine-tune keeps the checkpoint's model (a
       shorter context, its dropout and its adapters excepted);
    4. load the data; a resumed run's text must be the one it was trained on;
    5. build the model and the optimizer, and give them the origin's weights and state;
    6. make the directory ready (rank 0): create it, put right what a crash left, cut the log back, open it.
The directory's protocol: minigpt/checkpoint.py, docs/runs.md. Tests: tests/test_checkpoint.py, tests/test_faults.py.
"""

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from minigpt import checkpoint, load, lora, objectives, outputs, runtime, settings
from minigpt.applications import tasks as applications
from minigpt.config import TOKENIZERS, GPTConfig, TrainConfig
from minigpt.corpus.build import corpus_dir
from minigpt.data import load_tokenizer, record_tasks
from minigpt.data.record_tasks import RECORD_TASKS
from minigpt.data.dataset import Dataset
from minigpt.data.record_datasets import open_records
from minigpt.data.records import INSTRUCTION_KINDS, PREFERENCE_KINDS, kind_of
from minigpt.data.tasks import TASKS
from minigpt.data.text import TextDataset, find_text
from minigpt.data.tokens import TOKENS, TokensDataset
from minigpt.distributed import Distributed
from minigpt.interrupt import Diverged
from minigpt.model import GPT, HEAD, SCORE, num_params
from minigpt.muon import MuonAdamW
from minigpt.optim import AdamW

BPE_VOCAB_SIZE = 512  # --tokenizer bpe without --vocab-size


class Origin(NamedTuple):
    """What a run starts from, read once: nothing, a resumed run's latest checkpoint, or a fine-tune's model."""
    kind: str  # "new", "resume" or "fine-tune"
    ckpt: Path | None  # the checkpoint (or Hugging Face directory) it starts from
    saved: TrainConfig | None  # a resumed run's settings, as its checkpoint saved them
    pretrained: load.Pretrained | None  # the model it starts from: its config, weights and tokenizer

    def start(self) -> settings.Start:
        """What the merge of the settings needs of it (minigpt/settings.py)."""
        model = None if self.pretrained is None else self.pretrained.config
        return settings.Start(self.kind, self.ckpt, self.saved, model)


def origin(run_dir: Path, found: checkpoint.Found, resume: bool, init_from: str | None) -> Origin:
    """The origin of a run in run_dir (whose checkpoints `found` says, minigpt/checkpoint.py's survey): read once,
    here."""
    pointer = found.pointer
    if resume:
        if pointer is None:
            raise FileNotFoundError(f"nothing to resume in {run_dir}: it holds no checkpoint; start the run without --resume")
        ckpt = run_dir / pointer["latest"]
        pretrained = load.read(ckpt)
        saved = replace(pretrained.train, init_from=None)  # (the weights a fine-tuning run started from are in its
        # checkpoints now)
        return Origin("resume", ckpt, saved, pretrained)
    if found.lost:  # a start never removes a whole checkpoint: the pointer was lost, or deleted
        held = sorted(set(pointer.values()))
        raise ValueError(f"{run_dir} holds the checkpoint{'s' if len(held) > 1 else ''} {' and '.join(held)} but no "
                         f"{checkpoint.POINTER}: continue that run with --resume (which writes "
                         f"{checkpoint.POINTER} again from {'them' if len(held) > 1 else 'it'}), or choose another "
                         f"--out-dir")
    if pointer is not None:
        raise ValueError(f"{run_dir} already holds a run; continue it with --resume, or choose another --out-dir")
    if init_from is not None:
        pretrained = load.read(init_from, "best")
        return Origin("fine-tune", pretrained.path, None, pretrained)
    return Origin("new", None, None, None)


def load_dataset(cfg: TrainConfig, tokenizer=None, progress: bool = False, labels=None) -> Dataset:
    """The task, the records (a .jsonl file, or a task made of records), or the text dataset (tokenized with
    `tokenizer` when the model already has one; a fine-tuned classifier's labels stay its own)."""
    records = cfg.task in RECORD_TASKS or cfg.task in applications.TASKS
    if records or (cfg.data is not None and cfg.data.endswith(".jsonl")):
        path, n_val = (record_tasks.build(cfg.task, cfg.data) if cfg.task in RECORD_TASKS
                       else applications.build(cfg.task) if cfg.task in applications.TASKS else (cfg.data, None))
        if tokenizer is None and cfg.tokenizer not in TOKENIZERS:
            tokenizer = load_tokenizer(cfg.tokenizer)
        elif tokenizer is None and cfg.tokenizer != "char":
            raise ValueError("records train from scratch with a character vocabulary made from them; for BPE, give "
                             "--tokenizer DIR (minigpt tokenizer train) or --init-from a model that has one")
        return open_records(path, tokenizer, labels, n_val)  # (multiple-choice records refused: minigpt eval's)
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
    if cfg.corpus is not None:  # its tokens' tokenizer is the model's: one given (a checkpoint's, --tokenizer's) must
        return TokensDataset.open(corpus_tokens(cfg.corpus), tokenizer)  # be it
    if cfg.data is not None:
        refuse_records_as_text(Path(cfg.data).expanduser())
    return TextDataset.load(cfg.data, tokenizer, kind=cfg.tokenizer, vocab_size=cfg.vocab_size or BPE_VOCAB_SIZE,
                            progress=progress)


def corpus_tokens(corpus: str) -> Path:
    """The tokens directory of --corpus: a name's in the cache (corpora/NAME/tokens), or a directory's (a path with a
    "/") own; a corpus that is not there is refused, saying how to make it."""
    directory = Path(corpus).expanduser() if "/" in corpus else corpus_dir(corpus)
    if not directory.is_dir():
        raise FileNotFoundError(f"--corpus {corpus}: there is no corpus at {directory}; build and tokenize it: "
                                f"minigpt data build {directory.name}, then minigpt data tokenize {directory.name} "
                                f"--tokenizer DIR (docs/pretraining.md)")
    return directory / TOKENS


def refuse_records_as_text(path: Path) -> None:
    """Only a file named .jsonl is read as records; one named otherwise whose first line is a record was meant as
    records all the same, and would train, as text, a model of JSON syntax: refused, naming the file."""
    if not path.is_file():  # (missing, or a FIFO a read would wait on: find_text says so)
        return
    try:
        with open(path, "rb") as f:
            first = json.loads(f.readline(1 << 20))
        kind = kind_of(first, f"{path} line 1") if isinstance(first, dict) else None
    except (OSError, ValueError, RecursionError):  # (no JSON, or brackets nested past the parser: text, as it should be)
        return
    if kind is None:
        return
    raise ValueError(f"data file {path} holds JSONL records (line 1 is a {kind} record), but only a file named "
                     f"*.jsonl is read as records: rename it {path.with_suffix('.jsonl').name} to train on them")


def memory_needed(cfg: TrainConfig, config: GPTConfig, T: int) -> int:
    """Bytes a step of model `config` needs, roughly from below: parameters, gradients and AdamW's two moments; each
    block's cached activations (about 8 C + 3 F numbers a token, F the MLP's width: 20 C for GPT-2) and its (T, T)
    attention scores; the logits and their gradient; the micro-batches of a step."""
    itemsize = np.dtype(cfg.dtype).itemsize
    B, C, L, nh, F, V = cfg.batch_size, config.n_embd, config.n_layer, config.n_head, config.intermediate_size, config.vocab_size
    B *= {"dpo": 2, "rl": cfg.rl_group}.get(cfg.method, 1)  # rows of a micro-batch: a pair's two, a prompt's group
    activations = B * T * (L * (8 * C + 3 * F) + 3 * V) + 2 * B * nh * T * T
    batches = cfg.gradient_accumulation_steps * B * T * 2 * 8
    return itemsize * (4 * num_params(config) + activations) + batches


class Run:
    """What the loop works with: the settings, the model and its optimizer, the data and the generator that draws the
    training batches, where the run is (it: optimizer steps taken; best_val_loss), and on rank 0 its directory."""

    def __init__(self, cfg: TrainConfig, dist: Distributed, model: GPT, optimizer: AdamW | MuonAdamW, dataset: Dataset,
                 objective, sampler, it: int, best_val_loss: float | None, directory: checkpoint.RunDirectory | None,
                 say: Callable):
        self.cfg, self.dist, self.model, self.optimizer, self.dataset, self.sampler = cfg, dist, model, optimizer, dataset, sampler
        self.objective = objective
        self.it, self.best_val_loss = it, best_val_loss
        self.directory, self.say = directory, say
        self.out_dir = Path(cfg.out_dir)

    def write(self, record: dict) -> None:
        """A line of the log (rank 0)."""
        if self.directory is not None:
            self.directory.write(record)

    def save(self, record: dict, best: bool) -> None:
        """End the step with a checkpoint: its weights and the optimizer's buffers checked finite (else Diverged, and nothing of
        the step is saved), its record logged, then the checkpoint written (rank 0) by the protocol of
        minigpt/checkpoint.py."""
        for what, arrays in {"parameter": self.model.params, **self.optimizer.buffers()}.items():
            name = next((name for name, a in arrays.items() if not np.isfinite(a).all()), None)
            if name is not None:
                raise self.diverged(self.it, f"{what} {name}", "not finite")
        if self.directory is None:
            return
        self.directory.write(record)
        state = {"iter": self.it, "best_val_loss": self.best_val_loss, "optimizer_step": self.optimizer.t,
                 "ranks": self.dist.size, "sampler_rng": self.sampler.bit_generator.state,
                 "dropout_rng": self.model.rng.bit_generator.state, "data": self.dataset.identity,
                 "reference": None if self.dataset.reference is None else self.dataset.reference.tolist()}
        self.directory.save(self.it, self.model, self.dataset.tokenizer, self.cfg, self.optimizer, state, best)

    def diverged(self, it: int, what: str, value) -> Diverged:
        """The error that stops a run whose numbers stopped being finite, naming the checkpoint to go back to (rank 0
        says it; the other ranks stop with it)."""
        latest = None if self.directory is None else self.directory.latest
        if latest is not None:
            last = (f"the last good checkpoint, {self.out_dir / latest}, stays the latest: continue from it with "
                    f"--resume and a lower --learning-rate")
            best = checkpoint.read_pointer(self.out_dir)["best"]
            if best != latest:
                last += f" (the best, {self.out_dir / best}, is kept too)"
        else:
            last = "no checkpoint was saved before it: start again with a lower --learning-rate"
        return Diverged(f"the run diverged at iter {it}: {what} is {value}; nothing of that step was saved, and {last}")

    def close(self) -> None:
        if self.directory is not None:
            self.directory.close()


def open_run(given: settings.Given, dist: Distributed, say: Callable, source: str | None = None,
             allow_data_change: bool = False, progress: bool = False) -> Run:
    """Open a run by the steps above. given: the settings set, and where (settings.given); source: the config file
    they came from, for errors. allow_data_change lets a resumed run go on with a text other than the one it was
    trained on."""
    out_dir = Path(given.values.get("out_dir", TrainConfig.out_dir)).expanduser()
    if dist.is_main:  # rank 0 alone writes in the run directory, so it alone checks that it may: another rank's probe
        # (a *.tmp-* file in it) would be a leftover to rank 0's survey, removed under that rank's feet
        outputs.check(out_dir, "--out-dir", outputs.RUN)
    directory = checkpoint.RunDirectory(out_dir) if dist.is_main else None  # 1. locked, if it exists
    try:
        found = checkpoint.survey(out_dir)  # (only read: what the start will put right is done at 6.)
        start = origin(out_dir, found, bool(given.values.get("resume")), given.values.get("init_from"))  # 2.
        cfg = settings.merge(given, start.start(), source)  # 3.
        for notice in cfg.notices():  # settings that go together, but may not do what was meant
            say(notice)
        if cfg.data is None and cfg.task is None and cfg.corpus is None and start.kind != "resume":  # the default text
            cfg = replace(cfg, data=str(find_text()))  # ($MINIGPT_DATA, the cache): kept too, as a given one is
        if cfg.data is not None:  # saved with the run, so a resume from another directory finds the text too
            cfg = replace(cfg, data=str(Path(cfg.data).expanduser().resolve()))
        run = build(cfg, start, dist, directory, say, allow_data_change, progress)  # 4. and 5.
        for split in ("train", "val"):  # a batch of each now: what batches need (a pad token, ...) is missing before 6.
            run.dataset.get_batch(split, 1, np.random.default_rng(0))
        if directory is not None:  # 6.
            directory.open(found, run.it if start.kind == "resume" else None, say)
            directory.latest = found.pointer["latest"] if start.kind == "resume" else None
    except BaseException:
        if directory is not None:
            directory.close()
        raise
    if start.kind == "resume":
        was, now = start.saved.to_dict(), run.cfg.to_dict()
        changed = [f"{key} {now[key]!r} (was {was[key]!r})" for key in sorted(was)
                   if key not in checkpoint.UNSAVED and was[key] != now[key]]
        say(f"resuming {out_dir} at iter {run.it}" + (f", with {', '.join(changed)}" if changed else ""))
    return run


def build(cfg: TrainConfig, start: Origin, dist: Distributed, directory, say: Callable, allow_data_change: bool,
          progress: bool) -> Run:
    """The data, then the model and its optimizer with the origin's weights and state: what the loop needs."""
    state = checkpoint.read_state(start.ckpt) if start.kind == "resume" else None
    if state is not None and state["iter"] > cfg.max_iters:  # (at max_iters: the run is done, and the summary says so)
        raise ValueError(f"{cfg.out_dir} is at iter {state['iter']} already, past --max-iters {cfg.max_iters}: "
                         f"there is nothing to train; give a --max-iters above {state['iter']} to continue it")
    tokenizer = None if start.pretrained is None else start.pretrained.tokenizer
    labels = cfg.model.labels  # a fine-tuned classifier's classes stay its own
    if state is not None and state["data"] is not None and cfg.data == start.saved.data and cfg.data is not None \
            and not Path(cfg.data).exists():  # (the text the run saved, gone: say which it was, exactly)
        raise FileNotFoundError(f"{start.ckpt} was trained on {cfg.data} ({state['data']['size']:,} bytes, SHA-256 "
                                f"{state['data']['sha256']}), which is not there now: give that text with --data PATH "
                                f"(its SHA-256 is checked), or another with --data PATH --allow-data-change")
    dataset = load_dataset(cfg, tokenizer, progress, labels)
    if state is not None:
        check_same_data(state["data"], dataset, allow_data_change, say)
    check_with_data(cfg, dataset, say)  # (fitted to the context: its T is known)
    check_method(cfg, dataset, start)
    T = dataset.sequence_length
    # the model: the settings', with the vocabulary the data needs (a fine-tune's special tokens may add rows to the
    # checkpoint's: load_weights) and a classifier's labels
    vocab_size = max(cfg.model.vocab_size or 0, dataset.vocab_size)
    added = cfg.model.lora_added_tokens  # rows added after those of the model the adapters are on, which an export
    if cfg.model.lora_rank is not None and start.pretrained is not None:  # saves with them (minigpt/peft.py)
        added += vocab_size - start.pretrained.config.vocab_size
    config = replace(cfg.model, vocab_size=vocab_size, labels=dataset.labels,
                     lora_added_tokens=added if cfg.model.lora_rank is not None else 0)
    cfg = replace(cfg, model=config)
    runtime.check_memory(memory_needed(cfg, config, T), "training this model",
                         "make it smaller (--n-layer, --n-embd, --block-size) or the batch (--batch-size)")
    check_eval_iters(cfg, dataset)

    model = GPT(config, seed=cfg.seed, dtype=np.dtype(cfg.dtype), backend=cfg.backend)
    # only what trains has optimizer state: with LoRA, the adapters (and a classifier's head), not the frozen weights
    optimizer = new_optimizer(cfg, model)
    sampler = np.random.default_rng(cfg.seed)  # the training batches, the same sequence on every rank
    if start.pretrained is not None:
        load_weights(model, start.pretrained.weights, start, say)
    it, best_val_loss = 0, None
    if state is not None:
        try:
            optimizer.load_state_dict(checkpoint.read_optimizer(start.ckpt), t=state["optimizer_step"])
        except ValueError as e:
            raise ValueError(f"{start.ckpt / 'optimizer.safetensors'}: {e}") from None
        it, best_val_loss = state["iter"], state["best_val_loss"]
        sampler.bit_generator.state = state["sampler_rng"]
        model.rng.bit_generator.state = state["dropout_rng"]
    dist.broadcast_params(model.params, model.frozen)  # every rank starts from rank 0's weights
    # preference pairs: the reference's log-probabilities, the starting model's (or as the checkpoint saved them)
    dataset.keep_reference(model, None if state is None else state["reference"], resumed=state is not None)
    return Run(cfg, dist, model, optimizer, dataset, objectives.for_run(cfg, dataset), sampler, it, best_val_loss,
               directory, say)


def check_method(cfg: TrainConfig, dataset: Dataset, start: Origin) -> None:
    """--method and the data go together: dpo trains on preference records, rl on instruction records (whose
    completions are the answers its checker compares with), sft on anything else; dpo and rl start from a model."""
    if dataset.kind in PREFERENCE_KINDS and cfg.method != "dpo":
        raise ValueError(f"{dataset.source} holds preference records ({{prompt, chosen, rejected}}), which train with "
                         f"--method dpo")
    if cfg.method == "dpo" and dataset.kind not in PREFERENCE_KINDS:
        raise ValueError(f"--method dpo trains on preference records, {{\"prompt\", \"chosen\", \"rejected\"}} a "
                         f"line; {dataset.source} holds none: give such a .jsonl file with --data")
    if cfg.method == "rl" and dataset.kind not in INSTRUCTION_KINDS:
        raise ValueError(f"--method rl samples completions for instruction records' prompts and rewards those exactly "
                         f"the record's; {dataset.source} holds none: give prompt and completion (or chat) records, or "
                         f"--task add-instruct")
    if cfg.method != "sft" and start.kind == "new":
        raise ValueError(f"--method {cfg.method} improves a model that can already answer: give --init-from a "
                         f"fine-tuned run or checkpoint (minigpt train --method sft first)")


def new_optimizer(cfg: TrainConfig, model: GPT) -> AdamW | MuonAdamW:
    """--optimizer adamw: AdamW for every parameter that trains; muon: Muon for the blocks' matrices (GPT.matrices),
    AdamW for the rest (docs/muon.md)."""
    if cfg.optimizer == "adamw":
        return AdamW(model.trainable(), cfg.weight_decay, cfg.beta1, cfg.beta2, kernels=model.kernels)
    return MuonAdamW(model.trainable(), model.matrices(), cfg.learning_rate, cfg.muon_lr, cfg.muon_momentum,
                     cfg.muon_weight_decay, cfg.weight_decay, cfg.beta1, cfg.beta2, kernels=model.kernels)


def check_with_data(cfg: TrainConfig, dataset: Dataset, say: Callable) -> None:
    """The settings only the data can check (the others: TrainConfig, on construction): the data fits the context
    (records, or --truncate cuts them to; a task's problems; a text's windows), --truncate and --lm-loss-weight are for
    data of their kind; and what the run will measure, or get, that it was not asked for is said."""
    for notice in dataset.fit(cfg.model.block_size, cfg.truncate):
        say(notice)
    if cfg.lm_loss_weight and dataset.labels is None:
        raise ValueError("--lm-loss-weight weighs a classifier's auxiliary language-modelling loss; this run trains a "
                         "language model, whose loss is that alone: drop it, or train on {\"text\", \"label\"} records")
    if cfg.tokenizer == "bpe" and dataset.tokenizer.shortfall(cfg.vocab_size or BPE_VOCAB_SIZE) is not None:
        say(dataset.tokenizer.shortfall(cfg.vocab_size or BPE_VOCAB_SIZE))


EVAL_PASSES = 1000  # the most times over an evaluation may read a split (a text's tokens, records, problems)


def check_eval_iters(cfg: TrainConfig, dataset: Dataset) -> None:
    """Refuse an eval_iters whose batches would read a split more than EVAL_PASSES times over at every evaluation
    (one batch is always allowed, however large --batch-size is): they are drawn at random from the split, so more of
    them only repeat what it holds, and an evaluation (every eval_interval steps) that reads a split thousands of
    times can take longer than the training itself."""
    smaller = min(("val", "train"), key=lambda split: dataset.split_size(split)[0])  # (the one read most)
    held, what, per_row = dataset.split_size(smaller)  # (a text's row reads T tokens; a record or a problem, one)
    most = max(1, EVAL_PASSES * held // (cfg.batch_size * per_row))  # (one batch at least, however large)
    if held and cfg.eval_iters > most:
        read = cfg.eval_iters * cfg.batch_size * per_row
        raise ValueError(f"--eval-iters {cfg.eval_iters} would read the {smaller} split ({held:,} {what}) "
                         f"{read / held:,.0f} times over at every evaluation, where {EVAL_PASSES:,} times is plenty: "
                         f"give --eval-iters {most} or fewer")


def check_same_data(saved: dict | None, dataset: Dataset, allow_data_change: bool, say: Callable) -> None:
    """A resumed run trains on the text it was trained on (its size and SHA-256), unless allow_data_change."""
    data = dataset.identity
    if saved is None or saved == data:
        return
    if not allow_data_change:
        raise ValueError(
            f"the data is not the text this run was trained on ({saved['size']:,} bytes, SHA-256 "
            f"{saved['sha256'][:12]}... then; {data['size']:,} bytes, {data['sha256'][:12]}... now, in "
            f"{dataset.source}); give the same file, or --allow-data-change to go on with this one")
    say(f"continuing on another text, {dataset.source}, as --allow-data-change asks")


def load_weights(model: GPT, weights: dict, start: Origin, say: Callable) -> None:
    """The origin's weights into the model: a fine-tune's in the run's dtype, its context cut to block_size (the first
    rows of GPT-2's wpe, as nanoGPT's crop_block_size)."""
    if start.kind == "fine-tune":
        weights = {name: p.astype(model.dtype) for name, p in weights.items()}
        if "transformer.wpe.weight" in weights:  # GPT-2's table of positions (rotary embeddings have none)
            weights["transformer.wpe.weight"] = weights["transformer.wpe.weight"][:model.config.block_size].copy()
        for name in (model.family.WTE, HEAD):  # special tokens added for fine-tuning: new rows, each the mean row
            if name in weights and len(weights[name]) < model.config.vocab_size:
                old = weights[name]
                new = np.repeat(old.mean(axis=0, keepdims=True), model.config.vocab_size - len(old), axis=0)
                weights[name] = np.concatenate([old, new])  # (V, C)
                say(f"{name}: {len(new)} rows added for the special tokens of fine-tuning, each the mean of the others")
        if SCORE in model.params and SCORE not in weights:  # a new classifier's head keeps its initialisation
            weights[SCORE] = model.params[SCORE]
        for name in model.params:  # LoRA's new adapters keep their initialisation (B = 0: the model unchanged)
            if lora.is_adapter(name) and name not in weights:
                weights[name] = model.params[name]
        if SCORE not in model.params and weights.pop(SCORE, None) is not None:
            say(f"{start.ckpt} is a classifier; its head is left out, and its language model fine-tuned")
    try:
        model.load_state_dict(weights)
    except ValueError as e:
        raise ValueError(f"{start.ckpt}: {e}") from None
    if start.kind == "fine-tune":
        say(f"starting from the weights of {start.ckpt}")
