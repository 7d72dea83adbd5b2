"""`minigpt train --method dpo` and `--method rl` as a user runs them: they learn what they should, survive a kill
and resume bit for bit, work with LoRA, refuse what does not go together in one line, and `minigpt eval` scores
preference pairs. The math is proven in tests/test_preference.py and tests/test_rl_estimator.py."""

import json
import signal

import numpy as np
import pytest

from minigpt.cli import main
from helpers import TINY, cli, error_line, minigpt, read_log
from test_faults import finish, snapshot

DIGITS = "0123456789"


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Addition records, pairs that prefer each right sum to a wrong one, and a model fine-tuned on the records a
    little (the starting point both methods need)."""
    tmp = tmp_path_factory.mktemp("preference")
    rng = np.random.default_rng(0)
    problems = [(int(a), int(b)) for a, b in rng.integers(0, 50, size=(120, 2))]
    records = write_jsonl(tmp / "add.jsonl", [{"prompt": f"{a}+{b}=", "completion": str(a + b)} for a, b in problems])
    # a preference against what fine-tuning taught: a 0 after each sum, which the model has never seen
    pairs = write_jsonl(tmp / "pairs.jsonl", [{"prompt": f"{a}+{b}=", "chosen": f"{a + b}0", "rejected": str(a + b)}
                                              for a, b in problems])
    sft = tmp / "sft"
    assert main(["train", "--data", str(records), *TINY, "--max-iters", "30", "--learning-rate", "1e-2",
                 "--out-dir", str(sft)]) == 0
    return tmp, records, pairs, sft


RUN = [*TINY, "--eval-interval", "5", "--backend", "numpy", "--threads", "1"]


def dpo(data, out, *flags):
    """`minigpt train --method dpo` on the pairs from the fine-tuned model; its log."""
    tmp, records, pairs, sft = data
    assert main(["train", "--method", "dpo", "--data", str(pairs), "--init-from", str(sft), *RUN, *flags,
                 "--out-dir", str(out)]) == 0
    return read_log(out)


def test_dpo_starts_at_log_2_and_learns_the_preferences(data, tmp_path):
    log = dpo(data, tmp_path / "dpo", "--max-iters", "40", "--learning-rate", "1e-2", "--dpo-beta", "0.5")
    assert log[0]["loss"] == pytest.approx(np.log(2.0), rel=1e-6)  # the model is its reference at the first step
    assert log[0]["reward_margin"] == pytest.approx(0.0, abs=1e-6)
    assert np.mean([r["loss"] for r in log[-5:]]) < 0.5 * np.log(2.0)
    assert np.mean([r["reward_accuracy"] for r in log[-5:]]) > 0.9
    assert log[-1]["val_accuracy"] > 0.9  # held-out pairs: the model's own preference


def test_rpo_keeps_the_chosen_completions_likelier_than_dpo_alone(data, tmp_path):
    """--rpo-alpha adds the chosen completions' cross-entropy: the run logs it, and it ends lower than without."""
    alone = dpo(data, tmp_path / "dpo", "--max-iters", "20", "--learning-rate", "1e-2")
    rpo = dpo(data, tmp_path / "rpo", "--max-iters", "20", "--learning-rate", "1e-2", "--rpo-alpha", "1")
    assert rpo[0]["chosen_nll"] == alone[0]["chosen_nll"]  # the same start
    assert rpo[0]["loss"] == pytest.approx(np.log(2.0) + rpo[0]["chosen_nll"], rel=1e-6)
    assert np.mean([r["chosen_nll"] for r in rpo[-5:]]) < np.mean([r["chosen_nll"] for r in alone[-5:]])


def test_eval_scores_the_preference_before_and_after(data, tmp_path, capsys):
    tmp, records, pairs, sft = data
    out = tmp_path / "dpo"
    dpo(data, out, "--max-iters", "40", "--learning-rate", "1e-2", "--dpo-beta", "0.5")
    scores = {}
    for name, model in (("before", sft), ("after", out)):
        scores_file = tmp_path / f"{name}.json"
        assert main(["eval", "--out-dir", str(model), "--data", str(pairs), "--json", str(scores_file)]) == 0
        scores[name] = json.loads(scores_file.read_text())
    assert scores["before"]["kind"] == "preference" and scores["before"]["records"] == 120
    assert scores["before"]["preference_accuracy"] < 0.1  # the fine-tuned model ends a sum where it ends
    assert scores["after"]["preference_accuracy"] > 0.9
    assert scores["after"]["logp_margin"] > scores["before"]["logp_margin"]
    assert "preference accuracy" in capsys.readouterr().out


