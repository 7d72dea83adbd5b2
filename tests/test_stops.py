"""A stop (Ctrl-C, SIGTERM, SIGHUP) during a long phase is acted on within about a second: an evaluation inside the
training loop is abandoned (its step's checkpoint is saved, nothing of the evaluation is logged), and so are BPE
training, scoring and sampling, which stop where they are. An --eval-iters that reads a split absurdly many times over
is refused before the run directory is made. The mechanism: minigpt/interrupt.py; docs/runs.md."""

import json
import os
import re
import signal
import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt import interrupt
from minigpt.config import TrainConfig
from minigpt.data.chars import CharTokenizer
from minigpt.data.text import TextDataset
from minigpt.run import EVAL_PASSES, check_eval_iters
from minigpt.train import STOP_GRACE
from helpers import TINY, cli, error_line, make_text, minigpt, read_log, train

# how long after a stop the command must have ended: the evaluation's grace, then a tiny model's checkpoint and the
# exit, on a machine that other work keeps busy
ACTED_ON_WITHIN = STOP_GRACE + 1.5
LONG_EVAL = ["--eval-iters", "20000", "--eval-interval", "2", "--max-iters", "4", "--backend", "numpy",
             "--threads", "1"]  # an evaluation of about a minute at iter 2 (20,000 batches a split)
STATUS = {signal.SIGTERM: 143, signal.SIGINT: 130}


@pytest.fixture
def text(tmp_path):
    return make_text(tmp_path / "text.txt", seed=0)


