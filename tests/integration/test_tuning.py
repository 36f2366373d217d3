"""The Optuna search as a Prefect flow: trials, pruning, nested MLflow runs, resumption."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil

import numpy as np
import optuna
import pandas as pd
import pytest

# Prefect sets up logging when it is imported: here, not inside a test, or it drops the handler
# that caplog has just put on the root logger.
from ferops.data.faceset import save_faceset
from ferops.kernel.config import load_params
from ferops.pipeline.tune import run_trial, suggest
from tests.helpers import set_params, tiny_params_file


@pytest.fixture
def project(tmp_path, tiny_faceset, monkeypatch):
    """A project root with tiny processed data and a shrunk copy of the real params.yaml."""
    tiny_params_file(tmp_path, **{"tune.storage": "sqlite:///optuna.db"})
    save_faceset(tiny_faceset, tmp_path / "data" / "processed")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def test_a_three_trial_study_logs_nested_runs_and_resumes(project, prefect_api):
    import mlflow

    from ferops.pipeline.tune import default_study_name, tune_flow

    summary = tune_flow(root=str(project))
    name = default_study_name(load_params(project / "params.yaml"))
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{project / 'optuna.db'}")
    assert len(study.trials) == 3
    assert summary["complete"] + summary["pruned"] + summary["failed"] == 3
    assert summary["complete"] >= 1

    best = json.loads((project / "reports" / "tuning" / "best_params.json").read_text())
    assert best["params"] == study.best_params and best["study"] == name
    assert (project / "reports" / "tuning" / "optimization_history.png").stat().st_size > 0
    assert (project / "reports" / "tuning" / "trials.csv").is_file()
    # Rung by rung: every epoch each trial reported to the pruner, the pruned ones included.
    curves = pd.read_csv(project / "reports" / "tuning" / "rungs.csv")
    reported = {
        (t.number, t.state.name.lower(), step, value)
        for t in study.trials
        for step, value in t.intermediate_values.items()
    }
    assert set(curves.itertuples(index=False, name=None)) == reported
    assert set(curves["trial"]) == {t.number for t in study.trials if t.intermediate_values}
    assert (project / "reports" / "tuning" / "rung_curves.png").stat().st_size > 0

    parent = mlflow.search_runs(
        filter_string=f"tags.`ferops.study` = '{name}'",
        search_all_experiments=True,
        output_format="list",
    )
    assert len(parent) == 1
    children = mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string=f"tags.`mlflow.parentRunId` = '{parent[0].info.run_id}'",
    )
    assert len(children) == 3
    assert all("learning_rate" in run.data.params for run in children)
    assert all(run.data.tags.get("pruned") in {"true", "false"} for run in children)
    assert {run.info.status for run in children} == {"FINISHED"}  # pruned is not "Killed"
    for run in children:  # the runs table shows a pruned trial by its name
        pruned = run.data.tags["pruned"] == "true"
        assert ("· pruned at epoch" in run.info.run_name) == pruned, run.info.run_name
    # The parent says what was searched and what won.
    space = load_params(project / "params.yaml").tune.space
    searched = parent[0].data.params
    assert {f"space.{name}" for name in ("attention", "width", "learning_rate")} <= set(searched)
    assert all(str(width) in searched["space.width"] for width in space.width)
    assert "space.sgd_learning_rate" not in searched  # no SGD in this search, so not listed
    assert parent[0].data.tags["best.learning_rate"] == str(best["params"]["learning_rate"])

    # Running again with a larger budget resumes: one more trial, same study, same parent.
    tune_flow(root=str(project), n_trials=4)
    assert len(optuna.load_study(study_name=name, storage=study._storage).trials) == 4
    again = mlflow.search_runs(
        filter_string=f"tags.`ferops.study` = '{name}'",
        search_all_experiments=True,
        output_format="list",
    )
    assert [r.info.run_id for r in again] == [parent[0].info.run_id]


def test_a_trial_below_the_pruning_threshold_stops_early(project, tiny_faceset, caplog):
    import logging

    from ferops.training.tracking import use_experiment

    params = load_params(project / "params.yaml")
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.01)
    )
    trial = study.ask()
    experiment_id = use_experiment(project, params.data)
    parent = __import__("mlflow").MlflowClient().create_run(experiment_id).info.run_id
    caplog.set_level(logging.INFO, logger="ferops")
    outcome = run_trial.fn(
        trial,
        suggest(trial, params.tune.space),
        tiny_faceset,
        params,
        parent,
        experiment_id,
        "test-worker",
    )
    assert outcome.pruned and outcome.epochs == 1
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(
        m.startswith(f"trial {trial.number}, epoch 1/{params.tune.epochs}: loss ")
        and m.endswith(": pruned")
        for m in said
    ), said
    # A trial that trained all its epochs completes, however it compares.
    last = dataclasses.replace(params, tune=dataclasses.replace(params.tune, epochs=1))
    final = study.ask()
    candidate = suggest(final, params.tune.space)
    outcome = run_trial.fn(final, candidate, tiny_faceset, last, parent, experiment_id, "worker")
    assert not outcome.pruned and outcome.epochs == 1


def test_a_crashing_trial_is_marked_failed_and_the_study_goes_on(project, prefect_api, monkeypatch):
    import ferops.models.builders as registry
    from ferops.pipeline.tune import tune_flow

    real_build = registry.build_model
    calls = {"n": 0}

    def build_or_run_out_of_memory(spec, seed=0):
        calls["n"] += 1
        if calls["n"] == 2:  # the second trial dies as if it ran out of memory
            raise MemoryError("simulated out-of-memory in trial 2")
        return real_build(spec, seed=seed)

    monkeypatch.setattr(registry, "build_model", build_or_run_out_of_memory)
    summary = tune_flow(root=str(project))
    assert summary["failed"] == 1
    assert summary["complete"] + summary["pruned"] == 2
    shutil.rmtree(project / "reports", ignore_errors=True)


def test_a_budget_search_trains_every_trial_on_the_same_balanced_subset(project, tiny_faceset):
    from ferops.pipeline.tune import open_search
    from ferops.training.search.rungs import rung_faces

    set_params(project, **{"tune.train_fraction": 0.5})
    search = open_search(str(project), None, None, None)
    [(end, train)] = rung_faces(search.faceset["train"], search.params.tune, search.params.seed)
    whole = tiny_faceset["train"]
    assert end == search.params.tune.epochs
    assert len(train) == len(whole) // 2  # 12 faces of each class → 6
    assert (np.bincount(train.y, minlength=7) == np.bincount(whole.y, minlength=7) // 2).all()
    assert set(train.sources) < set(whole.sources)
    assert len(search.faceset["val"]) == len(tiny_faceset["val"])  # scored on all of val
    again = open_search(str(project), None, None, None)
    [(_, same)] = rung_faces(again.faceset["train"], again.params.tune, again.params.seed)
    assert same.sources == train.sources


def test_hyperband_rungs_grow_the_training_share_as_well_as_the_epochs(
    project, tiny_faceset, monkeypatch
):
    """Rungs at 1, 3 and 9 epochs on 12 %, about a third and all of the faces: each rung's
    faces hold the previous rung's, every class stays in, and a trial trains on them in order."""
    import ferops.training.fit as training
    from ferops.training.search.rungs import rung_ends, rung_faces
    from ferops.training.search.trials import train_trial

    set_params(
        project,
        **{
            "tune.pruner": "hyperband",
            "tune.epochs": 9,
            "tune.pruner_warmup_epochs": 1,
            "tune.train_fraction": 1.0,
            "tune.min_train_fraction": 0.12,
        },
    )
    params = load_params(project / "params.yaml")
    assert rung_ends(params.tune) == [1, 3, 9]
    rungs = rung_faces(tiny_faceset["train"], params.tune, params.seed)
    sizes = [len(faces) for _, faces in rungs]
    assert [end for end, _ in rungs] == [1, 3, 9]
    assert sizes[0] < sizes[1] < sizes[2] == len(tiny_faceset["train"])
    for (_, smaller), (_, larger) in itertools.pairwise(rungs):
        assert set(smaller.sources) <= set(larger.sources)
    assert all(np.bincount(faces.y, minlength=7).min() >= 1 for _, faces in rungs)

    seen = []  # the faces each epoch trained on, as fit reports them
    real_fit = training.fit

    def recording_fit(model, faceset, config, **kwargs):
        history = real_fit(model, faceset, config, **kwargs)
        seen.extend(history["train_faces"])
        return history

    monkeypatch.setattr(training, "fit", recording_fit)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    params = dataclasses.replace(params, tune=dataclasses.replace(params.tune, epochs=4))
    small = {"attention": "none", "width": 4, "depth": 2}
    outcome = train_trial(trial, small, tiny_faceset, params)
    assert outcome.epochs == 4 and list(outcome.history["epoch"]) == [1, 2, 3, 4]
    short = rung_faces(tiny_faceset["train"], params.tune, params.seed)  # rungs 1, 3, 4
    assert seen == [len(short[0][1]), len(short[1][1]), len(short[1][1]), len(short[2][1])]
    assert sorted(study.trials[0].intermediate_values) == [1, 2, 3, 4]  # told to the pruner


def test_trials_score_raw_weights_even_when_training_averages_them(
    project, tiny_faceset, monkeypatch
):
    """A profile with train.ema (a 0.999 average, for long runs) must not leave a few-epoch
    trial scored on weights that have barely left their start."""
    import mlflow

    import ferops.training.fit as training
    from ferops.training.tracking import use_experiment

    params = load_params(project / "params.yaml")
    params = dataclasses.replace(
        params,
        train=dataclasses.replace(params.train, ema=True),
        tune=dataclasses.replace(params.tune, epochs=1),
    )
    seen = []
    real_fit = training.fit

    def recording_fit(model, faceset, config, **kwargs):
        seen.append(config)
        return real_fit(model, faceset, config, **kwargs)

    monkeypatch.setattr(training, "fit", recording_fit)
    trial = optuna.create_study(direction="maximize").ask()
    experiment_id = use_experiment(project, params.data)
    parent = mlflow.MlflowClient().create_run(experiment_id).info.run_id
    candidate = suggest(trial, params.tune.space)
    run_trial.fn(trial, candidate, tiny_faceset, params, parent, experiment_id, "test-worker")
    assert [config.ema for config in seen] == [False]
