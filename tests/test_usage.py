"""What a new user meets first: the README's commands as written, the line `minigpt train` ends with, records longer
than the context (--truncate), a conversation that goes on past a line the model cannot read, settings that do not
go together, and the messages and help of every command."""

import argparse
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import TINY, cli, error_line, make_text, train
from minigpt import runtime
from minigpt.chat import Refused, check_message
from minigpt.cli import build_parser, main
from minigpt.config import RECIPE_MODEL, SETTINGS, TrainConfig, setting_field
from minigpt.data import load_tokenizer
from minigpt.data.chars import CharTokenizer
from minigpt.data.record_datasets import open_records
from minigpt.data.records import EOT, EXTRACT
from minigpt.optim import get_lr

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
# a block the slow test below does not run as written: it needs Debian's archive and half an hour (the base model's
# pretraining, measured as written in docs/pretraining.md); its commands are parsed all the same
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
INLINE_COMMAND = re.compile(r"(?<!`)`(minigpt [^`\n]+)`(?!`)")
# the models the README names by their Hub id; the run of its commands below lays them into a Hugging Face cache
HUB_MODELS = ("gpt2", "HuggingFaceTB/SmolLM2-135M")


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def command_output(capsys, *args):
    """`minigpt ARGS` in this process: its exit status, stdout and stderr."""
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    return make_text(tmp_path_factory.mktemp("usage") / "text.txt", seed=0)


@pytest.fixture(scope="module")
def text_run(text):
    out = text.parent / "run"
    train("--data", str(text), "--out-dir", str(out), "--max-iters", "2", *TINY)
    return out


# --- the README's commands ------------------------------------------------------------------------------------------

def readme_commands(blocks=BASH_BLOCK) -> list[list[str]]:
    """Every command line of the README's bash blocks (or `blocks`), in order, as argv (comments dropped; `mpiexec -n
    N` before a command, and the setup commands pip and pytest, left out)."""
    commands = []
    for block in blocks.findall(README.read_text()):
        for line in block.splitlines():
            for part in line.split("&&"):
                argv = shlex.split(part, comments=True)
                if argv[:1] == ["mpiexec"]:
                    argv = argv[3:]
                if argv[:1] == ["minigpt"]:
                    commands.append(argv)
    return commands


def test_every_command_of_the_readme_parses_with_the_commands_own_parser(capsys):
    # and the commands the text quotes with their flags (`minigpt train --no-bias`; `minigpt eval` alone names one)
    inline = [shlex.split(span) for span in INLINE_COMMAND.findall(README.read_text()) if " -" in span]
    commands = readme_commands() + readme_commands(SH_BLOCK) + inline
    assert len(commands) > 30 and readme_commands(SH_BLOCK)
    for argv in commands:
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as e:  # a usage error (2), or `minigpt train --help` (0)
            assert e.code == 0, f"README.md: `{shlex.join(argv)}` does not parse: {capsys.readouterr().err}"


def test_the_readmes_commands_in_order_each_write_a_run_of_their_own_and_read_only_what_exists():
    """As the README's commands run one after another: a run never starts in a directory that an earlier one wrote
    (it would be refused: "already holds a run"), --resume continues one that exists, and every command that reads a
    model reads a run written before it or a model of the Hub."""
    written = []
    for argv in readme_commands():
        args = build_parser().parse_args(argv[1:])
        line = shlex.join(argv)
        if args.command == "train":
            resume = vars(args).get("resume")
            out = resume if isinstance(resume, str) else vars(args).get("out_dir", TrainConfig.out_dir)
            if resume:
                assert out in written, f"README.md: `{line}` resumes {out}, which no command before it trained"
            else:
                assert out not in written, f"README.md: `{line}` starts a run in {out}, which already holds one"
                written.append(out)
            origin = vars(args).get("init_from")
            assert origin is None or origin in written or origin in HUB_MODELS, \
                f"README.md: `{line}` starts from {origin}, which no command before it trained"
        elif args.command in ("sample", "chat", "eval", "export", "inspect"):
            assert args.out_dir in written or args.out_dir in HUB_MODELS, \
                f"README.md: `{line}` reads {args.out_dir}, which no command before it trained"
        elif args.command == "plot":
            assert args.run_dir in written, f"README.md: `{line}` plots {args.run_dir}, which no command trained"
    assert len(written) >= 15


