"""The settings of a run: one flat table of names (the flags, a config file's keys, a checkpoint's train_config.json)
into one TrainConfig that holds its model's GPTConfig; every value checked once, as the config is built, and an error
naming where the value came from (minigpt/settings.py, minigpt/config.py)."""

import json
from dataclasses import fields, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt import checkpoint, settings
from minigpt.config import (MODEL_SETTINGS, SET_BY_THE_RUN, SETTINGS, GPTConfig, SettingError, TrainConfig,
                            recipe_model)
from minigpt.files import sha256_of
from helpers import TINY, cli, error_line, make_text, train


def test_the_settings_are_trainconfigs_own_and_the_models_each_once():
    own = [f.name for f in fields(TrainConfig) if f.name != "model"]
    assert sorted(SETTINGS) == sorted(own + list(MODEL_SETTINGS))
    assert not set(own) & set(MODEL_SETTINGS) - {"vocab_size"}  # (vocab_size: the run's, SET_BY_THE_RUN for the model)
    assert "vocab_size" in SET_BY_THE_RUN and "vocab_size" not in MODEL_SETTINGS
    assert not any(f.name in MODEL_SETTINGS for f in fields(TrainConfig))  # held in .model, not copied


@given(st.sampled_from(["gpt2", "llama", "qwen3"]), st.integers(1, 3), st.sampled_from([None, 1, 2]),
       st.floats(0, 0.9), st.booleans())
def test_a_flat_table_round_trips_through_trainconfig(arch, n_layer, n_kv_head, dropout, lora):
    table = {"arch": arch, "n_layer": n_layer, "dropout": dropout, "learning_rate": 3e-3, "max_iters": 7}
    if arch != "gpt2" and n_kv_head is not None:
        table["n_kv_head"] = n_kv_head
    if lora:
        table.update(lora_rank=2, lora_targets="mlp")
    cfg = TrainConfig.from_dict(table)
    assert isinstance(cfg.model, GPTConfig) and cfg.model.vocab_size is None  # the data sets it
    assert (cfg.model.arch, cfg.model.n_layer, cfg.model.dropout) == (arch, n_layer, dropout)
    assert cfg.model.n_embd == recipe_model().n_embd  # what the table leaves out: the recipe's
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg


@pytest.mark.parametrize("layer, where", [
    ("flag", "--n-layer must be a positive integer, got 0"),
    ("file", ": n_layer must be a positive integer, got 0"),
])
def test_a_bad_model_value_is_named_as_its_source_gave_it(tmp_path, layer, where):
    config = tmp_path / "run.toml"
    config.write_text("n_layer = 0\n")
    given_ = settings.given({"n_layer": 0}) if layer == "flag" else settings.given({}, str(config))
    with pytest.raises(ValueError) as e:
        settings.merge(given_)
    assert where in str(e.value)
    if layer == "file":
        assert str(e.value).startswith(str(config))


def test_a_bad_value_of_a_preset_names_the_preset(monkeypatch):
    monkeypatch.setitem(settings.TASK_PRESETS, "sort", {**settings.TASK_PRESETS["sort"], "beta2": 1.5})
    with pytest.raises(ValueError, match="^the sort task's beta2 must be a number in \\[0, 1\\), got 1.5$"):
        settings.merge(settings.given({"task": "sort"}))


def test_each_value_is_checked_once_where_its_config_is_built(monkeypatch):
    # the rule of a setting lives in one place: config.check_field, called as a GPTConfig or TrainConfig is built;
    # settings.given checks only the few that choose what the others merge over (CHOOSERS)
    from minigpt import config

    calls = []
    real = config.check_field
    monkeypatch.setattr(config, "check_field", lambda f, value: calls.append(f.name) or real(f, value))
    settings.merge(settings.given({"learning_rate": 2e-3, "n_layer": 2, "dropout": 0.1}))
    assert calls.count("learning_rate") == calls.count("n_layer") == calls.count("dropout") == 1


def test_a_fine_tune_is_the_checkpoints_model_with_its_overrides():
    base = GPTConfig(vocab_size=70, block_size=32, n_layer=2, n_head=2, n_embd=16, arch="llama", n_kv_head=1,
                     dropout=0.3, labels=("a", "b"))
    start = settings.Start("fine-tune", None, None, base)
    cfg = settings.merge(settings.given({"block_size": 16, "lora_rank": 4, "task": "shakespeare-speakers"}), start)
    assert cfg.model == replace(base, block_size=16, lora_rank=4, dropout=0.2)  # dropout: the task's preset
    assert settings.merge(settings.given({}), start).model.dropout == 0.0  # a run's, not the checkpoint's
    for change, match in (({"n_layer": 3}, "has n_layer 2; it cannot be fine-tuned with n_layer 3"),
                          ({"block_size": 64}, "has block_size 32; it cannot be fine-tuned with block_size 64"),
                          ({"arch": "gpt2"}, "has arch 'llama'; it cannot be fine-tuned with arch 'gpt2'")):
        with pytest.raises(ValueError, match=match):
            settings.merge(settings.given(change), start)


def test_settingerror_names_its_key():
    with pytest.raises(SettingError) as e:
        GPTConfig(vocab_size=10, lora_rank=2, lora_dropout=1.0)
    assert (e.value.key, e.value.problem) == ("lora_dropout", "must be a number in [0, 1), got 1.0")


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    return make_text(tmp_path_factory.mktemp("settings") / "text.txt", seed=3)


def test_a_checkpoint_saved_with_its_model_left_to_its_family_resumes(text, tmp_path, capsys):
    # train_config.json used to hold the model's settings as given, None for what the family fills in; such a
    # checkpoint resumes, its model read whole from its config.json
    run = tmp_path / "run"
    train("--data", str(text), "--out-dir", str(run), "--max-iters", "2", "--eval-interval", "2", *TINY,
          "--arch", "llama", "--n-kv-head", "1")
    ckpt = run / "ckpt-000002"
    saved = json.loads((ckpt / "train_config.json").read_text())
    for key in ("bias", "head_dim", "intermediate_size", "norm_eps", "rope_theta", "tie_word_embeddings"):
        saved[key] = None
    (ckpt / "train_config.json").write_text(json.dumps(saved))
    manifest = json.loads((ckpt / checkpoint.MANIFEST).read_text())
    manifest["files"]["train_config.json"] = {"size": (ckpt / "train_config.json").stat().st_size,
                                              "sha256": sha256_of(ckpt / "train_config.json")}
    (ckpt / checkpoint.MANIFEST).write_text(json.dumps(manifest))
    resumed = checkpoint.read_train_config(ckpt)
    family = recipe_model(arch="llama", n_embd=16, n_head=2).intermediate_size  # (8C/3, to a multiple of 8)
    assert resumed.model.intermediate_size == family and resumed.model.n_kv_head == 1  # from config.json, whole
    assert cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "4")[0] == 0
    code, err = cli(capsys, "train", "--resume", "--out-dir", str(run), "--max-iters", "6", "--n-embd", "32")
    assert code == 1
    error_line(err, "cannot change n_embd when resuming (16 in", "32 now)")
