"""params.yaml → typed Params: strict keys, named errors, defaults in one place, profiles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ferops.kernel.config import Params, apply_profile, load_params, parse_params
from ferops.kernel.errors import ConfigError
from tests.helpers import REPO


def test_the_real_params_file_loads():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "synthetic"
    assert set(params.validate.min_split_size) == {"train", "val", "test"}


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"data": {"source": "kaggle"}}, "data.source"),
        ({"data": {"synthetic": {"train_per_class": -3}}}, "data.synthetic.train_per_class"),
        ({"data": {"val_fraction": 0.9}}, "data.val_fraction"),
        ({"preprocess": {"contrast": "sharpen"}}, "preprocess.contrast"),
        ({"validate": {"min_split_size": {"train": "many"}}}, "validate.min_split_size.train"),
        ({"seed": "abc"}, "seed"),
        ({"monitor": {"psi": -0.1}}, "monitor.psi"),
        ({"monitor": {"min_answers": 0}}, "monitor.min_answers"),
        ({"feedback": {"holdout_fraction": 1.0}}, "feedback.holdout_fraction"),
        ({"retrain": {"trigger": "always"}}, "retrain.trigger"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_params(raw)


def test_missing_params_file_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"model": {"variant": "resnet50"}}, "model.variant"),
        ({"model": {"attention": "se"}}, "model.attention"),
        ({"train": {"epochs": -1}}, "train.epochs"),
        ({"train": {"class_weight": "yes"}}, "train.class_weight"),
        ({"train": {"mixup": -0.2}}, "train.mixup"),
        ({"train": {"precision": "float16"}}, "train.precision"),
        ({"tune": {"space": {"attention": []}}}, "tune.space.attention"),
        ({"tune": {"space": {"width": []}}}, "tune.space.width"),
        ({"tune": {"space": {"learning_rate": [0.01, 0.001]}}}, "tune.space.learning_rate"),
        ({"tune": {"n_trials": 0}}, "tune.n_trials"),
        ({"tune": {"train_fraction": 0}}, "tune.train_fraction"),
        ({"train": {"optimizer": "rmsprop"}}, "train.optimizer"),
        ({"model": {"stem_pool": "no"}}, "model.stem_pool"),
        ({"model": {"jitter": -1}}, "model.jitter"),
        ({"tune": {"pruner": "asha"}}, "tune.pruner"),
        ({"tune": {"max_minutes": 0}}, "tune.max_minutes"),
        ({"tune": {"space": {"variant": ["vgg16"]}}}, "tune.space.variant"),
        ({"tune": {"space": {"optimizer": ["sgd", "lion"]}}}, "tune.space.optimizer"),
        ({"tune": {"space": {"stem_pool": [1]}}}, "tune.space.stem_pool"),
        ({"tune": {"space": {"blocks": [0]}}}, "tune.space.blocks"),
        ({"tune": {"space": {"weight_decay": [0.1]}}}, "tune.space.weight_decay"),
        ({"model": {"crop": 50}}, "model.crop"),
        ({"model": {"crop": 16}}, "model.crop"),
        ({"model": {"attention_stages": "first"}}, "model.attention_stages"),
        ({"tune": {"space": {"crop": [44, 60]}}}, "tune.space.crop"),
        ({"tune": {"space": {"attention_stages": ["middle"]}}}, "tune.space.attention_stages"),
        ({"tune": {"pruner": "median", "min_train_fraction": 0.1}}, "tune.min_train_fraction"),
        (
            {"tune": {"pruner": "hyperband", "train_fraction": 0.2, "min_train_fraction": 0.3}},
            "tune.min_train_fraction",
        ),
    ],
)
def test_bad_model_training_or_search_config_is_refused_before_training(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_params(raw)


def test_the_fer2013_profile_is_a_valid_params_file():
    profile = load_params(REPO / "params" / "fer2013.yaml")
    assert profile.data.source == "image-folder" and profile.model.variant == "res_attention_cnn"
    assert profile.train.ema and profile.train.batch_augment == 1.0
    assert profile.model.layer_augment == 0.0
    assert profile.train.precision == "auto"  # bfloat16 only where it is faster


def test_the_gpu_profile_searches_the_full_resolution_family_and_trains_the_winner():
    profile = load_params(REPO / "params" / "fer2013-gpu.yaml")
    assert profile.train.use_tuned and profile.tune.pruner == "hyperband"
    assert set(profile.tune.space.variant) == {"vgg_attention_cnn", "res_attention_cnn"}
    assert set(profile.tune.space.optimizer) == {"adamw", "sgd"}
    assert False in profile.tune.space.stem_pool  # full 48x48 first stages are candidates
    assert profile.preprocess.contrast == "none" and profile.train.batch_augment == 0.0
    assert profile.model.jitter > 0  # augmentation inside the model, on the GPU
    assert profile.tune.storage.startswith("journal:")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"epoch": 3}}, "unknown key train.epoch; did you mean train.epochs?"),
        ({"modle": {"width": 8}}, "unknown key modle; did you mean model?"),
        ({"data": {"synthetic": {"difficult": 1}}}, "data.synthetic.difficult"),
        ({"tune": {"space": {"widht": [4]}}}, "did you mean tune.space.width?"),
        ({"validate": {"min_split_size": {"tests": 5}}}, "validate.min_split_size.tests"),
        ({"monitor": {"p_valeu": 0.05}}, "did you mean monitor.p_value?"),
    ],
)
def test_a_typo_in_a_key_is_refused_naming_the_key_it_resembles(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_params(raw)


@pytest.mark.parametrize(
    ("old", "new"),
    [("model.augment", "model.layer_augment"), ("train.augment", "train.batch_augment")],
)
def test_a_renamed_key_is_refused_naming_its_new_name(old, new, tmp_path):
    """A params file (or a profile) from before the rename fails at once, saying what to write."""
    section, key = old.split(".")
    with pytest.raises(ConfigError, match=re.escape(f"{old} is now {new}")):
        parse_params({section: {key: 0.5}})
    profile = tmp_path / "old-profile.yaml"
    profile.write_text(f"{section}:\n  {key}: 0.5\n")
    before = (REPO / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(before)
    with pytest.raises(ConfigError, match=re.escape(f"{old} is now {new}")):
        apply_profile(tmp_path / "params.yaml", profile)
    assert (tmp_path / "params.yaml").read_text() == before


def test_every_default_lives_in_the_dataclasses():
    """An empty params file means Params(): no second copy of a default to drift."""
    assert parse_params({}) == Params()


@pytest.mark.parametrize("profile", sorted((REPO / "params").glob("*.yaml")), ids=lambda p: p.name)
def test_every_profile_applies_to_params_yaml_and_changes_only_its_own_keys(profile, tmp_path):
    out = tmp_path / "params.yaml"
    changed = apply_profile(REPO / "params.yaml", profile, out)
    merged = load_params(out)  # strict: every key of the profile exists
    overlay = yaml.safe_load(profile.read_text())
    assert changed and all(_dotted(overlay, key) is not None for key in changed)
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    for key in _leaves(base):
        if not any(key == c or key.startswith(c + ".") for c in changed):
            assert _dotted(yaml.safe_load(out.read_text()), key) == _dotted(base, key), key
    assert merged.data.source == overlay["data"]["source"]
    assert "# " in out.read_text()  # params.yaml's comments survive


def test_a_profile_with_a_typo_is_refused_and_nothing_is_written(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1  # mine\ntrain:\n  epochs: 3\n")
    profile = tmp_path / "typo.yaml"
    profile.write_text("train:\n  epoch: 30\n")
    with pytest.raises(ConfigError, match=r"unknown key train\.epoch; did you mean train\.epochs"):
        apply_profile(params, profile)
    profile.write_text("train:\n  epochs: -1\n")
    with pytest.raises(ConfigError, match=r"train\.epochs must be"):
        apply_profile(params, profile)
    assert params.read_text() == "seed: 1  # mine\ntrain:\n  epochs: 3\n"

    profile.write_text("train:\n  epochs: 30\n")
    assert apply_profile(params, profile) == ["train.epochs"]
    assert params.read_text() == "seed: 1  # mine\ntrain:\n  epochs: 30\n"


def _leaves(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict):
            keys += _leaves(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _dotted(tree: dict, key: str):
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree
