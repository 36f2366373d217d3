import re
from pathlib import Path

import pytest

from ferops.config import load_params, parse_params
from ferops.errors import ConfigError
from tests.conftest import REPO


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
    ],
)
def test_bad_model_training_or_search_config_is_refused_before_training(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_params(raw)


def test_the_fer2013_profile_is_a_valid_params_file():
    profile = load_params(REPO / "params" / "fer2013.yaml")
    assert profile.data.source == "image-folder" and profile.model.variant == "res_attention_cnn"
    assert profile.train.ema and profile.train.augment == 1.0 and profile.model.augment == 0.0
    assert profile.train.precision == "auto"  # bfloat16 only where it is faster


def test_the_gpu_profile_searches_the_full_resolution_family_and_trains_the_winner():
    profile = load_params(REPO / "params" / "fer2013-gpu.yaml")
    assert profile.train.use_tuned and profile.tune.pruner == "hyperband"
    assert set(profile.tune.space.variant) == {"vgg_attention_cnn", "res_attention_cnn"}
    assert set(profile.tune.space.optimizer) == {"adamw", "sgd"}
    assert False in profile.tune.space.stem_pool  # full 48x48 first stages are candidates
    assert profile.preprocess.contrast == "none" and profile.train.augment == 0.0
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
    ],
)
def test_a_typo_in_a_key_is_refused_naming_the_key_it_resembles(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_params(raw)
