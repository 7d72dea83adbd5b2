"""A corpus tokenized once (minigpt/corpus/tokenize.py) and read memory-mapped (minigpt/data/tokens.py): the token
files give the text back, bits per byte is the held-out loss per byte, a run on them logs it, and bad input is refused
in one line. The protocol every dataset offers: tests/test_datasets.py."""

import json
import math
import shutil

import numpy as np
import pytest
from helpers import cli, corpus_of, error_line

from minigpt import GPT, GPTConfig
from minigpt.corpus import SAMPLE
from minigpt.corpus.tokenize import tokenize
from minigpt.data import BPETokenizer, load_tokenizer
from minigpt.data.bpe import ENDOFTEXT
from minigpt.data.tokens import HEADER, TokensDataset
from minigpt.ops.cross_entropy import IGNORE_INDEX

VOCAB = 300  # a tiny BPE: 43 merges, enough that tokens are not bytes
EXACT = 1e-12  # float64 sums of the same numbers in another order


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The shipped sample, copied, with a tiny BPE trained on its first 100 kB written by `minigpt tokenizer train`."""
    root = tmp_path_factory.mktemp("tokens")
    shutil.copytree(SAMPLE, root / "sample")
    tokenizer = BPETokenizer.train((SAMPLE / "train.txt").read_text()[:100_000], VOCAB)
    (root / "tok").mkdir()
    (root / "tok" / "tokenizer.json").write_text(tokenizer.to_json())
    return root


def test_the_token_files_decode_to_the_text_and_equal_encoding_it_whole(sample, capsys):
    code, err = cli(capsys, "data", "tokenize", "--dir", str(sample / "sample"), "--tokenizer", str(sample / "tok"))
    assert code == 0, err
    tokens, tokenizer = sample / "sample" / "tokens", load_tokenizer(sample / "tok")
    header = json.loads((tokens / HEADER).read_text())
    assert header["tokenizer_sha256"] == tokenizer.fingerprint() and header["dtype"] == "uint16"
    for split in ("train", "val"):
        raw = (sample / "sample" / f"{split}.txt").read_bytes()
        ids = np.fromfile(tokens / f"{split}.bin", dtype=np.uint16)  # (n,)
        assert tokenizer.decode_bytes(ids.tolist()) == raw  # the round trip
        whole = tokenizer.encode(raw.decode("utf-8"), allowed_special={ENDOFTEXT})  # the whole file at once
        assert ids.tolist() == whole and ENDOFTEXT in raw.decode() and tokenizer.eot_token in whole
        assert header["splits"][split]["tokens"] == len(ids) and header["splits"][split]["bytes"] == len(raw)
    assert tokenize(sample / "sample", tokenizer).fresh is False  # (a second time: found, the same tokenizer's)


def test_bits_per_byte_is_the_held_out_bits_over_the_text_s_bytes(sample):
    """The formula (loss per token x tokens per byte / ln 2, from the header's counts) against a direct count: every
    token of val.bin predicted once by a model (the first after <|endoftext|>, as documents begin), -log2 of its
    probability summed over the split, over the bytes of val.txt."""
    tokens = tokenize(sample / "sample", load_tokenizer(sample / "tok")).path
    dataset = TokensDataset.open(tokens)
    val = np.fromfile(tokens / "val.bin", dtype=np.uint16).astype(np.int64)  # (n,)
    T = 128
    n_rows = -(-len(val) // T)
    stream = np.concatenate([[dataset.tokenizer.eot_token], val])  # (n + 1,) the context of the first token
    x = np.zeros((n_rows, T), np.int64)  # (B, T)
    y = np.full((n_rows, T), IGNORE_INDEX, np.int64)  # (B, T) each token of val a target once
    for r in range(n_rows):
        row = stream[r * T:(r + 1) * T + 1]
        x[r, :len(row) - 1], y[r, :len(row) - 1] = row[:-1], row[1:]
    model = GPT(GPTConfig(vocab_size=dataset.vocab_size, block_size=T, n_layer=1, n_head=2, n_embd=16, arch="qwen3"),
                seed=0, dtype=np.float64, backend="numpy")
    model.eval()
    logits, loss = model.forward(x, y)  # (B, T, V), the mean nats per target
    shifted = logits - logits.max(axis=-1, keepdims=True)  # (B, T, V)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # (B, T, V)
    mask = y != IGNORE_INDEX  # (B, T)
    bits = -log_p[mask, y[mask]].sum() / math.log(2)
    direct = bits / len((sample / "sample" / "val.txt").read_bytes())
    assert mask.sum() == len(val)
    assert dataset.bits_per_byte(loss, "val") == pytest.approx(direct, rel=EXACT)
    assert 1.0 < direct < 16.0  # (a random model: about log2(V) bits a token, a few bytes a token)


def test_a_run_on_a_tokenized_corpus_logs_bits_per_byte(sample, tmp_path, capsys):
    tokens = tokenize(sample / "sample", load_tokenizer(sample / "tok")).path
    out = tmp_path / "run"
    code, err = cli(capsys, "train", "--corpus", str(tokens.parent), "--arch", "qwen3", "--n-layer", "1", "--n-head",
                    "2", "--n-embd", "16", "--block-size", "32", "--batch-size", "4", "--max-iters", "4",
                    "--eval-interval", "2", "--eval-iters", "2", "--warmup-iters", "1", "--backend", "numpy",
                    "--out-dir", str(out))
    assert code == 0, err
    evaluations = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "val_loss" in r]
    header = json.loads((tokens / HEADER).read_text())["splits"]["val"]
    assert len(evaluations) == 2
    for record in evaluations:
        assert record["val_bpb"] == pytest.approx(record["val_loss"] * header["tokens"] / header["bytes"] / math.log(2),
                                                  rel=EXACT)
    assert "val bpb" in err
    saved = load_tokenizer(out / "ckpt-000004")  # the model's tokenizer is the corpus's
    assert saved == load_tokenizer(sample / "tok")


def test_a_text_dataset_reports_no_bits_per_byte(tmp_path):
    from minigpt.data import TextDataset

    (tmp_path / "t.txt").write_text("abc " * 100)
    assert TextDataset.load(str(tmp_path / "t.txt")).bits_per_byte(1.0) is None


def test_a_missing_corpus_is_refused_in_one_line(tmp_path, capsys):
    code, err = cli(capsys, "train", "--corpus", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path / "run"))
    assert code != 0
    error_line(err, "there is no corpus at", "minigpt data build nowhere")
    (tmp_path / "empty").mkdir()
    code, err = cli(capsys, "data", "tokenize", "--dir", str(tmp_path / "empty"), "--tokenizer", str(tmp_path))
    error_line(err, "holds no built corpus", "minigpt data build")
    code, err = cli(capsys, "train", "--corpus", str(tmp_path / "empty"), "--out-dir", str(tmp_path / "run"))
    error_line(err, "holds no tokens", "minigpt data tokenize")


def test_another_tokenizer_is_refused_in_one_line(sample, tmp_path, capsys):
    corpus = corpus_of(tmp_path / "c", "one two three " * 50, "three two one " * 20)
    tokenize(corpus, load_tokenizer(sample / "tok"))
    other = BPETokenizer.train("one two three " * 50, 262)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "tokenizer.json").write_text(other.to_json())
    code, err = cli(capsys, "train", "--corpus", str(corpus), "--tokenizer", str(tmp_path / "other"),
                    "--out-dir", str(tmp_path / "run"))
    error_line(err, "were made by another tokenizer")
    code, err = cli(capsys, "data", "tokenize", "--dir", str(corpus), "--tokenizer", str(tmp_path / "other"))
    error_line(err, "holds the tokens of another tokenizer", "remove it")


@pytest.mark.parametrize("damage", ["truncated", "text changed"])
def test_damaged_tokens_or_text_are_refused_in_one_line(sample, tmp_path, capsys, damage):
    corpus = corpus_of(tmp_path / "c", "one two three " * 50, "three two one " * 20)
    if damage == "truncated":
        tokenize(corpus, load_tokenizer(sample / "tok"))
        with open(corpus / "tokens" / "train.bin", "r+b") as f:
            f.truncate(10)
        code, err = cli(capsys, "train", "--corpus", str(corpus), "--out-dir", str(tmp_path / "run"))
        error_line(err, "train.bin is 10 bytes", "truncated")
    else:
        (corpus / "val.txt").write_text("something else")
        code, err = cli(capsys, "data", "tokenize", "--dir", str(corpus), "--tokenizer", str(sample / "tok"))
        error_line(err, "val.txt is not the file", "build it again")
        assert not (corpus / "tokens").exists()  # (nothing left in place)
    assert code != 0


def test_a_corpus_goes_with_neither_data_nor_a_task(tmp_path, capsys):
    code, err = cli(capsys, "train", "--corpus", "english", "--task", "sort", "--out-dir", str(tmp_path / "run"))
    error_line(err, "give one of corpus")
    code, err = cli(capsys, "train", "--corpus", "english", "--tokenizer", "bpe", "--out-dir", str(tmp_path / "run"))
    error_line(err, "drop --tokenizer bpe")


BASE_ITERS = 150  # the base preset shortened: 150 of its 1,490 steps, on the sample (about 4 minutes on 2 cores)
BASE_BPB_BOUND = 2.5  # held-out bits per byte it must get below. A model that has learnt nothing is at log2(V) bits a
# token, 10 / 2.80 bytes a token = 3.57 bits per byte with the sample's BPE of 1,024; one run of this test gave 2.08
# with AdamW, the preset's optimizer before Muon


@pytest.mark.slow
def test_a_shortened_base_run_on_the_sample_learns_below_a_bits_per_byte_bound(tmp_path, capsys):
    shutil.copytree(SAMPLE, tmp_path / "sample")
    tokenizer = BPETokenizer.train((SAMPLE / "train.txt").read_text(), 1024)
    tokenize(tmp_path / "sample", tokenizer)
    code, err = cli(capsys, "train", "--preset", "base", "--corpus", str(tmp_path / "sample"), "--max-iters",
                    str(BASE_ITERS), "--warmup-iters", "20", "--eval-interval", str(BASE_ITERS), "--eval-iters", "10",
                    "--out-dir", str(tmp_path / "run"))
    assert code == 0, err
    last = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert last["iter"] == BASE_ITERS and last["val_bpb"] < BASE_BPB_BOUND, last
