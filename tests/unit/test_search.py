"""The search's pure parts: study names and Hyperband's rungs."""

from __future__ import annotations

import pytest
import yaml

from ferops.kernel.config import TuneConfig, parse_params
from ferops.training.search.rungs import rung_ends
from ferops.training.search.space import TRIAL_TRAIN_SETTINGS, default_study_name
from tests.helpers import REPO


def test_study_names_follow_real_changes_and_not_settings_left_at_their_defaults():
    """A study hours in is resumed after an upgrade that adds a setting (at its default);
    any setting that changes the search starts a fresh study."""
    params = parse_params({})
    name = default_study_name(params)
    spelled_out = parse_params({"model": {"crop": 48, "attention_stages": "all"}})
    assert default_study_name(spelled_out) == name
    for changed in (
        {"model": {"crop": 44}},
        {"tune": {"space": {"width": [8, 12]}}},
        {"train": {"learning_rate": 0.01}},
        {"seed": 7},
    ):
        assert default_study_name(parse_params(changed)) != name, changed
    # How long the search runs and where it is stored are not what it searches, and the final
    # run's length, early stopping and averaging are not what a trial trains with.
    budget = {"tune": {"n_trials": 40, "max_minutes": 5, "storage": "sqlite:///other.db"}}
    assert default_study_name(parse_params(budget)) == name
    final_run = {"train": {"epochs": 200, "patience": 50, "use_tuned": False, "ema": True}}
    assert default_study_name(parse_params(final_run)) == name
    assert default_study_name(parse_params({"train": {"batch_size": 32}})) != name


def test_the_tune_stage_depends_on_the_train_settings_a_trial_uses_and_no_others():
    """So that a longer final run (train.epochs) does not make `dvc repro` redo the search."""
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["tune"]
    train = {p.removeprefix("train.") for p in stage["params"] if p.startswith("train.")}
    assert train == set(TRIAL_TRAIN_SETTINGS) and "train" not in stage["params"]


@pytest.mark.parametrize(
    ("tune", "ends"),
    [
        (TuneConfig(pruner="hyperband", epochs=9, pruner_warmup_epochs=1), [1, 3, 9]),
        (TuneConfig(pruner="hyperband", epochs=12, pruner_warmup_epochs=2), [2, 6, 12]),
        (TuneConfig(pruner="hyperband", epochs=2, pruner_warmup_epochs=0), [1, 2]),
        (TuneConfig(pruner="median", epochs=9, pruner_warmup_epochs=1), [9]),
    ],
)
def test_hyperband_rungs_are_powers_of_three_from_the_first_rung(tune, ends):
    assert rung_ends(tune) == ends