def hub_cache(hf_home: Path, repo_id: str, files: Path) -> None:
    """files as huggingface_hub's cache holds a model downloaded at one commit (refs/main names it)."""
    commit = "0" * 40
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in files.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def readme_inputs(directory: Path, shakespeare: Path) -> None:
    """The files the README's commands take as the user's own: texts, records, a config file, and the Hub's models
    (tiny ones, in a Hugging Face cache under directory/hf-home)."""
    from minigpt import GPT, GPTConfig, hf
    from minigpt.data.bpe import BPETokenizer
    from minigpt.data.record_tasks import build

    text = shakespeare.read_text()
    (directory / "other.txt").write_text(text[:100_000])
    (directory / "my.txt").write_text(text[200_000:260_000])
    (directory / "run.toml").write_text("max_iters = 200\nn_layer = 2\neval_interval = 100\n")
    lines = [line for line in text[:200_000].splitlines() if 0 < len(line) <= 28]
    write_jsonl(directory / "my.jsonl", [{"prompt": a + "\n", "completion": b}
                                         for a, b in zip(lines[:400], lines[1:401])])
    speakers, n_val = build("shakespeare-speakers", str(shakespeare))
    (directory / "held-out.jsonl").write_text("".join(speakers.read_text().splitlines(keepends=True)[-n_val:]))
    tokenizer = BPETokenizer.train(text[:50_000], 400)
    for repo_id, config in (("gpt2", GPTConfig(vocab_size=tokenizer.vocab_size, block_size=256, n_layer=2, n_head=2,
                                               n_embd=32)),
                            ("HuggingFaceTB/SmolLM2-135M", GPTConfig(vocab_size=tokenizer.vocab_size, block_size=128,
                                                                     n_layer=2, n_head=2, n_embd=32, arch="llama"))):
        files = directory / "models" / repo_id.replace("/", "--")
        hf.save_pretrained(GPT(config, seed=0).eval(), files, tokenizer)
        hub_cache(directory / "hf-home", repo_id, files)


