"""Byte-level BPE: round trips, equality with tiktoken and with Hugging Face's GPT2TokenizerFast for the
same vocabulary, the file formats, training."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import BPETokenizer
from minigpt.data.bpe import BYTE_TO_CHAR, PATTERNS, bpe_merge
from helpers import CORPUS

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=200) | st.sampled_from(
    ["", " ", "  \n\n  ", "a" * 300, "\r\n\t x", "don't I'LL it's", "1234567", "  hello  world  ", "🚀 x", "'s's's"])


@pytest.fixture(scope="module", params=["r50k", "cl100k"])
def tok(request):
    return BPETokenizer.train(CORPUS, vocab_size=400, pattern=request.param)


@pytest.fixture(scope="module")
def r50k_tok():
    return BPETokenizer.train(CORPUS, vocab_size=400, pattern="r50k")


@pytest.fixture(scope="module")
def tiktoken_encoding(tok, tiktoken):
    return tiktoken.Encoding(f"minigpt-{tok.pattern}", pat_str=PATTERNS[tok.pattern], mergeable_ranks=tok.ranks,
                             special_tokens=tok.special_tokens)


@given(texts)
@settings(max_examples=200)
def test_decode_inverts_encode_for_any_text(tok, text):
    assert tok.decode(tok.encode(text, disallowed_special=())) == text


@given(texts)
@settings(max_examples=300)
def test_encoding_equals_tiktokens(tok, tiktoken_encoding, text):
    assert tok.encode_ordinary(text) == tiktoken_encoding.encode_ordinary(text)


def test_encoding_real_text_equals_tiktokens(tok, tiktoken_encoding, shakespeare):
    text = shakespeare.read_text()[:200_000]
    assert tok.encode_ordinary(text) == tiktoken_encoding.encode_ordinary(text)


@given(st.lists(texts, min_size=1, max_size=4))
@settings(max_examples=50)
def test_special_tokens_equal_tiktokens(tok, tiktoken_encoding, parts):
    text = "<|endoftext|>".join(parts)
    assert tok.encode(text, allowed_special="all") == tiktoken_encoding.encode(text, allowed_special="all")
    assert tok.encode(text, disallowed_special=()) == tiktoken_encoding.encode(text, disallowed_special=())


def test_special_tokens_must_be_allowed_explicitly(tok):
    with pytest.raises(ValueError, match=r"the text contains the special token '<\|endoftext\|>' at character 2"):
        tok.encode("a <|endoftext|> b")
    eot = tok.special_tokens["<|endoftext|>"]
    assert eot in tok.encode("a <|endoftext|> b", allowed_special={"<|endoftext|>"})
    assert eot not in tok.encode("a <|endoftext|> b", disallowed_special=())
    assert tok.decode([eot]) == "<|endoftext|>"


@pytest.fixture(scope="module")
def hf_tokenizer(r50k_tok, transformers, tmp_path_factory):
    """GPT2TokenizerFast on the same vocabulary (it always splits with GPT-2's pattern, r50k)."""
    directory = tmp_path_factory.mktemp("gpt2files")
    r50k_tok.save_gpt2_files(directory)
    return transformers.GPT2TokenizerFast.from_pretrained(directory)


@given(texts)
@settings(max_examples=300)
def test_encoding_equals_gpt2_tokenizer_fast(r50k_tok, hf_tokenizer, text):
    assert r50k_tok.encode(text, allowed_special="all") == hf_tokenizer.encode(text)


def test_real_text_equals_gpt2_tokenizer_fast(r50k_tok, hf_tokenizer, shakespeare):
    text = shakespeare.read_text()[:200_000]
    assert r50k_tok.encode(text) == hf_tokenizer.encode(text)


def test_gpt2s_own_id_order_is_read(tiktoken, tmp_path):
    """GPT-2's vocab.json does not give the single bytes the ids 0..255 in byte order (id 0 is "!"):
    files in that order load, and encode as tiktoken does with the same ranks."""
    trained = BPETokenizer.train(CORPUS, vocab_size=300)
    order = sorted(range(256), key=lambda b: ord(BYTE_TO_CHAR[b]))  # GPT-2's: by the printable character
    relabel = {bytes([b]): i for i, b in enumerate(order)}
    ranks = {**relabel, **{t: r for t, r in trained.ranks.items() if len(t) > 1}}
    gpt2_like = BPETokenizer(ranks, "r50k", trained.special_tokens)
    gpt2_like.save_gpt2_files(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    assert vocab["!"] == 0 and vocab["Ġ"] != 32
    loaded = BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert loaded == gpt2_like
    encoding = tiktoken.Encoding("g", pat_str=PATTERNS["r50k"], mergeable_ranks=ranks, special_tokens=trained.special_tokens)
    assert loaded.encode_ordinary(CORPUS) == encoding.encode_ordinary(CORPUS)


def test_file_formats_round_trip(tok, tmp_path):
    tok.save_tiktoken(tmp_path / "t.tiktoken")
    assert BPETokenizer.from_tiktoken(tmp_path / "t.tiktoken", pattern=tok.pattern) == tok
    tok.save_gpt2_files(tmp_path)
    from_gpt2 = BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert from_gpt2.ranks == tok.ranks and from_gpt2.special_tokens == tok.special_tokens
    assert BPETokenizer.from_dict(json.loads(tok.to_json())) == tok


def test_a_broken_rank_file_is_named(tmp_path):
    (tmp_path / "bad.tiktoken").write_text("IQ== 0\nnot-base64 x\n")
    with pytest.raises(ValueError, match="bad.tiktoken line 2 is not `base64-token rank`"):
        BPETokenizer.from_tiktoken(tmp_path / "bad.tiktoken")


def naive_bpe(piece: bytes, ranks: dict) -> list:
    """The textbook loop: scan every pair, merge the lowest-ranked (leftmost on ties), repeat."""
    parts = [piece[i:i + 1] for i in range(len(piece))]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return parts
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]


@given(st.binary(max_size=40), st.integers(0, 2**16))
@settings(max_examples=300)
def test_heap_merge_equals_the_textbook_loop(piece, seed):
    rng = np.random.default_rng(seed)
    tokens = {bytes([b]) for b in range(256)}
    tokens |= {piece[i:j] for i in range(len(piece)) for j in range(i + 2, min(i + 5, len(piece) + 1)) if rng.random() < 0.5}
    ranks = {t: r for r, t in enumerate(sorted(tokens, key=lambda t: (len(t), rng.random())))}
    assert bpe_merge(piece, ranks) == naive_bpe(piece, ranks)


def test_training_merges_the_most_frequent_pair_first_deterministically():
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=256 + 3 + 1)  # the classic example, one chunk
    merges = tok.merges()
    assert merges[0] == (b"a", b"a")  # 'aa' occurs 4 times (overlapping counted as pairs: aa at 0,1,4,5)
    assert BPETokenizer.train("aaabdaaabac", vocab_size=260) == tok
    assert tok.vocab_size == 260 and tok.special_tokens == {"<|endoftext|>": 259}


def test_training_needs_room_for_the_bytes():
    with pytest.raises(ValueError, match="vocab_size must be at least 257"):
        BPETokenizer.train("abc", vocab_size=200)


def test_the_command_line_trains_and_encodes(tmp_path):
    from minigpt.cli import main

    text = tmp_path / "t.txt"
    text.write_text(CORPUS)
    assert main(["tokenizer", "train", "--data", str(text), "--vocab-size", "300", "--out", str(tmp_path / "tok")]) == 0
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["merges.txt", "tokenizer.json", "tokenizer.tiktoken", "vocab.json"]
    assert main(["tokenizer", "encode", "--tokenizer", str(tmp_path / "tok"), "Speak, speak."]) == 0
