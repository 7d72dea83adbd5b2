"""Model and training configuration: frozen dataclasses validated on construction.

This module sits at the bottom of minigpt and imports none of it: the names of the backends and tasks a setting may
choose are listed here, and the registry (minigpt/backends) and the tasks (minigpt/data/tasks.py) provide exactly
those (tests/test_layout.py checks that they agree).
"""

import math
import types
from dataclasses import Field, dataclass, fields

BACKENDS = ("numpy", "numba", "c", "auto")  # how the ops are computed (minigpt/backends); auto: the fastest that loads
TASKS = ("sort", "add")  # the built-in synthetic tasks (minigpt/data/tasks.py)
TOKENIZERS = ("char", "bpe")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT-2 model. Defaults are GPT-2 small (124M parameters).

    >>> cfg = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    >>> cfg.n_embd // cfg.n_head  # hs, the head size
    32
    """

    vocab_size: int = 50257  # V
    block_size: int = 1024  # the longest sequence the model accepts (number of rows of wpe)
    n_layer: int = 12  # L
    n_head: int = 12  # nh
    n_embd: int = 768  # C
    dropout: float = 0.0  # probability of zeroing an activation while training
    bias: bool = True  # False drops every bias (linear and layer norm), as nanoGPT allows

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}) "
                f"so that every head gets n_embd / n_head channels"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be true or false, got {self.bias!r}")

    @property
    def head_size(self) -> int:
        """hs = C / nh, the channels of one attention head."""
        return self.n_embd // self.n_head

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


def field_kind(f: Field) -> tuple[type, bool]:
    """The base type of a config field and whether it may be None: `int | None` -> (int, True)."""
    if isinstance(f.type, types.UnionType):
        base = next(t for t in f.type.__args__ if t is not type(None))
        return base, type(None) in f.type.__args__
    return f.type, False


# The model's shape as a run sets it: GPTConfig's fields but the vocabulary size, which comes from the data, and the
# dropout, a training setting that a resumed or fine-tuning run may change. TrainConfig has a field for each.
MODEL_KEYS = tuple(f.name for f in fields(GPTConfig) if f.name not in ("vocab_size", "dropout"))
# What a resumed run cannot change, because its checkpoint was made with it. (The data file may move, but not change:
# its size and SHA-256 are saved with the run and compared, minigpt/run.py.)
FIXED_ON_RESUME = ("task", "tokenizer", "vocab_size", *MODEL_KEYS, "dtype", "seed")


@dataclass(frozen=True)
class TrainConfig:
    """Everything `minigpt train` needs. Defaults are nanoGPT's published CPU recipe for Tiny Shakespeare
    (char-level): `minigpt train` with no flags reaches a validation loss of about 1.91 in 2000 iterations.
    Every field is also a command-line flag, spelled with dashes (`--max-iters`)."""

    # data
    data: str | None = None  # a text file; None: Tiny Shakespeare (found or downloaded, see minigpt/data/text.py)
    task: str | None = None  # "sort" or "add": a built-in synthetic task instead of a text file
    out_dir: str = "out"  # checkpoints and log.jsonl go here
    tokenizer: str = "char"  # "char": the text's characters; "bpe": byte-level BPE trained on the text;
    # or a directory holding a tokenizer (minigpt tokenizer train, or GPT-2's vocab.json and merges.txt)
    vocab_size: int | None = None  # with tokenizer "bpe": its vocabulary size (default 512)
    # model
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = True
    # optimisation: AdamW, linear warmup then cosine decay to min_lr, global-norm gradient clipping
    batch_size: int = 12
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step; the batch is batch_size x this
    max_iters: int = 2000  # optimizer steps
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # where the cosine reaches min_lr; None: max_iters
    decay_lr: bool = True  # False: constant learning_rate after warmup
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 disables clipping
    # evaluation and logging
    eval_interval: int = 250  # evaluate and checkpoint every this many steps, and after the last one
    eval_iters: int = 200  # batches per split in each evaluation
    log_interval: int = 1  # write a line to log.jsonl every this many steps
    log_stats: bool = False  # at each evaluation, log each parameter's update-to-weight and gradient-to-weight ratios
    # the run
    seed: int = 1337
    dtype: str = "float32"
    backend: str = "auto"  # numpy (the reference), numba, c, or auto: the fastest available (docs/kernels.md)
    threads: int | None = None  # for BLAS, numba and OpenMP together; None: every core
    init_from: str | None = None  # start from the weights of a checkpoint (fine-tuning)
    resume: bool = False  # continue the run found in out_dir

    def __post_init__(self):
        for f in fields(self):
            try:
                object.__setattr__(self, f.name, check_setting(f.name, getattr(self, f.name)))
            except ValueError as e:
                raise ValueError(f"{f.name} {e}") from None
        if self.lr_decay_iters is not None and self.lr_decay_iters <= self.warmup_iters:
            raise ValueError(f"lr_decay_iters ({self.lr_decay_iters}) must be larger than warmup_iters ({self.warmup_iters})")
        if self.task is not None and self.data is not None:
            raise ValueError("give either data (a text file) or task, not both")
        if self.tokenizer != "char" and self.task is not None:
            raise ValueError(f"the {self.task} task has its own vocabulary of digits; drop --tokenizer")
        if self.vocab_size is not None and self.tokenizer != "bpe":
            raise ValueError("vocab_size is the size of a BPE vocabulary: give it with --tokenizer bpe")
        if self.resume and self.init_from is not None:
            raise ValueError("resume continues a run and init_from starts a new one from saved weights: give one of them")
        self.model_config(vocab_size=1)  # n_embd % n_head, dropout range: checked where GPTConfig checks them

    @property
    def decay_iters(self) -> int:
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, dropout=self.dropout, **{key: getattr(self, key) for key in MODEL_KEYS})

    @classmethod
    def check_keys(cls, d: dict, source: str = "config") -> None:
        """Reject keys that are not TrainConfig fields, by name."""
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                close = [k for k in sorted(known) if k.replace("_", "") == key.replace("_", "").replace("-", "")]
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown {source} key {key!r}{hint} (see `minigpt train --help` for the keys)")

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "TrainConfig":
        """Build from a plain dict (a TOML file, saved JSON, or the command line), rejecting unknown keys by name."""
        cls.check_keys(d, source)
        return cls(**d)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# What each TrainConfig value may be beyond its type; checked whatever its source (default, task preset, file, flag,
# a saved run), so that a NaN learning rate or a negative seed never reaches the loop.
POSITIVE = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "gradient_accumulation_steps", "max_iters",
            "eval_interval", "eval_iters", "log_interval", "learning_rate", "threads", "lr_decay_iters")
NON_NEGATIVE = ("warmup_iters", "min_lr", "weight_decay", "grad_clip", "seed")
FRACTIONS = ("dropout", "beta1", "beta2")  # in [0, 1)
CHOICES = {"task": TASKS, "backend": BACKENDS, "dtype": DTYPES}
MAX_THREADS = 1024  # more threads than that is a typing error, and each one costs memory
WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def check_setting(name: str, value):
    """A TrainConfig value checked against its field (type, finite, range); returns it, a float field's integer
    as a float. The error says what the value must be and leaves the naming to the caller, which knows whether
    it came from a flag (--learning-rate) or from a key of a file."""
    kind, optional = field_kind(TrainConfig.__dataclass_fields__[name])
    if value is None and optional:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # a TOML or JSON 1 for 1.0
    # bool is a subclass of int in Python: True must not pass for an integer
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ValueError(f"must be {WORDS[kind]}{' or left out' if optional else ''}, got {value!r:.60}")
    if kind is float and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    if name == "threads" and value > MAX_THREADS:
        raise ValueError(f"must be at most {MAX_THREADS}, got {value}")
    if name in POSITIVE and value <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    if name in NON_NEGATIVE and value < 0:
        raise ValueError(f"must be zero or positive, got {value!r}")
    if name in FRACTIONS and not 0.0 <= value < 1.0:
        raise ValueError(f"must be in [0, 1), got {value!r}")
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"must be one of {', '.join(CHOICES[name])}, got {value!r:.60}")
    if name == "vocab_size" and value < 257:
        raise ValueError(f"must be at least 257 (the 256 bytes and <|endoftext|>), got {value}")
    if kind is str and ("\0" in value or not value):
        raise ValueError(f"must be a non-empty string without NUL characters, got {value!r:.60}")
    return value
