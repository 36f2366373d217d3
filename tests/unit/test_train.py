"""Training helpers: class weights, tuned overrides, determinism, resumable state."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ferops.kernel.config import TrainConfig
from ferops.kernel.errors import ConfigError
from ferops.kernel.model_spec import ModelSpec
from ferops.training.fit import apply_tuned, class_weights
from tests.helpers import tiny_params_file


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


SEEDED_RUN = """
import json, sys
from pathlib import Path
from ferops.data.sources import synthetic_faceset
from ferops.kernel.config import load_params
from ferops.models.builders import build_model
from ferops.training.fit import fit, seed_everything

params = load_params(Path(sys.argv[1]))
faceset = synthetic_faceset(params.data, seed=params.seed)
seed_everything(7)
history = fit(build_model(params.model, seed=7), faceset, params.train, epochs=2, callbacks=[])
print(json.dumps([history["val_accuracy"].round(3).tolist(), history["loss"].round(4).tolist()]))
"""


def test_the_same_seed_gives_the_same_validation_accuracy(tmp_path):
    """Two training runs with one seed, each in a fresh process (as each stage is), agree to
    the last printed digit. (In one long-lived pytest worker, after other tests, one run in
    a later epoch once differed, and could not be reproduced in isolation: see the note.)"""
    path = tiny_params_file(tmp_path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", SEEDED_RUN, str(path)],
            capture_output=True, text=True, check=True, env=env,
        ).stdout.strip().splitlines()[-1]
        for _ in range(2)
    ]  # fmt: skip
    assert runs[0] == runs[1]
    accuracies, losses = json.loads(runs[0])
    assert len(accuracies) == len(losses) == 2


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
