"""Fuzzing what enters minigpt, with hypothesis: bad values for every `train` flag and config-file key, and random
damage to every file of a run directory and of a Hugging Face directory. Every bad input ends with exit status 1 or
2 and one `minigpt: error:` line (never a traceback), and leaves the run directory as it was."""

import hashlib
import json
import shutil

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minigpt.config import (CHANGES_ON_RESUME, FIXED_ON_RESUME, FRACTIONS, MODEL_SETTINGS, NON_NEGATIVE, POSITIVE,
                            SETTINGS, TrainConfig, field_kind, setting_field)
from minigpt.settings import tomllib
from helpers import TINY, cli, error_line, make_text, train

FUZZ = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SHAPES = ("n_layer", "n_embd", "block_size", "batch_size", "gradient_accumulation_steps")  # huge: out of memory
NOT_NUMBERS = st.sampled_from(["", "abc", "1,5", "0x10", "--", "\udcff", "1e3e3", "None", "[]"])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A finished run (checkpoints at 5 and 10), the text it was trained on, and its export as a Hugging Face
    directory."""
    tmp = tmp_path_factory.mktemp("fuzz")
    text = make_text(tmp / "text.txt", seed=0)
    train("--data", str(text), "--out-dir", str(tmp / "run"), "--max-iters", "10", "--eval-interval", "5", *TINY)
    train("--data", str(text), "--out-dir", str(tmp / "export-from"), "--max-iters", "1", *TINY)
    assert cli_ok("export", "--out-dir", str(tmp / "export-from"), "--hf", str(tmp / "hf"))
    return tmp, text


def cli_ok(*args):
    from minigpt.cli import main

    return main(list(args)) == 0


def files_of(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def bad_flag_values(name):
    """Values of the flag for setting `name` that must be refused."""
    kind, optional = field_kind(setting_field(name))
    if kind is bool:  # a switch takes no value
        return st.just(None)
    if kind is str:
        return {"data": st.sampled_from(["", "/nonexistent/text.txt", "\udcff", "."]),
                "task": st.sampled_from(["", "sorting", "ADD"]),
                "corpus": st.sampled_from(["", "/nonexistent", "no-such-corpus", ".", "\0"]),
                "tokenizer": st.sampled_from(["", "BPE", "/nonexistent", "."]),
                "dtype": st.sampled_from(["", "float16", "int8"]),
                "backend": st.sampled_from(["", "gpu", "cuda"]),
                "arch": st.sampled_from(["", "GPT2", "mistral", "llama3"]),
                "preset": st.sampled_from(["", "SPEEDRUN", "fast"]),
                "optimizer": st.sampled_from(["", "sgd", "MUON", "adam"]),
                "method": st.sampled_from(["", "ppo", "DPO", "grpo"]),
                "rl_advantage": st.sampled_from(["", "rloo", "GRPO", "mean"]),
                "init_from": st.sampled_from(["", "/nonexistent", "."]),
                "lora_targets": st.sampled_from(["", "wq", "attention,gate", "\0"]),
                "out_dir": st.sampled_from(["", "\0"])}[name]
    if kind is float:
        numbers = st.sampled_from(["nan", "inf", "-inf", "1e400", "-nan"])
        if name in POSITIVE or name in NON_NEGATIVE:
            numbers = numbers | st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False).map(repr)
        if name in FRACTIONS:
            numbers = numbers | st.floats(min_value=1.0, max_value=1e6).map(repr) | st.just("-0.5")
        return numbers | NOT_NUMBERS
    integers = st.integers(max_value=0 if name in POSITIVE else -1).map(str) | st.sampled_from(["1.5", "1e3", "nan"])
    if name in SHAPES:
        integers = integers | st.integers(10**9, 10**15).map(str)
    if name == "vocab_size":
        integers = integers | st.integers(1, 256).map(str)
    if name == "threads":
        integers = integers | st.integers(1025, 10**12).map(str)
    return integers | NOT_NUMBERS


FLAGS = [name for name in SETTINGS if name != "resume"]
FIXED = (*FIXED_ON_RESUME, *(name for name in MODEL_SETTINGS if name not in CHANGES_ON_RESUME))  # (on resume)


@FUZZ
@given(data=st.data(), resume=st.booleans())
def test_every_flag_refuses_bad_values_in_one_line(workspace, tmp_path_factory, capsys, data, resume):
    tmp, text = workspace
    name = data.draw(st.sampled_from(FLAGS))
    value = data.draw(bad_flag_values(name))
    flag = "--" + name.replace("_", "-")
    args = [flag] if value is None else [f"{flag}={value}"]
    if value is None and name in ("bias", "decay_lr", "log_stats"):  # a valid switch: bad only as a change of a resumed run
        assume(resume and name in FIXED)
        args = ["--no-bias"]
    if name == "tie_word_embeddings":  # GPT-2's head is always tied (and a resumed run cannot change it)
        args = ["--no-tie-word-embeddings"]
    run = tmp / "run"
    before = files_of(run)
    fresh = tmp_path_factory.mktemp("fresh") / "out"
    where = ["--resume", "--out-dir", str(run)] if resume else ["--data", str(text), "--out-dir", str(fresh), *TINY]
    code, err = cli(capsys, "train", *where, *args)
    assert code in (1, 2), (args, err)
    error_line(err)
    assert files_of(run) == before
    assert not fresh.exists() or name == "out_dir"


TOML_VALUES = st.sampled_from(['"text"', "nan", "inf", "-inf", "1.5", "-3", "0", "true", "[1, 2]", "{ a = 1 }",
                               "1979-05-27", '""', "99999999999999999999", "-0.0", "1e400"])


@FUZZ
@given(data=st.data())
def test_every_config_file_key_refuses_bad_values_in_one_line(workspace, tmp_path_factory, capsys, data):
    tmp, text = workspace
    name = data.draw(st.sampled_from(FLAGS + ["resume", "learning-rate", "lr", "n_layers"]))
    value = data.draw(TOML_VALUES)
    config = tmp_path_factory.mktemp("toml") / "run.toml"
    config.write_text(f"{name} = {value}\n")
    try:
        TrainConfig.from_dict(tomllib.loads(config.read_text()))
        assume(False)  # a valid setting: not what this test is about
    except (ValueError, TypeError):  # (tomllib.TOMLDecodeError is a ValueError)
        pass
    fresh = config.parent / "out"
    tiny = [a for flag, value in zip(TINY[::2], TINY[1::2]) if flag != "--" + name.replace("_", "-") for a in (flag, value)]
    code, err = cli(capsys, "train", "--config", str(config), "--data", str(text), "--out-dir", str(fresh), *tiny)
    assert code == 1, (name, value, err)
    error_line(err, str(config))
    assert not fresh.exists()


@FUZZ
@given(content=st.binary(max_size=64) | st.sampled_from([b"\xff\xfe\x00", b"[[x]]\nn_layer = 1", b"= 1", b"n_layer = "]))
def test_a_config_file_that_is_not_toml_or_not_utf8_is_named(workspace, tmp_path_factory, capsys, content):
    tmp, text = workspace
    config = tmp_path_factory.mktemp("toml") / "run.toml"
    config.write_bytes(content)
    code, err = cli(capsys, "train", "--config", str(config), "--data", str(text), "--out-dir", str(config.parent / "o"),
                    "--max-iters", "1", *TINY)
    if code != 0:  # (an empty or all-comment file is a valid config)
        assert code == 1
        error_line(err, str(config))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
                    max_leaves=8)


def damage(path, data):
    """Change a file at random: flip, cut, extend or empty its bytes, or, for JSON, change its shape (a key removed,
    retyped or added, or another JSON value altogether)."""
    raw = path.read_bytes()
    how = data.draw(st.sampled_from(["flip", "cut", "append", "empty", "json"] if path.suffix == ".json" else
                                    ["flip", "cut", "append", "empty"]))
    if how == "flip" and raw:
        i = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1:]
    elif how == "cut":
        raw = raw[:data.draw(st.integers(0, max(0, len(raw) - 1)))]
    elif how == "append":
        raw = raw + data.draw(st.binary(min_size=1, max_size=16))
    elif how == "empty":
        raw = b""
    elif how == "json":
        obj = json.loads(raw)
        if isinstance(obj, dict) and obj and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(obj)))
            if data.draw(st.booleans()):
                del obj[key]
            else:
                obj[key] = data.draw(JSON)
        else:
            obj = data.draw(JSON)
        raw = json.dumps(obj).encode()
    path.write_bytes(raw)


@FUZZ
@given(data=st.data(), honest_manifest=st.booleans())
def test_damage_to_any_file_of_a_run_ends_in_one_line(workspace, tmp_path_factory, capsys, data, honest_manifest):
    """honest_manifest: the manifest is updated too, as if a tool had rewritten the file, so the file's own checks
    must catch it."""
    tmp, _ = workspace
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(tmp / "run", run)
    target = run / data.draw(st.sampled_from(sorted(files_of(run))))
    damage(target, data)
    if honest_manifest and target.parent.name.startswith("ckpt-") and target.name != "manifest.json":
        manifest = json.loads((target.parent / "manifest.json").read_text())
        manifest["files"][target.name] = {"size": target.stat().st_size, "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}
        (target.parent / "manifest.json").write_text(json.dumps(manifest))
    before = files_of(run)
    out = run.parent
    for command in (["sample", "--out-dir", str(run), "--max-new-tokens", "3"],
                    ["sample", "--out-dir", str(run), "--checkpoint", "latest", "--max-new-tokens", "3"],
                    ["export", "--out-dir", str(run), "--llmc", str(out / "m.bin"), "--force"],
                    ["train", "--resume", "--out-dir", str(run)]):
        code, err = cli(capsys, *command)
        if code != 0:  # a damage the command needs no part of (a log line still JSON, a file it does not read) is fine
            assert code == 1, (command, err)
            error_line(err)
            assert files_of(run) == before, command


@FUZZ
@given(data=st.data())
def test_damage_to_any_file_of_a_hugging_face_directory_ends_in_one_line(workspace, tmp_path_factory, capsys, data):
    tmp, text = workspace
    hf = tmp_path_factory.mktemp("damaged") / "hf"
    shutil.copytree(tmp / "hf", hf)
    damage(hf / data.draw(st.sampled_from(sorted(files_of(hf)))), data)
    for command in (["sample", "--init-from", str(hf), "--max-new-tokens", "3"],
                    ["train", "--init-from", str(hf), "--data", str(text), "--out-dir", str(hf.parent / "ft"),
                     "--max-iters", "1", "--eval-iters", "1", "--batch-size", "2"]):
        code, err = cli(capsys, *command)
        if code != 0:
            assert code == 1, (command, err)
            error_line(err)


SAMPLE_FLAGS = {
    "--max-new-tokens": st.integers(max_value=-1).map(str) | NOT_NUMBERS,
    "--temperature": st.sampled_from(["0", "-1", "nan", "inf", "-inf"]) | NOT_NUMBERS,
    "--top-k": st.integers(max_value=0).map(str) | NOT_NUMBERS,
    "--top-p": st.sampled_from(["0", "-0.1", "1.5", "nan", "inf"]) | NOT_NUMBERS,
    "--num-samples": st.integers(max_value=0).map(str) | NOT_NUMBERS,
    "--seed": st.integers(max_value=-1).map(str) | NOT_NUMBERS,
    "--threads": st.integers(max_value=0).map(str) | st.integers(1025, 10**12).map(str) | NOT_NUMBERS,
    "--checkpoint": st.sampled_from(["", "first", "ckpt-000005"]),
    "--backend": st.sampled_from(["", "gpu"]),
    "--prompt": st.sampled_from(["\udcff", "ünïcödé", "\0", "x" * 17]),  # outside the vocabulary, or too long
    "--out-dir": st.sampled_from(["", "/nonexistent", "."]),
}


@FUZZ
@given(data=st.data())
def test_every_sample_flag_refuses_bad_values_in_one_line(workspace, capsys, data):
    tmp, _ = workspace
    flag = data.draw(st.sampled_from(sorted(SAMPLE_FLAGS)))
    value = data.draw(SAMPLE_FLAGS[flag])
    args = ["--out-dir", str(tmp / "run")] if flag != "--out-dir" else []
    code, err = cli(capsys, "sample", *args, f"{flag}={value}", "--max-new-tokens=3" if flag != "--max-new-tokens" else "")
    assert code in (1, 2), (flag, value, err)
    error_line(err)
