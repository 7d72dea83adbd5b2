"""Model and training configuration: frozen dataclasses validated on construction.

This module sits at the bottom of minigpt and imports none of it: the names of the backends and tasks a setting may
choose are listed here, and the registry (minigpt/backends) and the tasks (minigpt/data/tasks.py) provide exactly
those (tests/test_layout.py checks that they agree).
"""

import math
import types
from dataclasses import Field, dataclass, field, fields

BACKENDS = ("numpy", "numba", "c", "auto")  # how the ops are computed (minigpt/backends); auto: the fastest that loads
QUANTIZATIONS = ("q8_0",)  # how a model for inference can hold its linears' weights (GPT.quantize, --quantize)
# the applications, tasks on real text shipped as records (minigpt/applications/tasks.py), which `minigpt eval --task`
# also scores by the field's metrics
APPLICATIONS = ("docstring-summary", "bible-translation", "wordnet-qa", "wordnet-category")
TASK_NAMES = ("sort", "add", "sort-instruct", "add-instruct", "shakespeare-speakers", "shakespeare-instruct",
              *APPLICATIONS)  # the built-in synthetic tasks (minigpt/data/tasks.py), the fine-tuning tasks made as
# records (minigpt/data/record_tasks.py), and the applications
TOKENIZERS = ("char", "bpe")
DTYPES = ("float32", "float64")


