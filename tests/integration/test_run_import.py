"""Runs made without tracking (`--no-track`, e.g. on a lent GPU) are imported into MLflow and
the RDB study once."""

from __future__ import annotations

import json

import mlflow
import optuna
import pandas as pd
import pytest

from ferops.data.faceset import save_faceset
from ferops.kernel.config import load_params
from ferops.kernel.errors import ConfigError
from ferops.kernel.layout import Layout
from tests.helpers import REPO, tiny_profile_file


def test_an_untracked_search_and_training_run_are_imported_once(
    tmp_path, tiny_faceset, monkeypatch
):
    from ferops.ops.run_import import import_runs, rungs_of
    from ferops.pipeline import train as train_stage
    from ferops.training.search.trials import untracked_search

    tiny_profile_file(tmp_path, REPO / "params" / "fer2013-gpu.yaml")
    layout = Layout(tmp_path)
    save_faceset(tiny_faceset, layout.processed)
    params = load_params(layout.params)

    summary = untracked_search(str(tmp_path))
    train_stage.run(params, layout, track=False)
    assert json.loads(layout.training_run.read_text())["run_id"] == ""

    # monkeypatch first: mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI in os.environ,
    # and a leaked one would send later tests' subprocesses to this test's store.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    done = import_runs(params, layout)
    assert len(done) == 2
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    parent = [r for r in runs if r.data.tags.get("ferops.study") == summary["study"]]
    trials = [r for r in runs if r.data.tags.get("ferops.trial") is not None]
    assert len(parent) == 1 and len(trials) == 3
    assert all(r.data.tags["mlflow.parentRunId"] == parent[0].info.run_id for r in trials)
    history = mlflow.MlflowClient().get_metric_history(trials[0].info.run_id, "val_accuracy")
    assert 1 <= len(history) <= 2  # one point per epoch the trial ran
    record = json.loads(layout.training_run.read_text())
    trained = mlflow.get_run(record["run_id"])
    assert trained.data.tags["ferops.imported"] == "true"
    assert trained.data.params["model.variant"] == record["model"]["variant"]
    # The journal study is in the RDB storage now, with every trial.
    stored = optuna.load_study(
        study_name=summary["study"], storage=f"sqlite:///{tmp_path / 'optuna.db'}"
    )
    assert len(stored.trials) == 3
    # The profile's rungs grow in faces; the import draws their curves from the histories.
    rungs = rungs_of(pd.read_csv(layout.tuning / "trial_history.csv"))
    assert [end for end, _ in rungs] == [1, 2] and rungs[0][1] < rungs[1][1]
    assert (layout.tuning / "rung_curves.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="already"):
        import_runs(params, layout)
