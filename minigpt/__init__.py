"""minigpt: a minimal, autograd-free GPT-2 in NumPy, with every layer's backward written by hand."""

from minigpt.threads import quiet_idle_threads

quiet_idle_threads()  # before NumPy loads OpenBLAS: see minigpt/threads.py

from minigpt.config import GPTConfig  # noqa: E402
from minigpt.data.bpe import BPETokenizer  # noqa: E402
from minigpt.model import GPT  # noqa: E402

__all__ = ["BPETokenizer", "GPT", "GPTConfig"]
__version__ = "0.1.0"