OPTIMIZERS = ("adamw", "muon")  # adamw for every parameter; muon for the blocks' matrices, adamw for the rest
# what a step minimises (minigpt/objectives.py): the targets' cross-entropy; DPO on preference pairs; the policy
# gradient on sampled completions rewarded by a checker
METHODS = ("sft", "dpo", "rl")
ADVANTAGES = ("leave-one-out", "grpo")  # rl's advantage within a group: unbiased, or GRPO's normalised one
PRESET_NAMES = ("speedrun", "base")  # named sets of settings for `minigpt train --preset` (minigpt/settings.py)
ARCHS = ("gpt2", "llama", "qwen3")  # the families of blocks minigpt builds (minigpt/gpt2.py, minigpt/llama.py)
ROPE_SCALING_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a model: GPT-2 (the default, GPT-2 small's 124M parameters), or the Llama and Qwen 3 families. The
    fields left None take their family's value on construction (below), so a config always says everything.

    >>> cfg = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    >>> cfg.head_dim, cfg.n_kv_head, cfg.intermediate_size, cfg.bias  # hs, GPT-2's 4C MLP, its biases
    (32, 4, 512, True)
    >>> GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, arch="llama", n_kv_head=2).bias
    False
    """

    vocab_size: int | None = 50257  # V; None: not known yet, a run's model until its data is read (minigpt/run.py)
    block_size: int = 1024  # the longest sequence the model accepts (gpt2: the number of rows of wpe)
    n_layer: int = 12  # L
    n_head: int = 12  # nh, the query heads
    n_embd: int = 768  # C
    dropout: float = 0.0  # probability of zeroing an activation while training
    bias: bool | None = None  # biases in the linears and norms: gpt2 True (False drops them, as nanoGPT allows); none
    # in llama and qwen3
    arch: str = "gpt2"  # which block: "gpt2"; "llama" (RMSNorm, rotary embeddings, SwiGLU, grouped-query attention);
    # "qwen3" (llama's, with QK-norm)
    n_kv_head: int | None = None  # key/value heads, dividing n_head (grouped-query attention; 1: multi-query); None: nh
    head_dim: int | None = None  # hs; None: n_embd / n_head (qwen3's configs give theirs: it need not be C / nh)
    intermediate_size: int | None = None  # the MLP's hidden width: gpt2 4C; llama and qwen3 by default 8C/3, rounded
    # to a multiple of 8 (SwiGLU's three matrices hold as many numbers as GPT-2's two)
    norm_eps: float | None = None  # gpt2's layer norm 1e-5; llama's and qwen3's RMSNorm by default 1e-6
    rope_theta: float | None = None  # llama and qwen3: the rotary embeddings' base, by default 10000
    rope_scaling: dict | None = None  # llama: Llama 3's {"rope_type": "llama3", "factor", "low_freq_factor",
    # "high_freq_factor", "original_max_position_embeddings"}, or None
    tie_word_embeddings: bool | None = None  # the LM head is the token embedding transposed (gpt2 always); False: a
    # head of its own, lm_head.weight (V, C); llama and qwen3 by default False
    lora_rank: int | None = None  # LoRA: adapters of this rank r on the lora_targets of every block, the other
    # weights frozen (minigpt/lora.py); None: none
    lora_alpha: float | None = None  # LoRA's alpha: the update is (alpha / r) B A; None: PEFT's default, 8
    lora_dropout: float = 0.0  # dropout on the adapters' input, while training
    lora_targets: str | None = None  # "attention" (the default), "mlp", "all", or module names: "c_attn,c_proj"
    lora_added_tokens: int = 0  # the last rows of the embedding (and of an untied head) that the fine-tune added for
    # its special tokens after the rows of the model the adapters were put on: saved with the adapters, as PEFT saves
    # the embedding layers of a model whose vocabulary grew (minigpt/peft.py, save_peft)
    labels: tuple | None = None  # a classifier's label names, in order: its head score.weight (K, C), K of them, on the
    # last token's hidden state (Hugging Face's *ForSequenceClassification, id2label); None: a language model only

    def __post_init__(self):
        if isinstance(self.labels, list):  # (JSON has no tuples)
            object.__setattr__(self, "labels", tuple(self.labels))
        check_fields(self)  # each value's type and range (RULES, below)
        if self.labels is not None and (len(self.labels) < 2 or not all(isinstance(x, str) for x in self.labels)
                                        or len(set(self.labels)) != len(self.labels)):
            raise SettingError("labels", f"must be two or more distinct names, got {self.labels!r:.80}")
        self.resolve_lora()
        if self.arch == "gpt2":
            self.resolve_gpt2()
        else:
            self.resolve_llama()

    def resolve_lora(self) -> None:
        if self.lora_rank is None:
            if self.lora_alpha is not None or self.lora_targets is not None or self.lora_dropout or self.lora_added_tokens:
                raise ValueError("lora_alpha, lora_targets, lora_dropout and lora_added_tokens are LoRA's: give "
                                 "lora_rank too")
            return
        if self.vocab_size is not None and self.lora_added_tokens >= self.vocab_size:
            raise SettingError("lora_added_tokens", f"must be below vocab_size {self.vocab_size}, got "
                                                    f"{self.lora_added_tokens}")
        object.__setattr__(self, "lora_alpha", 8.0 if self.lora_alpha is None else self.lora_alpha)  # PEFT's default
        object.__setattr__(self, "lora_targets", self.lora_targets or "attention")

    def resolve_gpt2(self) -> None:
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}) "
                             f"so that every head gets n_embd / n_head channels")
        fixed = {"n_kv_head": self.n_head, "head_dim": self.n_embd // self.n_head, "intermediate_size": 4 * self.n_embd,
                 "norm_eps": 1e-5, "tie_word_embeddings": True}
        for name, value in fixed.items():  # GPT-2's block has these, and no choice
            if getattr(self, name) is not None and getattr(self, name) != value:
                raise ValueError(f"GPT-2 has {name} {value} here; another {name} ({getattr(self, name)}) needs "
                                 f"arch llama or qwen3")
            object.__setattr__(self, name, value)
        for name in ("rope_theta", "rope_scaling"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name} is a setting of rotary embeddings (arch llama or qwen3); GPT-2 learns a "
                                 f"table of positions")
        object.__setattr__(self, "bias", True if self.bias is None else self.bias)

    def resolve_llama(self) -> None:
        if self.bias:
            raise ValueError(f"{self.arch} has no biases: leave bias out, or give bias false")
        if self.n_embd % self.n_head and (self.arch == "llama" or self.head_dim is None):
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})"
                             + (" (transformers' LlamaConfig requires it)" if self.arch == "llama" else
                                ", or give head_dim (qwen3's heads need not add up to n_embd)"))
        head_dim = self.n_embd // self.n_head if self.head_dim is None else self.head_dim
        if head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary embeddings (they turn pairs of channels), got {head_dim}")
        n_kv_head = self.n_head if self.n_kv_head is None else self.n_kv_head
        if self.n_head % n_kv_head:
            raise ValueError(f"n_kv_head ({n_kv_head}) must divide n_head ({self.n_head}): each key/value head "
                             f"serves a group of query heads")
        if self.rope_scaling is not None:
            check_rope_scaling(self.rope_scaling)
        defaults = {"bias": False, "head_dim": head_dim, "n_kv_head": n_kv_head,
                    "intermediate_size": -(-8 * self.n_embd // 3 // 8) * 8, "norm_eps": 1e-6, "rope_theta": 10000.0,
                    "tie_word_embeddings": False}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @property
    def num_labels(self) -> int | None:
        """K, a classifier's number of classes; None for a language model."""
        return None if self.labels is None else len(self.labels)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        """Build a config from a plain dict (a JSON or TOML table), rejecting unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config key {unknown[0]!r}; known keys are {', '.join(sorted(known))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def check_rope_scaling(scaling) -> None:
    """Llama 3's rope_scaling, the one type of rotary scaling minigpt implements (minigpt/ops/rope.py)."""
    if not isinstance(scaling, dict) or scaling.get("rope_type", scaling.get("type")) != "llama3":
        raise ValueError(f"rope_scaling must be Llama 3's, {{\"rope_type\": \"llama3\", ...}}, got {scaling!r:.80}; "
                         f"minigpt implements that type of rotary scaling only")
    for key in ROPE_SCALING_KEYS:
        value = scaling.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"rope_scaling's {key} must be a positive number, got {value!r}")
    if scaling["high_freq_factor"] <= scaling["low_freq_factor"]:
        raise ValueError("rope_scaling's high_freq_factor must be larger than its low_freq_factor")


