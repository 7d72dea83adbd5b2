import hashlib
import json
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt.data import AddTask, CharTokenizer, SortTask, TextDataset, tokenizer_from_dict
from minigpt.data import text as text_module
from minigpt.files import cache_dir
from minigpt.ops.cross_entropy import IGNORE_INDEX


# --- the character tokenizer ------------------------------------------------------------------------

@given(st.text(min_size=1))
def test_encode_decode_round_trips_any_text_of_the_vocabulary(text):
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    assert list(tok.chars) == sorted(set(text))
    assert tok.encode(text).max() < tok.vocab_size


def test_ids_follow_the_sorted_characters():
    tok = CharTokenizer.from_text("banana!")
    assert tok.chars == "!abn"
    assert tok.encode("nab!").tolist() == [3, 1, 2, 0]


def test_a_character_outside_the_vocabulary_is_named():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"character 'é' \(U\+00E9\) at position 2 is not in the vocabulary of 3 characters"):
        tok.encode("abé")
    with pytest.raises(ValueError, match=r"character 'z' \(U\+007A\) at position 0"):
        tok.encode("z")  # past the last character of the vocabulary


def test_decode_rejects_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match="token id 3 is outside the vocabulary"):
        CharTokenizer("abc").decode([0, 3])


def test_json_round_trip():
    tok = CharTokenizer.from_text("To be, or not to be\n")
    assert tokenizer_from_dict(json.loads(tok.to_json())) == tok
    with pytest.raises(ValueError, match="tokenizer.json has no 'chars'"):
        CharTokenizer.from_dict({"type": "char"})


# --- finding the text -------------------------------------------------------------------------------

@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv("MINIGPT_DATA", raising=False)
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_an_explicit_path_comes_first(no_env, monkeypatch):
    a, b = no_env / "a.txt", no_env / "b.txt"
    a.write_text("aaa")
    b.write_text("bbb")
    monkeypatch.setenv("MINIGPT_DATA", str(b))
    assert text_module.find_text(str(a)) == a
    assert text_module.find_text(None) == b  # then the environment


def test_then_the_cache_then_a_download_with_the_checksum_checked(no_env, monkeypatch):
    source = no_env / "served.txt"
    source.write_text("First Citizen:\n")
    monkeypatch.setattr(text_module, "SHAKESPEARE_URL", source.as_uri())
    monkeypatch.setattr(text_module, "SHAKESPEARE_SHA256", hashlib.sha256(b"First Citizen:\n").hexdigest())
    found = text_module.find_text(None)
    assert found == cache_dir() / "tinyshakespeare.txt"
    assert found.read_text() == "First Citizen:\n"
    source.unlink()  # the second time it comes from the cache, not the URL
    assert text_module.find_text(None) == found


def test_a_download_with_the_wrong_checksum_is_refused_and_leaves_nothing(no_env, monkeypatch):
    source = no_env / "served.txt"
    source.write_text("not shakespeare")
    monkeypatch.setattr(text_module, "SHAKESPEARE_URL", source.as_uri())
    with pytest.raises(FileNotFoundError, match="has SHA-256 .* expected 86c4e6aa"):
        text_module.find_text(None)
    assert not any(cache_dir().glob("tinyshakespeare*"))


def test_nothing_found_says_how_to_supply_the_file(no_env, monkeypatch):
    monkeypatch.setattr(text_module, "SHAKESPEARE_URL", (no_env / "nowhere.txt").as_uri())
    with pytest.raises(FileNotFoundError) as e:
        text_module.find_text(None)
    message = str(e.value)
    assert "pass --data PATH" in message and "MINIGPT_DATA" in message and "\n" not in message


def test_missing_files_are_named(no_env, monkeypatch):
    with pytest.raises(FileNotFoundError, match="data file nope.txt does not exist"):
        text_module.find_text("nope.txt")
    monkeypatch.setenv("MINIGPT_DATA", str(no_env / "gone.txt"))
    with pytest.raises(FileNotFoundError, match="MINIGPT_DATA=.*gone.txt does not exist"):
        text_module.find_text(None)


# --- the prepared dataset ---------------------------------------------------------------------------

