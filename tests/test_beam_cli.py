"""--num-beams in `minigpt sample` and `minigpt chat`: the text printed is beam search's (minigpt/beam.py) on the
model the command reads, ended by the model's end token; a sampling flag beside it, or beam search's flags without
it, are refused in one line, before the model is read."""

import io

import numpy as np
import pytest

from minigpt import load
from minigpt.beam import beam_search
from minigpt.chat import prompt_ids
from minigpt.data.records import stop_tokens
from minigpt.data.text import encode_text
from helpers import cli, error_line


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from minigpt.cli import main

    out = tmp_path_factory.mktemp("beams") / "run"
    assert main(["train", "--task", "sort-instruct", "--out-dir", str(out), "--max-iters", "3", "--eval-iters", "1",
                 "--backend", "numpy"]) == 0
    return out


def searched_text(run, idx, max_new_tokens, num_beams, length_penalty=1.0, early_stopping=False) -> str:
    """Beam search's continuation of idx (1, T) through the library, without its end token."""
    pretrained = load.read(str(run), "best")
    tokenizer, model = load.text_tokenizer(pretrained), load.build_model(pretrained, backend="numpy")
    stops = stop_tokens(tokenizer)
    tokens = beam_search(model, idx, max_new_tokens, num_beams, length_penalty, early_stopping, frozenset(stops))
    assert len(stops) > 0
    return tokenizer.decode_bytes([t for t in tokens.tolist() if t not in stops]).decode("utf-8")


def tokenizer_of(run):
    return load.text_tokenizer(load.read(str(run), "best"))


def test_sample_and_chat_print_beam_searchs_reply(run, capsys, monkeypatch):
    tokenizer = tokenizer_of(run)
    idx = encode_text(tokenizer, "210=")[None, :]  # (1, T)
    want = searched_text(run, idx, 8, 2, 2.0, True)
    assert want != searched_text(run, idx, 8, 1)  # (beams find another text than greedy decoding here)
    capsys.readouterr()
    from minigpt.cli import main

    assert main(["sample", "--out-dir", str(run), "--prompt", "210=", "--num-beams", "2", "--max-new-tokens", "8",
                 "--length-penalty", "2", "--early-stopping", "--backend", "numpy"]) == 0
    assert capsys.readouterr().out == "210=" + want + "\n"
    chat_idx = prompt_ids(tokenizer, [{"role": "user", "content": "210="}], 10**6)  # (1, T) the template's prompt
    reply = searched_text(run, chat_idx, 6, 2)
    assert reply != searched_text(run, chat_idx, 6, 1)
    assert main(["sample", "--out-dir", str(run), "--chat", "--prompt", "210=", "--num-beams", "2",
                 "--max-new-tokens", "6", "--backend", "numpy"]) == 0
    assert capsys.readouterr().out == reply + "\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("210=\n"))
    assert main(["chat", "--out-dir", str(run), "--num-beams", "2", "--max-new-tokens", "6", "--backend", "numpy"]) == 0
    assert capsys.readouterr().out == reply + "\n"


@pytest.mark.parametrize("flags, message", [
    (["--num-beams", "2", "--num-samples", "3"], "--num-samples 3 and --num-beams 2 conflict"),
    (["--num-beams", "2", "--temperature", "0.5"], "--temperature does not apply to beam search (--num-beams 2)"),
    (["--num-beams", "2", "--top-k", "5"], "--top-k does not apply to beam search"),
    (["--num-beams", "2", "--top-p", "0.9"], "--top-p does not apply to beam search"),
    (["--num-beams", "2", "--greedy"], "--greedy does not apply to beam search"),
    (["--num-beams", "2", "--seed", "3"], "--seed does not apply to beam search"),
    (["--length-penalty", "2"], "--length-penalty and --early-stopping are beam search's"),
    (["--early-stopping"], "--length-penalty and --early-stopping are beam search's"),
    (["--num-beams", "0"], "--num-beams must be a positive integer, got 0"),
    (["--num-beams", "2", "--length-penalty", "nan"], "--length-penalty must be a finite number"),
])
def test_conflicting_flags_are_refused_in_one_line_before_the_model_is_read(tmp_path, capsys, flags, message):
    for command in (["sample", "--prompt", "a"], ["chat"]):
        if command[0] == "chat" and "--num-samples" in flags:
            continue
        code, err = cli(capsys, *command, "--out-dir", str(tmp_path / "nowhere"), *flags)
        assert code == 1
        error_line(err, message)


def test_sample_refuses_a_continuation_longer_than_the_context(run, capsys):
    code, err = cli(capsys, "sample", "--out-dir", str(run), "--prompt", "210=", "--num-beams", "2",
                    "--max-new-tokens", "5000", "--backend", "numpy")
    assert code == 1
    error_line(err, "lower --max-new-tokens to at most")
