"""minigpt: a minimal, autograd-free GPT-2 in NumPy, with every layer's backward written by hand.

Importing it changes nothing in the process; `minigpt.runtime.configure()` applies the settings that make it
fast (threads, memory), as the `minigpt` command does.
"""

from minigpt.config import GPTConfig
from minigpt.data.bpe import BPETokenizer
from minigpt.model import GPT

__all__ = ["BPETokenizer", "GPT", "GPTConfig"]
__version__ = "0.1.0"