def test_tiny_shakespeare_is_split_90_10_and_stored_once(shakespeare, no_env):
    data = TextDataset.load(str(shakespeare))
    assert data.vocab_size == 65
    train, val = data.splits["train"], data.splits["val"]
    assert len(train) == 1_003_854 and len(val) == 111_540  # int(1,115,394 * 0.9) and the rest
    assert train.dtype == np.uint16 and isinstance(train, np.memmap)
    text = shakespeare.read_text()
    assert data.tokenizer.decode(train[:14]) == text[:14] == "First Citizen:"
    assert data.tokenizer.decode(val[-10:]) == text[-10:]
    prepared = next((cache_dir() / "data").iterdir())
    assert sorted(p.name for p in prepared.iterdir()) == ["meta.json", "tokenizer.json", "train.bin", "val.bin"]
    stamp = os.stat(prepared / "train.bin").st_mtime_ns
    again = TextDataset.load(str(shakespeare))  # reused, not rewritten
    assert os.stat(prepared / "train.bin").st_mtime_ns == stamp
    np.testing.assert_array_equal(again.splits["val"], val)


def test_batches_are_windows_and_their_next_tokens(no_env):
    path = no_env / "t.txt"
    path.write_text("abcdefghijklmnopqrstuvwxyz" * 20)
    data = TextDataset.load(str(path))
    data.fit(5)
    batch = data.get_batch("train", 8, np.random.default_rng(0))
    x, y = batch.x, batch.y
    assert x.shape == y.shape == (8, 5) and x.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    np.testing.assert_array_equal((y - x) % 26, 1)  # the alphabet: each target is the next letter
    x2 = data.get_batch("train", 8, np.random.default_rng(0)).x
    np.testing.assert_array_equal(x, x2)  # seeded


def test_a_text_too_short_for_the_block_size_is_explained(no_env):
    path = no_env / "short.txt"
    path.write_text("abcdefghij" * 3)
    data = TextDataset.load(str(path))
    data.fit(8)
    with pytest.raises(ValueError, match="the val split has 3 tokens, too few for block_size 8"):
        data.get_batch("val", 2, np.random.default_rng(0))


def test_a_fine_tuning_vocabulary_is_kept(no_env):
    path = no_env / "t.txt"
    path.write_text("abab" * 10)
    data = TextDataset.load(str(path), tokenizer=CharTokenizer("abc"))
    assert data.vocab_size == 3
    path.write_text("abd" * 10)
    with pytest.raises(ValueError, match="character 'd'"):
        TextDataset.load(str(path), tokenizer=CharTokenizer("abc"))


def test_non_utf8_text_is_explained(no_env):
    path = no_env / "latin1.txt"
    path.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        TextDataset.load(str(path))


# --- the tasks --------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", [SortTask(), AddTask()])
def test_held_out_problems_are_never_trained_on(task):
    train = {tuple(q) for q in task.problems["train"]}
    val = {tuple(q) for q in task.problems["val"]}
    assert train.isdisjoint(val) and len(val) > 100


@pytest.mark.parametrize("task", [SortTask(), AddTask()])
def test_only_the_answer_is_a_target(task):
    task.fit(task.sequence_length)
    batch = task.get_batch("train", 16, np.random.default_rng(0))
    x, y = batch.x, batch.y
    assert x.shape == y.shape == (16, task.sequence_length)
    q = task.question_length
    assert np.all(y[:, : q - 1] == IGNORE_INDEX)
    np.testing.assert_array_equal(y[:, q - 1:], task.answer(x[:, :q]))  # the answer follows the question
    np.testing.assert_array_equal(x[:, q:], y[:, q - 1:-1])


def test_sort_answers_are_sorted_questions():
    task = SortTask()
    np.testing.assert_array_equal(task.answer(np.array([[2, 0, 1, 1, 0, 2]])), [[0, 0, 1, 1, 2, 2]])
    assert len(task.problems["train"]) + len(task.problems["val"]) == 3**6


@given(st.integers(0, 99), st.integers(0, 99))
def test_add_answers_are_sums_least_significant_digit_first(a, b):
    task = AddTask()
    question = np.array([[a // 10, a % 10, b // 10, b % 10]])
    digits = task.answer(question)[0]
    assert digits[0] + 10 * digits[1] + 100 * digits[2] == a + b


def test_a_block_size_shorter_than_the_task_is_explained():
    with pytest.raises(ValueError, match="the sort task needs block_size >= 11, got 8"):
        SortTask().fit(8)
