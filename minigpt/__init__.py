"""minigpt: a minimal, autograd-free GPT-2 in NumPy, with every layer's backward written by hand."""

from minigpt.config import GPTConfig
from minigpt.model import GPT

__all__ = ["GPT", "GPTConfig"]
__version__ = "0.1.0"
