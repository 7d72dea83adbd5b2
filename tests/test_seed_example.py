"""The seed's example (docs/examples/seed_summary.py, shown in docs/applications.md): GPT-2 summarising with
transformers' generate(num_beams=4, length_penalty=2.0, early_stopping=True), and the same with minigpt's load and
beam search, pick the same tokens. On a small GPT-2 directory made here with transformers (random weights, a BPE
vocabulary of 300 tokens trained on a short text): the tests never reach the Hub; on a user's machine it is "gpt2"."""

import json
import sys
from pathlib import Path

import pytest
from helpers import CORPUS, require

from minigpt import BPETokenizer, hf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "examples"))
import seed_summary  # noqa: E402  docs/examples/seed_summary.py

TEXT = ("First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. It's 1234 o'clock, "
        "naïve café! and tabs\tand  spaces")
END_SCALE = 3.0  # (2: the best beam ends at its 34th token, 3: its 21st)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    """A GPT-2 directory as transformers saves one, with a tokenizer whose <|endoftext|> ends a summary."""
    transformers = require("transformers")
    torch = require("torch")
    directory = tmp_path_factory.mktemp("gpt2")
    tokenizer = BPETokenizer.train(CORPUS, vocab_size=300)
    end = tokenizer.eot_token
    # weights larger than GPT-2's initialisation, so that the beams' scores are far apart (no near-ties that float32
    # rounding in two implementations could order differently)
    config = transformers.GPT2Config(vocab_size=300, n_positions=192, n_embd=32, n_layer=2, n_head=2,
                                     initializer_range=0.2, bos_token_id=end, eos_token_id=end)
    transformers.set_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # an end token likelier than the others' average, so that some beams end on it
        model.transformer.wte.weight[end] *= END_SCALE
    model.save_pretrained(directory)
    hf.write_tokenizer(tokenizer, directory, hf.read_config(directory / "config.json"))
    return directory


def test_minigpt_summarises_with_the_tokens_transformers_picks(gpt2):
    tokens, summary = seed_summary.with_transformers(TEXT, str(gpt2))
    ours, our_summary = seed_summary.with_minigpt(TEXT, str(gpt2))
    # the best beam ended on the end token before the longest allowed: the end and early stopping were both in play
    assert seed_summary.MIN_NEW_TOKENS < len(tokens) < seed_summary.MAX_NEW_TOKENS
    assert tokens[-1] == json.loads((gpt2 / "config.json").read_text())["eos_token_id"]
    assert len(set(tokens)) > 3  # a search over real choices, not one token repeated
    assert ours == tokens
    assert our_summary == summary


def test_the_example_reads_its_directory_and_not_the_hub(gpt2, monkeypatch):
    # its negative control: another directory (a different model) picks other tokens, so the comparison above
    # compares two models on the same weights and could fail
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    transformers = require("transformers")
    other = gpt2.parent / "other"
    config = transformers.GPT2Config.from_pretrained(gpt2)
    transformers.set_seed(1)
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(other)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        if (gpt2 / name).is_file():
            (other / name).write_bytes((gpt2 / name).read_bytes())
    assert seed_summary.with_minigpt(TEXT, str(other))[0] != seed_summary.with_minigpt(TEXT, str(gpt2))[0]