@pytest.mark.slow
def test_every_bash_block_of_the_readme_runs_as_written_in_order(tmp_path, shakespeare):
    """The README's bash blocks, verbatim, one after another in one directory, each a script that stops at its first
    failing command. pip and pytest are stand-ins that do nothing (minigpt is installed, and the tests are what runs
    this); minigpt is this interpreter's; Tiny Shakespeare comes through MINIGPT_DATA, the Hub's models from a cache
    laid out here, offline."""
    readme_inputs(tmp_path, shakespeare)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_ins = (("pip", "exit 0"), ("pytest", "exit 0"), ("minigpt", f'exec {sys.executable} -m minigpt.cli "$@"'))
    for name, body in stand_ins:
        (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "MINIGPT_DATA": str(shakespeare),
           "PYTHONPATH": os.pathsep.join(sys.path), "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    for i, block in enumerate(BASH_BLOCK.findall(README.read_text())):
        script = tmp_path / f"block-{i}.sh"
        script.write_text(block)
        done = subprocess.run(["bash", "-e", "-o", "pipefail", str(script)], cwd=tmp_path, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        assert done.returncode == 0, \
            f"README.md bash block {i}:\n{block}\nfailed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


# --- the line `minigpt train` ends with -----------------------------------------------------------------------------

def next_command(out: str) -> list[str]:
    """The command the last line of `minigpt train`'s output names, as argv."""
    line = out.strip().splitlines()[-1]
    assert line.startswith("checkpoints in ")
    return shlex.split(line.split(": ", 1)[1].split(" (")[0])


def test_after_a_task_the_command_it_names_answers_a_held_out_problem(tmp_path, capsys):
    code, out, err = command_output(capsys, "train", "--task", "sort", "--out-dir", str(tmp_path / "sort"),
                                    "--max-iters", "1", "--eval-iters", "1", "--batch-size", "4")
    assert code == 0, err
    argv = next_command(out)
    assert argv[:2] == ["minigpt", "sample"]
    code, sample, err = command_output(capsys, *argv[1:])
    assert code == 0, err
    prompt = argv[argv.index("--prompt") + 1]
    assert len(prompt) == 6 and sample.startswith(prompt)
    assert re.fullmatch(r"[012]{12}\n", sample)  # the question and an answer of 6 digits, nothing more


def test_after_instructions_the_command_it_names_talks_and_after_a_classifier_it_scores(tmp_path, text_run, capsys,
                                                                                       monkeypatch):
    instructions = write_jsonl(tmp_path / "sort.jsonl", [{"prompt": q + "=", "completion": "".join(sorted(q))}
                                                         for q in ("210", "102", "2210", "0121", "11", "20")])
    code, out, err = command_output(capsys, "train", "--data", str(instructions), "--out-dir", str(tmp_path / "i"),
                                    "--max-iters", "1", *TINY)
    assert code == 0, err
    argv = next_command(out)
    assert argv[:2] == ["minigpt", "chat"]
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a conversation of no lines
    assert main(argv[1:]) == 0
    one_reply = shlex.split(out.strip().splitlines()[-1].split("one reply: ")[1].rstrip(")"))
    assert main([*one_reply[1:-1], "210="]) == 0  # TEXT: a message

    labelled = write_jsonl(tmp_path / "labels.jsonl", [{"text": t, "label": t.split()[0]}
                                                       for t in ("the king", "the queen", "lord of", "my lord")] * 3)
    code, out, err = command_output(capsys, "train", "--data", str(labelled), "--init-from", str(text_run),
                                    "--out-dir", str(tmp_path / "c"), "--max-iters", "1", *TINY)
    assert code == 0, err
    argv = next_command(out)
    assert argv[:2] == ["minigpt", "eval"] and "HELD-OUT.jsonl" in argv
    argv[argv.index("HELD-OUT.jsonl")] = str(labelled)
    code, scores, err = command_output(capsys, *argv[1:])
    assert code == 0 and "accuracy" in scores, err


# --- --truncate: records longer than the context --------------------------------------------------------------------

CHARS = st.text(alphabet="abc=", min_size=1, max_size=30)


@given(st.lists(st.tuples(CHARS, CHARS), min_size=2, max_size=12), st.integers(2, 24))
@settings(max_examples=40)
def test_truncate_cuts_completions_on_the_right_and_drops_records_with_nothing_left_to_learn(tmp_path_factory, pairs,
                                                                                              block_size):
    path = write_jsonl(tmp_path_factory.mktemp("t") / "r.jsonl", [{"prompt": p, "completion": c} for p, c in pairs])
    records = open_records(path, None)
    limit = block_size + 1  # an instruction's tokens (PLAIN: prompt, completion, <|endoftext|>); its last only a target
    whole = [(p, c) for p, c in pairs if len(p) + len(c) + 1 <= limit]
    cut = [(p, c) for p, c in pairs if len(p) + len(c) + 1 > limit and len(p) < limit]
    dropped = len(pairs) - len(whole) - len(cut)
    if not whole and not cut:  # every prompt alone fills the context: nothing to train on is left, and it says so
        with pytest.raises(ValueError, match="leaves nothing"):
            records.fit_examples(block_size, truncate=True)
        return
    said = records.fit_examples(block_size, truncate=True)
    # (text, tokens trained): a whole record's completion and <|endoftext|>; a cut one's completion up to the limit
    expected = sorted([(p + c + EOT, len(c) + 1) for p, c in whole]
                      + [((p + c)[:limit], limit - len(p)) for p, c in cut])
    assert sorted((records.tokenizer.decode(e.ids), int(e.trained.sum())) for e in records.examples) == expected
    assert records.sequence_length <= block_size
    if not cut and not dropped:
        assert said is None
    else:
        assert f"{len(cut)} of the {len(pairs)} records" in said
        assert (f"{dropped} dropped" in said) == (dropped > 0)


@given(st.lists(st.text(alphabet="xyz ", min_size=1, max_size=40), min_size=2, max_size=10), st.integers(2, 30))
@settings(max_examples=40)
def test_truncate_cuts_a_classified_text_before_its_extract_token(tmp_path_factory, texts, block_size):
    path = write_jsonl(tmp_path_factory.mktemp("t") / "r.jsonl",
                       [{"text": t, "label": "ab"[i % 2]} for i, t in enumerate(texts)])
    records = open_records(path, None)
    records.fit_examples(block_size, truncate=True)
    assert len(records.examples) == len(texts)  # none dropped: every text keeps its beginning
    for e, (i, t) in zip(records.examples, enumerate(texts)):
        assert records.tokenizer.decode(e.ids) == t[:block_size - 1] + EXTRACT  # the head reads <|extract|>, last
        assert records.labels[e.label] == "ab"[i % 2]


def test_records_longer_than_the_context_are_refused_unless_truncate_and_then_counted(tmp_path, capsys):
    # (block size 16: 17 tokens at most) line 1 is longer with its prompt alone; line 12 has 6 + 11 + 1 tokens
    records = write_jsonl(tmp_path / "r.jsonl", [{"prompt": "a" * 30, "completion": "c"}]
                          + [{"prompt": "ab" * 3, "completion": "c" * n} for n in range(1, 12)])
    args = ["train", "--data", str(records), "--max-iters", "1", *TINY]
    code, err = cli(capsys, *args, "--out-dir", str(tmp_path / "refused"))
    assert code == 1
    error_line(err, "line 1 has 32 tokens", "context of 16", "and 1 more record)", "--truncate")
    assert not (tmp_path / "refused").exists()
    code, err = cli(capsys, *args, "--out-dir", str(tmp_path / "cut"), "--truncate")
    assert code == 0, err
    assert "--truncate: 1 of the 12 records" in err and "1 dropped" in err
    (tmp_path / "run.toml").write_text("truncate = true\n")  # a setting like every other: a TOML key too
    assert cli(capsys, *args, "--out-dir", str(tmp_path / "toml"), "--config", str(tmp_path / "run.toml"))[0] == 0


def test_eval_refuses_records_longer_than_the_context_unless_truncate(tmp_path, capsys):
    short = write_jsonl(tmp_path / "short.jsonl", [{"prompt": "ab=", "completion": "ba"}] * 4)
    train("--data", str(short), "--out-dir", str(tmp_path / "run"), "--max-iters", "1", *TINY)
    long = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "ab=", "completion": "ba" * k} for k in (1, 9, 20)])
    code, err = cli(capsys, "eval", "--out-dir", str(tmp_path / "run"), "--data", str(long))
    assert code == 1
    error_line(err, "line 2", "--truncate")
    code, out, err = command_output(capsys, "eval", "--out-dir", str(tmp_path / "run"), "--data", str(long),
                                    "--truncate")
    assert code == 0 and "--truncate: 2 of the 3 records" in err and "loss" in out


