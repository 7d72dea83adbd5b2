"""Model configuration: a frozen dataclass validated on construction."""

from dataclasses import dataclass, fields


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
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}) "
                f"so that every head gets n_embd / n_head channels"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be a number in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"GPTConfig.bias must be true or false, got {self.bias!r}")

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