def field_kind(f: Field) -> tuple[type, bool]:
    """The base type of a config field and whether it may be None: `int | None` -> (int, True)."""
    if isinstance(f.type, types.UnionType):
        base = next(t for t in f.type.__args__ if t is not type(None))
        return base, type(None) in f.type.__args__
    return f.type, False


# The model of a run, as the settings give it: GPTConfig's fields, but those that the data and the checkpoint a run
# starts from set (the vocabulary, a classifier's labels, the rows a LoRA fine-tune adds, Llama 3's rope_scaling).
# A flag, a config file's key and a saved train_config.json name them as TrainConfig's own settings are named.
SET_BY_THE_RUN = ("vocab_size", "labels", "lora_added_tokens", "rope_scaling")
MODEL_SETTINGS = tuple(f.name for f in fields(GPTConfig) if f.name not in SET_BY_THE_RUN)
RECIPE_MODEL = dict(n_layer=4, n_head=4, n_embd=128, block_size=64)  # nanoGPT's Shakespeare CPU recipe's model, where
# GPTConfig's defaults are GPT-2 small's
# What a run changes of the model it starts from: a resumed run, the dropout alone; a fine-tune also its adapters (which
# may be added, or left off) and a shorter context (whose first rows of wpe are kept)
CHANGES_ON_RESUME = ("dropout",)
CHANGES_ON_FINE_TUNE = ("dropout", "block_size", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets")
# What else a resumed run cannot change, because its checkpoint was made with it. (The data file may move, but not
# change: its size and SHA-256 are saved with the run and compared, minigpt/run.py.)
FIXED_ON_RESUME = ("task", "tokenizer", "vocab_size", "dtype", "seed", "optimizer", "method")


def recipe_model(**settings) -> GPTConfig:
    """A new run's model: the recipe's shape under `settings` (the model's, MODEL_SETTINGS), its vocabulary to come."""
    return GPTConfig(vocab_size=None, **{**RECIPE_MODEL, **settings})


@dataclass(frozen=True)
class TrainConfig:
    """Everything `minigpt train` needs: the model (a GPTConfig, whose vocab_size the data sets) and how to train it.
    Defaults are nanoGPT's published CPU recipe for Tiny Shakespeare (char-level): `minigpt train` with no flags reaches
    a validation loss of about 1.91 in 2000 iterations. Every setting is also a command-line flag spelled with dashes
    (`--max-iters`), TrainConfig's fields and the model's (MODEL_SETTINGS: `--n-layer`) alike; a config file's keys and
    a checkpoint's train_config.json name them the same way, in one flat table (from_dict, to_dict)."""

    # data
    data: str | None = None  # a text file; None: Tiny Shakespeare (found or downloaded, see minigpt/data/text.py)
    task: str | None = None  # a built-in task instead of a text file: "sort" or "add"; or records to fine-tune on,
    # "sort-instruct", "add-instruct", "shakespeare-speakers", "shakespeare-instruct" (minigpt/data/record_tasks.py),
    # or an application's (APPLICATIONS: minigpt/applications/tasks.py)
    corpus: str | None = None  # a corpus tokenized by `minigpt data tokenize` instead of a text file: its name (the
    # cache's corpora/NAME) or, a path with a "/", its directory; the model's tokenizer is the corpus's
    # (minigpt/data/tokens.py)
    out_dir: str = "out"  # checkpoints and log.jsonl go here
    tokenizer: str = "char"  # "char": the text's characters; "bpe": byte-level BPE trained on the text;
    # or a directory holding a tokenizer (minigpt tokenizer train, or GPT-2's vocab.json and merges.txt)
    vocab_size: int | None = None  # with tokenizer "bpe": the size of the vocabulary to train (default 512), which
    # becomes the model's
    truncate: bool = False  # records longer than the context: refused (False), or cut to fit and, where nothing to
    # learn is left, dropped (minigpt/data/records.py, Records.fit)
    # the model: arch picks the family (gpt2, llama or qwen3), and what the settings leave out takes its values
    model: GPTConfig = field(default_factory=recipe_model)
    # optimisation: AdamW, linear warmup then cosine decay to min_lr, global-norm gradient clipping
    batch_size: int = 12
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step; the batch is batch_size x this
    max_iters: int = 2000  # optimizer steps
    learning_rate: float = 1e-3
    min_lr: float | None = None  # where the cosine ends; None: learning_rate / 10, as nanoGPT's recipes set it
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # where the cosine reaches min_lr; None: max_iters
    decay_lr: bool = True  # False: constant learning_rate after warmup
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 disables clipping
    optimizer: str = "adamw"  # "muon": Muon for the blocks' weight matrices, AdamW (the settings above) for the rest
    # (embeddings, the head, norms' gains, biases): minigpt/muon.py, docs/muon.md
    muon_lr: float = 0.02  # Muon's peak learning rate, scaled by the schedule as learning_rate is (Keller Jordan's
    # and nanochat's 0.02: an orthogonalised update has RMS about 1 / sqrt(in), so its rate is not AdamW's)
    muon_momentum: float = 0.95  # Muon's (Nesterov) momentum: modded-nanogpt's, nanochat's and torch's
    muon_weight_decay: float = 0.0  # Muon's decoupled weight decay, times muon_lr (Keller Jordan's default: none)
    lm_loss_weight: float = 0.0  # classification: the weight of the auxiliary language-modelling loss (GPT: 0.5)
    # what a step minimises (minigpt/objectives.py, docs/preference.md): "sft", the targets' cross-entropy; "dpo",
    # direct preference optimisation on {"prompt", "chosen", "rejected"} records; "rl", the policy gradient on
    # completions the model samples for instruction records' prompts, rewarded 1 where exactly the record's
    method: str = "sft"
    dpo_beta: float = 0.1  # dpo: how far from the reference the model may move (TRL's default)
    rpo_alpha: float = 0.0  # dpo: the weight of the chosen completions' cross-entropy added to DPO's loss (RPO, Pang
    # et al., 2024; TRL's rpo_alpha): it keeps the chosen answers likely, where DPO alone can lower them too
    rl_group: int = 8  # rl: completions sampled per prompt, each the others' baseline
    rl_temperature: float = 1.0  # rl: the sampling temperature (1: the policy itself, as the gradient assumes)
    rl_advantage: str = "leave-one-out"  # rl: r - the mean of the others' rewards (unbiased), or "grpo":
    # (r - mean) / std
    # evaluation and logging
    eval_interval: int = 250  # evaluate and checkpoint every this many steps, and after the last one
    eval_iters: int = 200  # batches per split in each evaluation
    target_loss: float | None = None  # stop, with a checkpoint, at the first evaluation whose val loss is at most this
    log_interval: int = 1  # write a line to log.jsonl every this many steps
    log_stats: bool = False  # at each evaluation, log each parameter's update-to-weight and gradient-to-weight ratios
    # the run
    preset: str | None = None  # "speedrun": the CPU speedrun's record (docs/speedrun.md); "base": the base model
    # pretrained on the english corpus (docs/pretraining.md); under the flags
    seed: int = 1337
    dtype: str = "float32"
    backend: str = "auto"  # numpy (the reference), numba, c, or auto: the fastest available (docs/kernels.md)
    threads: int | None = None  # for BLAS, numba and OpenMP together; None: the free cores (runtime.default_threads)
    init_from: str | None = None  # start from the weights of a checkpoint (fine-tuning)
    resume: bool = False  # continue the run found in out_dir

    def __post_init__(self):
        check_fields(self)  # each value's type and range (RULES, below); the model's were checked as it was built
        # settings that do not go together: each error names the flags (a config file's keys are the same names)
        if self.vocab_size is not None and self.vocab_size < 257:
            raise SettingError("vocab_size", f"must be at least 257 (the 256 bytes and <|endoftext|>), got "
                                             f"{self.vocab_size}")
        if self.lr_decay_iters is not None and self.lr_decay_iters <= self.warmup_iters:
            raise ValueError(f"--lr-decay-iters ({self.lr_decay_iters}) must be larger than --warmup-iters "
                             f"({self.warmup_iters}): the cosine decay starts where the warmup ends")
        if self.min_lr is None:
            object.__setattr__(self, "min_lr", self.learning_rate / 10)
        elif self.decay_lr and self.min_lr > self.learning_rate:  # the "decay" would raise the rate, step after step
            raise ValueError(f"--min-lr ({self.min_lr:g}) is above --learning-rate ({self.learning_rate:g}), so the "
                             f"cosine would raise the learning rate instead of lowering it; give a --min-lr at most "
                             f"--learning-rate (or leave it out: a tenth of it)")
        if self.task is not None and self.data is not None and not self.task.startswith("shakespeare"):
            raise ValueError("give either data (a text file) or task, not both")
        if self.corpus is not None and (self.data is not None or self.task is not None):
            raise ValueError(f"give one of corpus (a tokenized corpus), data (a text file) and task, not "
                             f"{'data' if self.data is not None else 'task'} too")
        if self.corpus is not None and self.tokenizer == "bpe":
            raise ValueError("a corpus's tokens were made by its own tokenizer, which the model takes: drop --tokenizer "
                             "bpe (or give that tokenizer's directory, which is checked against it)")
        if self.tokenizer != "char" and self.task in ("sort", "add"):
            raise ValueError(f"the {self.task} task has its own vocabulary of digits; drop --tokenizer")
        if self.vocab_size is not None and self.tokenizer != "bpe":
            raise ValueError("vocab_size is the size of a BPE vocabulary: give it with --tokenizer bpe")
        if self.optimizer == "muon" and self.model.lora_rank is not None:
            raise ValueError("--optimizer muon orthogonalises whole weight matrices, and LoRA trains low-rank adapters "
                             "instead: drop --optimizer muon (LoRA trains with adamw) or --lora-rank")
        if self.method != "sft" and self.task in ("sort", "add"):
            raise ValueError(f"--method {self.method} trains on records; the {self.task} task is sequences: give "
                             f"--task {self.task}-instruct (its records)" + (", with --method rl" if self.method == "dpo"
                                                                            else ""))
        if self.rl_group < 2:
            raise SettingError("rl_group", f"must be at least 2 (each completion's baseline is the others'), got "
                                           f"{self.rl_group}")
        if self.resume and self.init_from is not None:
            raise ValueError("resume continues a run and init_from starts a new one from saved weights: give one of them")

    def notices(self) -> list[str]:
        """Settings that go together but may not do what was meant: said when a run starts (minigpt/run.py), not
        refused (a run of a few steps to try something is one)."""
        said = []
        if self.warmup_iters >= self.max_iters:
            said.append(f"--warmup-iters {self.warmup_iters} is not below --max-iters {self.max_iters}: the run ends "
                        f"during the warmup, before the learning rate reaches --learning-rate {self.learning_rate:g}")
        return said

    @property
    def decay_iters(self) -> int:
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters

    @classmethod
    def check_keys(cls, d: dict, source: str = "config") -> None:
        """Reject keys that are no setting (SETTINGS), by name."""
        for key in d:
            if key not in SETTINGS:
                close = [k for k in SETTINGS if k.replace("_", "") == key.replace("_", "").replace("-", "")]
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown {source} key {key!r}{hint} (see `minigpt train --help` for the keys)")

    @classmethod
    def from_dict(cls, d: dict, source: str = "config", model: GPTConfig | None = None) -> "TrainConfig":
        """Build from one flat table of settings (a TOML file, the flags, a checkpoint's train_config.json), rejecting
        unknown keys by name: the model's keys give a new model of the recipe's shape, or, with `model` (the one a
        checkpoint holds, whole), are that model's and are not read."""
        cls.check_keys(d, source)
        own = {key: value for key, value in d.items() if key not in MODEL_SETTINGS}
        if model is None:
            model = recipe_model(**{key: value for key, value in d.items() if key in MODEL_SETTINGS})
        return cls(model=model, **own)

    def to_dict(self) -> dict:
        """The flat table from_dict reads: TrainConfig's own settings and the model's."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        return {**own, **{key: getattr(self.model, key) for key in MODEL_SETTINGS}}


# Every setting's name, in one flat table: the flags, a config file's keys, a checkpoint's train_config.json (the
# model's in the place of TrainConfig's field `model`)
SETTINGS = tuple(name for f in fields(TrainConfig) for name in (MODEL_SETTINGS if f.name == "model" else (f.name,)))


def setting_field(name: str) -> Field:
    """The dataclass field that holds setting `name`: TrainConfig's, or the model's (GPTConfig's)."""
    return (GPTConfig if name in MODEL_SETTINGS else TrainConfig).__dataclass_fields__[name]


class SettingError(ValueError):
    """One setting whose value cannot be: `key` names it, so that whoever merged the settings can say where the value
    came from (a flag, a config file's key, a preset, a resumed run: minigpt/settings.py)."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key} {problem}")
        self.key, self.problem = key, problem


# What each value of GPTConfig and TrainConfig may be beyond its type; checked as either is built, whatever the value's
# source (default, preset, file, flag, a saved run, a Hugging Face config), so that a NaN learning rate or a negative
# seed never reaches the loop. The rules of both classes are here, once: a name means one setting.
POSITIVE = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "n_kv_head", "head_dim", "intermediate_size",
            "norm_eps", "rope_theta", "lora_rank", "lora_alpha", "batch_size", "gradient_accumulation_steps",
            "max_iters", "eval_interval", "eval_iters", "log_interval", "learning_rate", "threads", "lr_decay_iters",
            "target_loss", "muon_lr", "dpo_beta", "rl_temperature")
NON_NEGATIVE = ("lora_added_tokens", "warmup_iters", "min_lr", "weight_decay", "grad_clip", "seed", "lm_loss_weight",
                "muon_weight_decay", "rpo_alpha")
FRACTIONS = ("dropout", "lora_dropout", "beta1", "beta2", "muon_momentum")  # in [0, 1)
CHOICES = {"arch": ARCHS, "task": TASK_NAMES, "backend": BACKENDS, "dtype": DTYPES, "preset": PRESET_NAMES,
           "optimizer": OPTIMIZERS, "method": METHODS, "rl_advantage": ADVANTAGES}
MAX_THREADS = 1024  # more threads than that is a typing error, and each one costs memory
WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a table",
         tuple: "a list", GPTConfig: "a GPTConfig"}


def check_fields(config) -> None:
    """Check every field of a GPTConfig or TrainConfig being built (check_field), storing what it returns."""
    for f in fields(config):
        object.__setattr__(config, f.name, check_field(f, getattr(config, f.name)))


def check_field(f: Field, value):
    """A value checked against its field (type, finite, range: RULES above); returns it, a float field's integer as a
    float. A SettingError says what the value must be, naming the field: the merge of the settings
    (minigpt/settings.py) says where it came from (--learning-rate, or a file's key)."""
    kind, optional = field_kind(f)
    if value is None and optional:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # a TOML or JSON 1 for 1.0
    must = f"must be {what(f.name, kind)}"
    # bool is a subclass of int in Python: True must not pass for an integer
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise SettingError(f.name, f"{must}, got {value!r:.60}")
    if kind is float and not math.isfinite(value):
        raise SettingError(f.name, f"must be a finite number, got {value!r}")
    if (f.name in POSITIVE and value <= 0) or (f.name in NON_NEGATIVE and value < 0) \
            or (f.name in FRACTIONS and not 0.0 <= value < 1.0) or (f.name in CHOICES and value not in CHOICES[f.name]):
        raise SettingError(f.name, f"{must}, got {value!r:.60}")
    if f.name == "threads" and value > MAX_THREADS:
        raise SettingError(f.name, f"must be at most {MAX_THREADS}, got {value}")
    if kind is str and ("\0" in value or not value):
        raise SettingError(f.name, f"must be a non-empty string without NUL characters, got {value!r:.60}")
    return value


def what(name: str, kind: type) -> str:
    """What a value of setting `name`, of type `kind`, must be, in words: "a positive integer", "a number in [0, 1)"."""
    if name in CHOICES:
        return f"one of {', '.join(CHOICES[name])}"
    rule = "positive " if name in POSITIVE else "zero or positive " if name in NON_NEGATIVE else ""
    if kind is int:
        return f"a {rule}integer" if rule != "zero or positive " else "an integer, zero or positive"
    if kind is float:
        return "a number in [0, 1)" if name in FRACTIONS else f"a {rule}number" if rule != "zero or positive " \
            else "a number, zero or positive"
    return WORDS[kind]
