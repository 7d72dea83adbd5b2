"""Ctrl-C (SIGINT), and the other stops a run can be sent: SIGTERM (kill, docker stop, systemd, a scheduler's
preemption) and SIGHUP (a closed terminal or SSH session). One mechanism for the whole of a command: a handler that
remembers the signal, and the places that look. Each is handled as a Ctrl-C (train saves a checkpoint at the step it
is in), and the command ends with the conventional status 128 + the signal's number: 130, 143, 129 (exit_status).

    with interrupt.handled():           # the `minigpt` command, for its whole length (minigpt/cli)
        ...                             # a Ctrl-C raises KeyboardInterrupt, as Python's own handler does
        interrupt.check()               # and stops the command here if its KeyboardInterrupt was lost
        with interrupt.deferred():      # the training loop (minigpt/train.py): a Ctrl-C only makes requested() true;
            ...                         # the step finishes and a checkpoint is saved; a second Ctrl-C raises at once
            with interrupt.shielded():  # a checkpoint's save, an export's last renames: no signal cuts it short;
                ...                     # one that comes is remembered, and acted on when the block ends
            with interrupt.abandonable(0.5):  # an evaluation changes nothing: a Ctrl-C lets it end within 0.5 s,
                ...                           # then its next check() abandons it (Abandoned)

Remembering is what makes it reliable. A KeyboardInterrupt can be lost: swallowed by a library's bare `except:`
during an import (then a run would train on for minutes), or raised where Python cannot raise it, in a weakref
callback of the import lock or a __del__ (Python prints it as "Exception ignored" with a traceback, and goes on).
requested() still says a Ctrl-C came: check() raises it again where the command looks (after its imports, before
the training loop, and at every turn of a long loop: a batch evaluated, a token generated, a BPE merge), and an error
that a Ctrl-C caused (NumPy turns one inside its import into an ImportError) is reported as the interruption it is.
The handler only runs on the main thread; elsewhere Python's is left alone.
Tests: tests/test_cli.py, tests/test_train.py and tests/test_faults.py (a stop by each signal, then --resume; a
second one during the save), tests/test_checkpoint.py, tests/test_distributed.py (a signal to one rank),
tests/test_stops.py (a stop during a long phase: an evaluation, BPE training, sampling).
"""

import signal
import sys
import threading
import time
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # every catchable stop; each is handled as a Ctrl-C
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}

_requested = False  # a Ctrl-C (or SIGTERM, SIGHUP) came during the current command (or deferred block)
_signal = signal.SIGINT  # the first that came
_deferring = False  # inside deferred(): the first Ctrl-C only sets _requested
_shielding = 0  # shielded() blocks open: no Ctrl-C raises inside them
_commands = 0  # handled() blocks open: they own _requested, which deferred() alone would reset
_when = 0.0  # time.monotonic() when the first came
_grace = None  # inside abandonable(): the seconds after a stop that the block may run on


class Interrupted(Exception):
    """A run stopped by Ctrl-C (or SIGTERM, SIGHUP) after saving a checkpoint to resume from (minigpt/train.py)."""


class Diverged(FloatingPointError):
    """A run stopped because its numbers stopped being finite; nothing of the step that found it is saved."""


def requested() -> bool:
    """Whether a Ctrl-C came since the command (or the deferred block) began."""
    return _requested


def received() -> list:
    """For each of SIGNALS, 1.0 if it is the one that came, else 0.0: what the ranks of a data-parallel run sum in
    their all-reduce, so that a signal to any one rank stops all of them at the same step (minigpt/train.py)."""
    return [float(_requested and s == _signal) for s in SIGNALS]


def agree(counts) -> bool:
    """After the all-reduce of received(): whether any rank got a signal; if one did, this rank takes it as its own,
    for its message and exit status (should two ranks get two different ones: the first in SIGNALS' order, on every
    rank alike)."""
    global _requested, _signal, _when
    for s, count in zip(SIGNALS, counts):
        if count:
            if not _requested:
                _when = time.monotonic()
            _requested, _signal = True, s
            return True
    return False


