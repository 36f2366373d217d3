"""Training helpers: class weights, tuned overrides, determinism, resumable state."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ferops.kernel.config import TrainConfig
from ferops.kernel.errors import ConfigError
from ferops.kernel.model_spec import ModelSpec
from ferops.training.fit import apply_tuned, class_weights


def test_class_weights_lift_the_rare_class():
    labels = np.array([0] * 90 + [1] * 10 + [2, 3, 4, 5, 6] * 20)
    weights = class_weights(labels)
    assert weights[1] > 5 * weights[0]
    assert np.isclose(sum(weights[c] * np.sum(labels == c) for c in range(7)), len(labels))


def test_tuned_values_override_the_config_and_unknown_keys_are_refused():
    spec, config = apply_tuned(ModelSpec(), TrainConfig(), {"width": 24, "learning_rate": 0.01})
    assert spec.width == 24 and config.learning_rate == 0.01
    with pytest.raises(ConfigError, match=r"unknown key.*momentum"):
        apply_tuned(ModelSpec(), TrainConfig(), {"momentum": 0.9})


def test_state_survives_an_upgrade_that_adds_a_default_setting_but_not_a_changed_one(
    params, tmp_path
):
    from ferops.training.fit import resume_state

    state = tmp_path / "state"
    identity = {
        "model": dataclasses.asdict(params.model),
        "train": dataclasses.asdict(params.train),
        "seed": 42,
        "data_sha1": "abc",
    }
    older = json.loads(json.dumps(identity))
    del older["train"]["mixup"]  # written by a ferops that had no train.mixup yet
    resume_state(state, older)
    (state / "history.csv").write_text("epoch,val_accuracy\n0,0.5\n")

    resume_state(state, identity)  # mixup at its default: the same run
    assert (state / "history.csv").is_file()

    mixed = {**identity, "train": {**identity["train"], "mixup": 0.2}}
    resume_state(state, mixed)  # a real change: start afresh
    assert not (state / "history.csv").exists()