def test_truncate_is_for_records_and_lm_loss_weight_for_classifiers(text, tmp_path, capsys):
    for flag in (["--truncate"], ["--lm-loss-weight", "0.5"]):
        code, err = cli(capsys, "train", "--data", str(text), "--out-dir", str(tmp_path / "run"), "--max-iters", "1",
                        *TINY, *flag)
        assert code == 1
        error_line(err, flag[0])
        assert not (tmp_path / "run").exists()


# --- a conversation goes on -----------------------------------------------------------------------------------------

@given(st.text(alphabet="012=", max_size=20), st.text(alphabet="012=", max_size=20), st.sampled_from("xé\t🚀"))
def test_a_character_outside_the_vocabulary_is_named_by_its_column_in_the_typed_line(before, after, stranger):
    tokenizer = CharTokenizer("012=").with_chat([EOT], None)
    with pytest.raises(Refused, match=f"^column {len(before) + 1}: the character {re.escape(repr(stranger))}"):
        check_message(tokenizer, before + stranger + after)
    check_message(tokenizer, before + after)  # (and a line of the vocabulary passes)


def chat(capsys, monkeypatch, run, lines):
    """`minigpt chat` with lines typed (piped): its exit status, stdout and stderr."""
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    return command_output(capsys, "chat", "--out-dir", str(run), "--greedy", "--max-new-tokens", "4")