def exit_status() -> int:
    """The command's exit status after the stop: 128 + the signal's number (130 for a Ctrl-C)."""
    return 128 + int(_signal)


def name() -> str:
    """What stopped the command, as its message says it: Ctrl-C, SIGTERM or SIGHUP."""
    return NAMES[_signal]


def check() -> None:
    """Stop here if a Ctrl-C (SIGTERM, SIGHUP) came and this is where it acts: outside deferred(), with a
    KeyboardInterrupt (the one the signal raised was lost, or the command looks before it begins a long phase); inside
    abandonable(), with Abandoned once the block's grace is over; elsewhere in deferred(), not here (the training loop
    stops at the end of its step). Every long loop calls it at each turn (a batch, a token, a merge): a
    KeyboardInterrupt raised inside a garbage collector's callback or a __del__ is lost, and the loop would go on."""
    if not _requested:
        return
    if not _deferring:
        raise KeyboardInterrupt
    if _grace is not None and time.monotonic() >= _when + _grace:
        raise Abandoned


def _handle(signum, frame):
    global _requested, _signal, _when
    first = not _requested
    if first:
        _signal, _when = signal.Signals(signum), time.monotonic()
    _requested = True
    if not (_shielding or (_deferring and first)):
        raise KeyboardInterrupt


def _quiet(unraisable) -> None:
    """sys.unraisablehook: a KeyboardInterrupt Python could not raise is already remembered; anything else is
    printed as Python prints it."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def _install():
    """Put the handler in place (on the main thread); return what it replaced, for _restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {s: signal.signal(s, _handle) for s in SIGNALS}


def _restore(previous) -> None:
    if previous is not None:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def handled():
    """For the length of a command: a Ctrl-C raises KeyboardInterrupt and is remembered (requested()); a
    KeyboardInterrupt Python cannot raise is not printed."""
    global _requested, _commands, _signal
    _requested, _signal = False, signal.SIGINT
    _commands += 1
    previous = _install()
    previous_hook, sys.unraisablehook = sys.unraisablehook, _quiet
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        _restore(previous)
        _commands -= 1
        _requested = False


@contextmanager
def shielded():
    """For a write that must finish once begun (a checkpoint's save, the renames that put an export in place): a
    Ctrl-C (SIGTERM, SIGHUP), first or second, that comes inside the block only makes requested() true. When the
    block ends, inside deferred() the training loop stops at its step as usual; elsewhere KeyboardInterrupt is raised
    then. (kill -9 still ends it anywhere: the write protocols are what keep their files whole through that.)"""
    global _shielding
    _shielding += 1
    try:
        yield
    finally:
        _shielding -= 1
    if not _deferring:
        check()


class Abandoned(KeyboardInterrupt):
    """What ends a block that a stop abandoned (abandonable)."""


@contextmanager
def abandonable(grace: float):
    """Inside deferred(), for a block that changes nothing the run keeps (an evaluation), so that a stop need not wait
    for all of it: after a stop (the first Ctrl-C, SIGTERM, SIGHUP), whether it came in the block or before it, the
    block runs on until `grace` seconds after the stop, time to end if it nearly has; then its next check() raises
    Abandoned. The caller catches Abandoned and goes on to the stop (the training loop saves its step's checkpoint
    without the evaluation, minigpt/train.py); requested() stays true. A second stop raises KeyboardInterrupt at once,
    as anywhere in deferred()."""
    global _grace
    previous, _grace = _grace, grace
    try:
        check()  # (a stop that came before the block, longer ago than its grace)
        yield
    finally:
        _grace = previous


@contextmanager
def deferred():
    """For the training loop: the first Ctrl-C only makes requested() true, for the loop to stop at the end of its
    step; a second one raises KeyboardInterrupt at once. A Ctrl-C that came before (its KeyboardInterrupt lost)
    stops it before it begins."""
    global _requested, _deferring
    previous = _install()
    try:
        check()
        _deferring = True
        yield
    finally:
        _deferring = False
        _restore(previous)
        if not _commands:  # the Python API, outside a command: the next run starts afresh
            _requested = False