def test_rl_rewards_exact_answers_and_logs_them(data, tmp_path):
    tmp, records, pairs, sft = data
    out = tmp_path / "rl"
    assert main(["train", "--method", "rl", "--data", str(records), "--init-from", str(sft), *RUN, "--max-iters", "6",
                 "--rl-group", "4", "--out-dir", str(out)]) == 0
    log = read_log(out)
    assert all(0.0 <= r["reward"] <= 1.0 for r in log)
    assert "val_accuracy" in log[-1]  # held-out exact match, greedy


@pytest.mark.parametrize("method", ["dpo", "rl"])
def test_a_kill_then_resume_equals_the_uninterrupted_run(data, tmp_path, method):
    """Killed while saving its second checkpoint, resumed: every file and log line as an uninterrupted run's (the
    reference's log-probabilities, dpo; the completions sampled, rl)."""
    tmp, records, pairs, sft = data
    command = ["train", "--method", method, "--data", str(pairs if method == "dpo" else records), "--init-from",
               str(sft), *RUN, "--max-iters", "15", "--rl-group", "3"]
    assert main([*command, "--out-dir", str(tmp_path / "reference")]) == 0
    out = tmp_path / "run"
    killed = minigpt(*command, "--out-dir", str(out), fault="save.renamed@2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    finish(out, [*command, "--out-dir", str(out)])
    assert without_origin(snapshot(out)) == without_origin(snapshot(tmp_path / "reference"))


def without_origin(snapshot_):
    """A snapshot (test_faults.snapshot) but for the one thing a resumed fine-tune saves otherwise: its settings'
    init_from, which a resume clears (the weights it started from are in its checkpoints), and so the manifest's
    SHA-256 of that file."""
    pointer, files, log = snapshot_
    kept = {}
    for name, content in files.items():
        if name.endswith("train_config.json"):
            kept[name] = {k: v for k, v in json.loads(content).items() if k != "init_from"}
        elif not name.endswith("manifest.json"):
            kept[name] = content
    return pointer, kept, log


@pytest.mark.parametrize("method", ["dpo", "rl"])
def test_with_lora_the_base_stays_frozen(data, tmp_path, method):
    from minigpt import load
    from minigpt.lora import is_adapter

    tmp, records, pairs, sft = data
    out = tmp_path / "lora"
    # rl: the answer an empty completion, its end token alone, which a model fine-tuned a little on sums samples first
    # now and then (a sum it has not learnt): rewards that are not all 0
    stop = write_jsonl(tmp_path / "stop.jsonl", [{"prompt": f"{a}+{a}=", "completion": ""} for a in range(40)])
    assert main(["train", "--method", method, "--data", str(pairs if method == "dpo" else stop), "--init-from",
                 str(sft), *RUN, "--max-iters", "10", "--lora-rank", "4", "--learning-rate", "1e-2", "--rl-group", "4",
                 "--out-dir", str(out)]) == 0
    log = read_log(out)
    if method == "dpo":
        assert log[0]["loss"] == pytest.approx(np.log(2.0), rel=1e-6)  # LoRA's B = 0: the start is the reference
        assert log[-1]["reward_margin"] > 0
    else:
        assert 0 < max(r["reward"] for r in log) < 1
    before, after = load.read(sft).weights, load.read(out).weights
    adapters = [name for name in after if is_adapter(name)]
    assert adapters and any(np.any(after[name] != 0) for name in adapters if "lora_B" in name)
    for name, w in before.items():
        np.testing.assert_array_equal(after[name], w, err_msg=name)


@pytest.mark.parametrize("flags, fragments", [
    (["--method", "dpo", "--data", "{records}"], ("--method dpo trains on preference records",)),
    (["--data", "{pairs}"], ("preference records", "--method dpo")),
    (["--method", "rl", "--data", "{pairs}"], ("preference records", "--method dpo")),
    (["--method", "rl", "--task", "sort"], ("--task sort-instruct",)),
    (["--method", "rl", "--rl-group", "1", "--data", "{records}"], ("--rl-group", "at least 2")),
])
def test_what_does_not_go_together_is_refused_in_one_line(data, tmp_path, capsys, flags, fragments):
    tmp, records, pairs, sft = data
    flags = [f.format(records=records, pairs=pairs) for f in flags]
    code, err = cli(capsys, "train", *flags, "--init-from", str(sft), *RUN, "--out-dir", str(tmp_path / "x"))
    assert code != 0
    error_line(err, *fragments)
    assert not (tmp_path / "x").exists()


def test_a_method_that_improves_a_model_needs_one(data, tmp_path, capsys):
    tmp, records, pairs, sft = data
    code, err = cli(capsys, "train", "--method", "rl", "--data", str(records), *RUN, "--out-dir", str(tmp_path / "x"))
    assert code != 0
    error_line(err, "--method rl improves a model", "--init-from")


def test_conversational_pairs_train_only_the_assistant_s_turns(tmp_path):
    """TRL's conversational form: the prompt a list of messages, each completion a list of assistant messages,
    rendered by ChatML; a row's targets are its completion's tokens and ChatML's end of turn, nothing of the prompt."""
    from minigpt.data.record_datasets import open_records
    from minigpt.ops.cross_entropy import IGNORE_INDEX

    path = write_jsonl(tmp_path / "chat-pairs.jsonl", [
        {"prompt": [{"role": "system", "content": "Add."}, {"role": "user", "content": f"{a}+{a}"}],
         "chosen": [{"role": "assistant", "content": str(2 * a)}],
         "rejected": [{"role": "assistant", "content": str(2 * a + 1)}]} for a in range(12)])
    dataset = open_records(path)
    assert dataset.kind == "chat preference"
    dataset.keep_reference(None, [[0.0, 0.0]] * 12, resumed=True)
    batch = dataset.batch(dataset.splits["train"][:2])
    tokenizer = dataset.tokenizer
    for row, y in enumerate(batch.y):
        trained = tokenizer.decode([int(t) for t in y if t != IGNORE_INDEX])
        a = int(tokenizer.decode([int(t) for t in batch.x[row]]).split("<|im_start|>user\n")[1].split("+")[0])
        expected = str(2 * a) if row < 2 else str(2 * a + 1)
        assert trained == expected + "<|im_end|>\n", trained  # (ChatML's turn ends with its newline)
    assert batch.loss_count == 2 and batch.reference.shape == (4,)


GOOD = {"prompt": "1+2=", "chosen": "3", "rejected": "4"}
CHAT = {"prompt": [{"role": "user", "content": "1+2"}], "chosen": [{"role": "assistant", "content": "3"}],
        "rejected": [{"role": "assistant", "content": "4"}]}


@pytest.mark.parametrize("first, record, fragment", [
    (GOOD, {"prompt": "1+1=", "chosen": 2, "rejected": "3"}, "chosen must be a string"),
    (CHAT, {"prompt": [{"role": "user", "content": "1+1"}], "chosen": "2", "rejected": "3"},
     "chosen must be a non-empty list of assistant messages"),
    (CHAT, {"prompt": [{"role": "user", "content": "1+1"}], "chosen": [{"role": "user", "content": "2"}],
            "rejected": [{"role": "assistant", "content": "3"}]}, "chosen must be a non-empty list of assistant"),
    (GOOD, {"prompt": "1+1=", "chosen": "2"}, "{\"prompt\", \"chosen\", \"rejected\"}"),
    (GOOD, CHAT, "one file holds one kind of record"),
])
def test_a_bad_preference_record_is_refused_naming_its_line(data, tmp_path, capsys, first, record, fragment):
    tmp, records, pairs, sft = data
    path = write_jsonl(tmp_path / "bad.jsonl", [first, record])
    code, err = cli(capsys, "train", "--method", "dpo", "--data", str(path), "--init-from", str(sft), *RUN,
                    "--out-dir", str(tmp_path / "x"))
    assert code != 0
    error_line(err, f"{path} line 2", fragment)


def test_a_resumed_dpo_run_whose_state_lost_its_reference_is_refused(data, tmp_path, capsys):
    """The reference log-probabilities are read back as a resumed run's, never computed again from the trained model."""
    from minigpt.data.record_datasets import open_records
    tmp, records, pairs, sft = data
    dataset = open_records(pairs)
    for saved in (None, [[0.0, 0.0]] * 3, [["a", "b"]] * 120, [[float("nan"), 0.0]] * 120):
        with pytest.raises(ValueError, match="no reference log-probabilities for the 120 preference records"):
            dataset.keep_reference(None, saved, resumed=True)