def test_chat_says_what_is_wrong_with_a_line_and_goes_on_with_the_conversation(tmp_path, capsys, monkeypatch):
    records = write_jsonl(tmp_path / "r.jsonl", [{"prompt": q + "=", "completion": "".join(sorted(q))}
                                                 for q in ("210", "102", "2210", "0121", "11", "20")])
    train("--data", str(records), "--out-dir", str(tmp_path / "run"), "--max-iters", "2", *TINY)
    code, out, err = chat(capsys, monkeypatch, tmp_path / "run", ["21=", "2x1=", "1" * 40, "12="])
    assert code == 0, err
    said = err.strip().splitlines()
    assert len(said) == 2 and all(line.startswith("this line was not sent: ") for line in said)
    assert "column 2: the character 'x'" in said[0]  # its place in what was typed, not in the templated conversation
    assert "the message is" in said[1] and "tokens" in said[1]
    # the conversation went on as if the two lines had not been typed
    assert (code, out) == chat(capsys, monkeypatch, tmp_path / "run", ["21=", "12="])[:2]
    assert len(out.splitlines()) == 2


# --- settings that do not go together -------------------------------------------------------------------------------

def test_min_lr_above_the_learning_rate_is_refused_naming_both_flags(text, tmp_path, capsys):
    code, err = cli(capsys, "train", "--data", str(text), "--out-dir", str(tmp_path / "run"), "--max-iters", "1",
                    *TINY, "--min-lr", "1e-2", "--learning-rate", "1e-3")
    assert code == 1
    error_line(err, "--min-lr", "--learning-rate")
    with pytest.raises(ValueError, match="--min-lr"):
        TrainConfig(learning_rate=5e-5, min_lr=1e-4)
    TrainConfig(learning_rate=5e-5, min_lr=1e-4, decay_lr=False)  # (no decay: min_lr is not used)


@given(st.floats(1e-7, 1.0), st.integers(0, 50), st.integers(1, 300))
def test_a_learning_rate_given_alone_never_rises_after_the_warmup(learning_rate, warmup_iters, max_iters):
    cfg = TrainConfig(learning_rate=learning_rate, warmup_iters=warmup_iters, max_iters=max_iters)
    rates = [get_lr(it, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.decay_iters)
             for it in range(cfg.warmup_iters, cfg.max_iters)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    rounding = 1e-12  # min_lr + 1.0 * (learning_rate - min_lr) need not be learning_rate to the last bit
    assert all(cfg.min_lr * (1 - rounding) <= r <= cfg.learning_rate * (1 + rounding) for r in rates)


def test_a_warmup_as_long_as_the_run_is_said(text, tmp_path, capsys):
    code, err = cli(capsys, "train", "--data", str(text), "--out-dir", str(tmp_path / "run"), "--max-iters", "2",
                    *TINY, "--warmup-iters", "5")
    assert code == 0
    assert "--warmup-iters 5 is not below --max-iters 2" in err


def test_resuming_past_max_iters_is_refused_and_a_finished_run_says_there_is_nothing_to_train(text, tmp_path, capsys):
    out = tmp_path / "run"
    train("--data", str(text), "--out-dir", str(out), "--max-iters", "4", *TINY)
    before = sorted(p.name for p in out.iterdir())
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(out), "--max-iters", "2")
    assert code == 1
    error_line(err, "at iter 4", "--max-iters 2")
    assert sorted(p.name for p in out.iterdir()) == before
    code, stdout, err = command_output(capsys, "train", "--resume", "--out-dir", str(out))
    assert code == 0 and stdout.startswith("nothing to train") and "done:" not in stdout


def test_threads_beyond_the_cores_are_capped_and_said(text_run, capsys):
    cores = runtime.available_cores()
    said = []
    assert runtime.within_cores(cores + 7, said.append) == cores and f"--threads {cores + 7}" in said[0]
    assert runtime.within_cores(cores, said.append) == cores and len(said) == 1
    try:
        code, _, err = command_output(capsys, "sample", "--out-dir", str(text_run), "--threads", str(cores + 7),
                                      "--max-new-tokens", "2")
        assert code == 0 and runtime.threads() == cores
        assert f"--threads {cores + 7} is more than the {cores} cores" in err
    finally:
        runtime.set_threads(None)


def test_a_bpe_vocabulary_the_text_is_too_small_for_is_said_with_the_size_reached(tmp_path, capsys):
    small = tmp_path / "small.txt"
    small.write_text("the cat sat on the mat, and the rat sat on the cat.\n" * 30)
    code, err = cli(capsys, "tokenizer", "train", "--data", str(small), "--vocab-size", "100000", "--out",
                    str(tmp_path / "tok"))
    assert code == 0
    reached = load_tokenizer(tmp_path / "tok").vocab_size
    assert reached < 100000 and f"--vocab-size 100000: the text gave {reached} tokens only" in err


