"""The command line: sampling, plotting, and one clear line on stderr (no traceback) for every bad input."""

import json
import os
import subprocess
import sys

import pytest

from minigpt.cli import main
from helpers import TINY, cli, error_line, make_text, minigpt, require


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small trained run to sample from."""
    tmp = tmp_path_factory.mktemp("cli")
    text = make_text(tmp / "text.txt", seed=0)
    out = tmp / "run"
    assert main(["train", "--data", str(text), "--out-dir", str(out), "--max-iters", "30",
                 "--learning-rate", "1e-2", *TINY]) == 0
    return out


def assert_one_line_error(result, *fragments):
    assert result.returncode in (1, 2)  # an error, or a usage error
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    error_line(result.stderr, *fragments)


def command(capsys, *args) -> subprocess.CompletedProcess:
    """`minigpt ARGS` run in this process, through the main() the command runs: its status and stderr. (The tests of
    the command as a process of its own, its exit status and its start-up, are the ones that call `minigpt`.)"""
    code, err = cli(capsys, *args)
    return subprocess.CompletedProcess(args, code, "", err)


def test_sample_prints_the_prompt_and_its_continuation(run, capsys):
    assert main(["sample", "--out-dir", str(run), "--prompt", "the king", "--max-new-tokens", "40", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the king") and len(out) == len("the king") + 40 + 1  # and a final newline
    assert main(["sample", "--out-dir", str(run), "--prompt", "the king", "--max-new-tokens", "40", "--seed", "1"]) == 0
    assert capsys.readouterr().out == out  # seeded


def test_sample_streams_tokens_as_they_come(run):
    proc = subprocess.Popen([sys.executable, "-m", "minigpt.cli", "sample", "--out-dir", str(run), "--prompt", "a",
                             "--max-new-tokens", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    first = proc.stdout.read(20)  # arrives long before 100,000 tokens could be generated
    proc.kill()
    proc.wait()
    assert first.startswith(b"a") and len(first) == 20


def test_several_samples_and_a_stop_string(run, capsys):
    assert main(["sample", "--out-dir", str(run), "--prompt", "the", "--num-samples", "3", "--max-new-tokens", "30"]) == 0
    out = capsys.readouterr().out
    assert out.count("-" * 40) == 2 and out.count("the") >= 3
    assert main(["sample", "--out-dir", str(run), "--prompt", "the", "--max-new-tokens", "200", "--stop", " ", "--greedy"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(" \n") and out.count(" ") == 1  # stops right after the first space it generates


def test_greedy_sampling_is_deterministic(run, capsys):
    outs = []
    for seed in ("1", "2"):
        assert main(["sample", "--out-dir", str(run), "--prompt", "lord", "--greedy", "--max-new-tokens", "30", "--seed", seed]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]


def test_plot_writes_a_png(run):
    require("matplotlib", extra="plot")
    assert main(["plot", str(run)]) == 0
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- bad input: one line, no traceback, non-zero status ---------------------------------------------

def test_plot_of_a_directory_without_a_log(tmp_path, capsys):
    assert_one_line_error(command(capsys, "plot", str(tmp_path)), "log.jsonl does not exist")


def test_missing_data_file(tmp_path, capsys):
    assert_one_line_error(command(capsys, "train", "--data", str(tmp_path / "missing.txt"), "--out-dir", str(tmp_path / "o")),
                          "data file", "missing.txt does not exist")


def test_unknown_config_key_in_a_file(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("max_iters = 10\nlearning_rat = 0.1\n")
    assert_one_line_error(command(capsys, "train", "--config", str(config)), "unknown", "'learning_rat'")


def test_invalid_config_value_in_a_file(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('max_iters = "many"\n')
    assert_one_line_error(command(capsys, "train", "--config", str(config)), "max_iters must be a positive integer, got 'many'")


def test_invalid_toml(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("max_iters = = 3\n")
    assert_one_line_error(command(capsys, "train", "--config", str(config)), "is not valid TOML")


def test_unknown_flag_and_bad_flag_value():
    result = minigpt("train", "--max-iter", "3")
    assert_one_line_error(result, "unrecognized arguments: --max-iter")
    assert result.returncode == 2
    assert_one_line_error(minigpt("train", "--max-iters", "lots"), "--max-iters", "invalid int value")
    assert_one_line_error(minigpt("train", "--n-embd", "100", "--n-head", "3"), "n_embd (100) must be divisible by n_head (3)")


def test_corrupted_checkpoint(run, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    ckpt = broken / json.loads((broken / "checkpoints.json").read_text())["best"]
    (ckpt / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    assert_one_line_error(command(capsys, "sample", "--out-dir", str(broken)), "model.safetensors does not match the SHA-256")


def test_truncated_checkpoint(run, tmp_path, capsys):
    import shutil

    broken = tmp_path / "truncated"
    shutil.copytree(run, broken)
    for ckpt in broken.glob("ckpt-*"):
        data = (ckpt / "model.safetensors").read_bytes()
        (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert_one_line_error(command(capsys, "sample", "--out-dir", str(broken)), "model.safetensors does not match the SHA-256")
    assert_one_line_error(command(capsys, "train", "--resume", "--out-dir", str(broken)), "does not match the SHA-256")


def test_checkpoint_with_a_missing_file(run, tmp_path, capsys):
    import shutil

    broken = tmp_path / "incomplete"
    shutil.copytree(run, broken)
    for ckpt in broken.glob("ckpt-*"):
        (ckpt / "tokenizer.json").unlink()
    assert_one_line_error(command(capsys, "sample", "--out-dir", str(broken)), "tokenizer.json is missing; the checkpoint is incomplete")


def test_prompt_with_characters_outside_the_vocabulary(run, capsys):
    assert_one_line_error(command(capsys, "sample", "--out-dir", str(run), "--prompt", "the kïng"),
                          "character 'ï' (U+00EF) at position 5 is not in the vocabulary")


def test_prompt_longer_than_the_context(run, capsys):
    assert_one_line_error(command(capsys, "sample", "--out-dir", str(run), "--prompt", "the king " * 3),
                          "the prompt has 27 tokens but the model's context (block_size) is 16")


def test_fine_tuning_with_a_larger_context_than_the_checkpoint(run, tmp_path, capsys):
    text = make_text(tmp_path / "t.txt", seed=3)
    assert_one_line_error(command(capsys, "train", "--data", str(text), "--init-from", str(run), "--block-size", "32",
                                  "--out-dir", str(tmp_path / "ft")),
                          "has block_size 16; it cannot be fine-tuned with block_size 32")


def test_no_checkpoint_to_sample_or_resume(tmp_path, capsys):
    assert_one_line_error(command(capsys, "sample", "--out-dir", str(tmp_path)), "no minigpt checkpoint in")
    assert_one_line_error(command(capsys, "train", "--resume", "--out-dir", str(tmp_path)), "nothing to resume in", "without --resume")


def test_a_new_run_does_not_overwrite_an_old_one(run, capsys):
    assert_one_line_error(command(capsys, "train", "--out-dir", str(run)), "already holds a run", "--resume")


def test_resume_cannot_change_the_model(run, capsys):
    assert_one_line_error(command(capsys, "train", "--resume", "--out-dir", str(run), "--n-layer", "3"), "cannot change n_layer when resuming")


def test_missing_tiny_shakespeare_says_how_to_supply_it(tmp_path):
    env_run = subprocess.run(
        [sys.executable, "-m", "minigpt.cli", "train", "--out-dir", str(tmp_path / "o")], capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items() if k != "MINIGPT_DATA"}, "MINIGPT_CACHE": str(tmp_path / "cache"),
             "PYTHONPATH": os.pathsep.join(sys.path), "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"})
    assert_one_line_error(env_run, "Tiny Shakespeare was not found", "--data PATH")
