"""minigpt: a minimal, autograd-free GPT-2 in NumPy, with every layer's backward written by hand.

Importing it changes nothing in the process; `minigpt.runtime.configure()` applies the settings that make it
fast (threads, memory), as the `minigpt` command does. `minigpt.GPT`, `minigpt.GPTConfig` and
`minigpt.BPETokenizer` load their modules when first used, so that the command starts with the standard library
alone (and a Ctrl-C during its start-up ends in one line, minigpt/cli.py).
"""

__all__ = ["BPETokenizer", "GPT", "GPTConfig"]
__version__ = "0.1.0"

_WHERE = {"GPT": "minigpt.model", "GPTConfig": "minigpt.config", "BPETokenizer": "minigpt.data.bpe"}


def __getattr__(name):
    import importlib

    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    try:  # a module of the package, e.g. minigpt.runtime after `import minigpt`
        return importlib.import_module(f"minigpt.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"minigpt.{name}":  # the module is there, something it imports is not
            raise
        raise AttributeError(f"module 'minigpt' has no attribute {name!r}") from None