def test_a_file_of_one_record_says_its_held_out_split_is_its_training_split(tmp_path, capsys):
    one = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "ab=", "completion": "ba"}])
    code, err = cli(capsys, "train", "--data", str(one), "--out-dir", str(tmp_path / "run"), "--max-iters", "1", *TINY)
    assert code == 0
    assert "holds 1 record, too few to hold any out" in err
    two = write_jsonl(tmp_path / "two.jsonl", [{"prompt": "ab=", "completion": "ba"}] * 2)
    code, err = cli(capsys, "train", "--data", str(two), "--out-dir", str(tmp_path / "run2"), "--max-iters", "1", *TINY)
    assert code == 0 and "too few to hold any out" not in err


# --- messages and help ----------------------------------------------------------------------------------------------

def options(parser, name="minigpt"):
    """(command, action) of every option of every command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from options(p, f"{name} {sub}")
        elif action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield name, action


def test_every_option_of_every_command_says_its_default():
    train_defaults = {"--" + name.replace("_", "-"): RECIPE_MODEL.get(name, setting_field(name).default)
                      for name in SETTINGS}
    for command, action in options(build_parser()):
        flag = action.option_strings[0]
        default = train_defaults[flag] if command == "minigpt train" and flag in train_defaults else action.default
        assert action.help, f"{command} {flag} has no help"
        assert "(default: None)" not in action.help, f"{command} {flag}: what does None mean?"
        if command == "minigpt train" and default is None and flag != "--config":  # a setting left out: what then
            assert "(default: " in action.help, f"{command} {flag}'s help does not say what leaving it out means"
        if action.required or default in (None, False):
            continue  # (a value that must be given, a flag that is off unless given, or nothing unless given)
        assert f"(default: {default})" in action.help, f"{command} {flag}'s help does not say its default, {default}"


def test_version_is_the_packages(capsys):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    code, out, _ = command_output(capsys, "--version")
    assert code == 0 and out == f"minigpt {version}\n"


@pytest.mark.parametrize("command, argv", [
    ("train", []), ("sample", []), ("chat", []), ("eval", ["--data", "x.jsonl"]), ("export", []), ("inspect", []),
    ("plot", ["out"]), ("tokenizer train", ["--vocab-size", "300", "--out", "t"])])
def test_an_unknown_flag_points_to_the_help_of_the_command_it_was_given_to(command, argv, capsys):
    code, err = cli(capsys, *command.split(), *argv, "--no-such-flag")
    assert code == 2
    error_line(err, "unrecognized arguments: --no-such-flag", f"(see `minigpt {command} --help`)")


def test_llmc_export_of_a_llama_says_the_format_is_gpt2s(text, tmp_path, capsys):
    train("--data", str(text), "--out-dir", str(tmp_path / "llama"), "--max-iters", "1", *TINY, "--arch", "llama")
    code, err = cli(capsys, "export", "--out-dir", str(tmp_path / "llama"), "--llmc", str(tmp_path / "m.bin"))
    assert code == 1
    line = error_line(err, "GPT-2 only", "--hf")
    assert "bias" not in line and not (tmp_path / "m.bin").exists()


def test_a_file_of_another_kind_of_record_is_named_with_its_article(tmp_path, capsys):
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [{"text": "a", "label": "x"}, {"prompt": "a", "completion": "b"}])
    code, err = cli(capsys, "train", "--data", str(mixed), "--out-dir", str(tmp_path / "run"))
    assert code == 1
    error_line(err, "line 2 is an instruction record", "is a classification record")


def test_a_file_given_as_a_model_is_said_to_be_no_run(text, tmp_path, capsys):
    for argv in (["sample", "--out-dir", str(text)],
                 ["train", "--init-from", str(text), "--data", str(text), "--out-dir", str(tmp_path / "run")]):
        code, err = cli(capsys, *argv)
        assert code == 1
        line = error_line(err, str(text), "is a file", "run directory")
        assert "does not exist" not in line
