"""The FER2013 search: the GPU profile's multi-fidelity search picks the model that the train
stage trains (dvc repro on a tiny image folder), and a search and training run made without
tracking (as on a lent GPU machine) are imported into MLflow and Optuna's RDB storage."""

from __future__ import annotations

import json

import mlflow
import optuna
import pytest
import yaml

from ferops.data.faceset import save_faceset
from ferops.kernel.config import load_params
from ferops.kernel.errors import ConfigError
from ferops.kernel.layout import Layout
from tests.conftest import REPO
from tests.test_image_folder import make_folder
from tests.test_pipeline import copy_project, run, set_params

TINY_GPU_PROFILE = {
    "data.path": "data/raw/fer2013",
    "validate.min_split_size": {"train": 5, "val": 5, "test": 5},
    "model.width": 4,
    "train.epochs": 2,
    "train.batch_size": 16,
    "train.precision": "float32",
    "tune.n_trials": 4,
    "tune.epochs": 3,
    "tune.max_minutes": None,
    "tune.pruner_warmup_epochs": 1,
    "tune.space.width": [4],
    "tune.space.depth": [1, 2],
    "tune.space.blocks": [1],
}


def model_keys_match(trained: dict, chosen: dict) -> bool:
    return all(trained[key] == value for key, value in chosen.items() if key in trained)


@pytest.mark.slow
def test_dvc_repro_with_the_gpu_profile_trains_the_hyperband_search_winner(tmp_path):
    project = copy_project(tmp_path / "repo")
    run(["ferops", "profile", str(REPO / "params" / "fer2013-gpu.yaml")], project)
    set_params(project, **TINY_GPU_PROFILE)
    make_folder(project / "data" / "raw" / "fer2013", per_class=4)
    run(["dvc", "repro"], project, env={"MLFLOW_TRACKING_URI": ""})

    summary = json.loads((project / "reports" / "tuning" / "summary.json").read_text())
    assert summary["pruner"] == "HyperbandPruner" and summary["complete"] >= 1
    assert summary["complete"] + summary["pruned"] + summary["failed"] == 4
    best = json.loads((project / "reports" / "tuning" / "best_params.json").read_text())
    record = json.loads((project / "reports" / "training" / "run.json").read_text())
    assert record["tuned"] == best["params"]  # the search's winner is what was trained
    assert model_keys_match(record["model"], best["params"])
    assert model_keys_match(record["train"], best["params"])
    assert (project / "optuna.journal").is_file()  # the profile's file journal storage
    assert json.loads((project / "reports" / "metrics.json").read_text())["accuracy"] >= 0


def test_an_untracked_search_and_training_run_are_imported_once(
    tmp_path, tiny_faceset, monkeypatch
):
    from ferops.ops.run_import import import_runs
    from ferops.pipeline.train import train
    from ferops.training.search import untracked_search

    raw = yaml.safe_load((REPO / "params" / "fer2013-gpu.yaml").read_text())
    raw["tune"] |= {"n_trials": 3, "epochs": 2, "max_minutes": None, "pruner_warmup_epochs": 1}
    raw["tune"]["space"] |= {"width": [4], "depth": [1], "blocks": [1]}
    raw["train"] |= {"epochs": 2, "batch_size": 16, "precision": "float32"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    layout = Layout(tmp_path)
    save_faceset(tiny_faceset, layout.processed)
    params = load_params(layout.params)

    summary = untracked_search(str(tmp_path))
    train(
        params,
        processed=layout.processed,
        tuned_params=layout.best_params,
        model_path=layout.model,
        report_dir=layout.training,
        root=layout.root,
        state_dir=layout.train_state,
        track=False,
    )
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
    with pytest.raises(ConfigError, match="already"):
        import_runs(params, layout)