def wait_for(condition, process, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the command never reached the phase to stop"
        time.sleep(0.005)


def stopped(process, stop) -> tuple[float, str]:
    """Send `stop`; the seconds until the process ended, and its stderr."""
    sent = time.monotonic()
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    return time.monotonic() - sent, stderr


# --- the training loop's evaluation ------------------------------------------------------------------------------

@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_a_long_evaluation_abandons_it_and_saves_the_step(text, tmp_path, stop):
    out = tmp_path / "run"
    process = minigpt("train", "--data", str(text), "--out-dir", str(out), *TINY, *LONG_EVAL, wait=False)
    log = out / "log.jsonl"
    wait_for(lambda: log.is_file() and log.read_text().count("\n") >= 1, process)  # iter 1 logged: iter 2 evaluates
    time.sleep(0.2)  # inside the evaluation (iter 2's step takes milliseconds)
    took, stderr = stopped(process, stop)
    assert process.returncode == STATUS[stop], stderr
    assert took < ACTED_ON_WITHIN, f"acted on {took:.1f} s after the stop"
    said = [line for line in stderr.splitlines() if line.startswith("minigpt")]
    assert len(said) == 1 and " at iter 2; " in said[0] and "without the evaluation of that step" in said[0], stderr
    assert "Traceback" not in stderr
    records = read_log(out)
    assert [r["iter"] for r in records] == [1, 2]
    assert not {"train_loss", "val_loss"} & set(records[1])  # the abandoned evaluation is not logged as one
    assert json.loads((out / "checkpoints.json").read_text())["latest"] == "ckpt-000002"


def test_a_stop_lets_an_evaluation_that_ends_within_its_grace_end(text, tmp_path):
    # SIGTERM as iter 1's line is logged: iter 2, an evaluation step, stops; its short evaluation is made and logged,
    # as an uninterrupted run logs it, so that --resume goes on exactly as that run would
    args = ["--data", str(text), *TINY, "--eval-interval", "2", "--max-iters", "4", "--backend", "numpy"]
    stopped_run = minigpt("train", *args, "--out-dir", str(tmp_path / "run"), fault="log.written@1:SIGTERM")
    assert stopped_run.returncode == 143, stopped_run.stderr
    assert "interrupted by SIGTERM at iter 2; " in stopped_run.stderr and "without" not in stopped_run.stderr
    train(*args, "--out-dir", str(tmp_path / "straight"))
    timeless = lambda records: [{k: v for k, v in r.items() if k != "tokens_per_sec"} for r in records]  # noqa: E731
    assert timeless(read_log(tmp_path / "run")) == timeless(read_log(tmp_path / "straight"))[:2]
    assert "val_loss" in read_log(tmp_path / "run")[1]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_sampling_stops_within_a_second(text, tmp_path, stop):
    train("--data", str(text), "--out-dir", str(tmp_path / "run"), *TINY, "--max-iters", "1", "--backend", "numpy")
    process = minigpt("sample", "--out-dir", str(tmp_path / "run"), "--prompt", "the", "--max-new-tokens", "1000000",
                      "--backend", "numpy", wait=False)
    assert process.stdout.read(10).startswith("the")  # the prompt and 7 tokens: it is generating
    took, stderr = stopped(process, stop)
    assert process.returncode == STATUS[stop], stderr
    assert took < 1.0, f"acted on {took:.1f} s after the stop"


def test_absurd_eval_iters_are_refused_before_the_run_directory_is_made(text, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = cli(capsys, "train", "--data", str(text), "--out-dir", str(out), *TINY, "--eval-iters", "10000000")
    assert code == 1
    error_line(err, "--eval-iters 10000000", "val split", "times over", "give --eval-iters")
    assert not out.exists()


@given(val_tokens=st.integers(20, 5000), block_size=st.integers(1, 16), batch_size=st.integers(1, 64),
       eval_iters=st.integers(1, 10**7))
def test_the_eval_iters_the_refusal_suggests_are_accepted_and_one_more_is_not(val_tokens, block_size, batch_size,
                                                                              eval_iters):
    tokenizer = CharTokenizer("ab")
    dataset = TextDataset(np.zeros(10 * val_tokens, np.uint16), np.zeros(val_tokens, np.uint16), tokenizer,
                          source="made-up.txt")
    cfg = lambda n: TrainConfig.from_dict(dict(block_size=block_size, batch_size=batch_size, eval_iters=n))  # noqa: E731
    dataset.fit(block_size)
    try:
        check_eval_iters(cfg(eval_iters), dataset)
    except ValueError as e:
        suggested = int(re.search(r"give --eval-iters (\d+) or fewer", str(e)).group(1))
        assert suggested < eval_iters
        check_eval_iters(cfg(suggested), dataset)  # accepted
        with pytest.raises(ValueError, match="times over"):
            check_eval_iters(cfg(suggested + 1), dataset)
    else:  # within the bound, or the one batch always allowed
        assert eval_iters * batch_size * block_size <= EVAL_PASSES * val_tokens or eval_iters == 1


# --- interrupt.abandonable: the mechanism -------------------------------------------------------------------------

class Stops:
    """Signals this process sends itself from another thread (a timer), each cancelled if the test ends first: a stop
    must never land after the handler it was meant for is gone."""

    def __init__(self):
        self.timers, self.sent = [], []

    def after(self, seconds: float, stop=signal.SIGTERM) -> None:
        def send():
            self.sent.append(time.monotonic())
            os.kill(os.getpid(), stop)

        timer = threading.Timer(seconds, send)
        self.timers.append(timer)
        timer.start()

    def cancel(self) -> None:
        for timer in self.timers:
            timer.cancel()
            timer.join()


@pytest.fixture
def stops():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run on the main thread only")
    stops = Stops()
    yield stops
    stops.cancel()


def busy(seconds: float) -> None:
    """A long loop, as minigpt's are written: it looks for a stop at every turn."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        interrupt.check()


def test_a_stop_abandons_a_block_after_its_grace(stops):
    with interrupt.deferred():
        stops.after(0.05)
        with pytest.raises(interrupt.Abandoned):
            with interrupt.abandonable(0.3):
                busy(10)
        took = time.monotonic() - stops.sent[0]
        assert interrupt.requested() and interrupt.name() == "SIGTERM"
    assert 0.3 <= took < 1.0


def test_a_block_that_ends_within_its_grace_ends_and_the_stop_is_still_requested(stops):
    with interrupt.deferred():
        stops.after(0.0)
        with interrupt.abandonable(1.0):
            busy(0.2)
        assert interrupt.requested()
        busy(1.2)  # after the block, the stop waits for the end of the step, as anywhere in deferred()


def test_a_stop_that_came_before_the_block_leaves_it_what_is_left_of_its_grace(stops):
    with interrupt.deferred():
        stops.after(0.0)
        busy(0.3)  # the rest of the training step
        with pytest.raises(interrupt.Abandoned):
            with interrupt.abandonable(0.5):
                busy(10)
        took = time.monotonic() - stops.sent[0]
        with pytest.raises(interrupt.Abandoned):  # a block after the grace is over is abandoned as it begins
            with interrupt.abandonable(0.5):
                pass
    assert 0.5 <= took < 1.0


def test_a_second_stop_in_the_block_raises_at_once_and_is_no_abandonment(stops):
    with interrupt.deferred():
        stops.after(0.0)
        stops.after(0.1)
        with pytest.raises(KeyboardInterrupt) as raised:
            with interrupt.abandonable(5.0):
                busy(2.0)
        assert not isinstance(raised.value, interrupt.Abandoned)


# --- phases outside the training loop: a stop whose KeyboardInterrupt was lost still stops them -------------------

def lose_a_stop() -> None:
    """A Ctrl-C that lands in a __del__ (or a garbage collector's callback): Python cannot raise its KeyboardInterrupt
    there and goes on; only interrupt.requested() remembers it."""

    class Finalised:
        def __del__(self):
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # the command's handler, called as the signal would

    Finalised()


def bpe_training(tmp_path):
    from minigpt.data.bpe import BPETokenizer

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=rng.integers(3, 9))) for _ in range(3000)]
    text = " ".join(rng.choice(words, size=20000))
    return lambda: BPETokenizer.train(text, 3000)


def sampling(tmp_path):
    from minigpt.config import GPTConfig
    from minigpt.generate import generate
    from minigpt.model import GPT

    model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=1, n_head=2, n_embd=16), backend="numpy")
    return lambda: generate(model, np.zeros((2, 1), np.int64), 2000, seed=0)


def scoring(tmp_path):
    from minigpt import evaluation
    from minigpt.config import GPTConfig
    from minigpt.data.record_datasets import open_records
    from minigpt.model import GPT

    data = tmp_path / "r.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{n}+{n}=", "completion": str(2 * n)}) + "\n" for n in range(2000)))
    records = open_records(data, None)
    model = GPT(GPTConfig(vocab_size=records.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16), backend="numpy")
    return lambda: evaluation.completion_loss(model, records, records.examples)


@pytest.mark.parametrize("phase", [bpe_training, sampling, scoring])
def test_a_long_phase_stops_for_a_stop_whose_keyboard_interrupt_was_lost(stops, tmp_path, phase, monkeypatch):
    compute = phase(tmp_path)
    with interrupt.handled():
        monkeypatch.setattr("sys.unraisablehook", interrupt._quiet)  # (pytest's own would report the lost one)
        lose_a_stop()
        assert interrupt.requested()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            compute()
        assert time.monotonic() - started < 0.5  # at its first turn, not at its end
