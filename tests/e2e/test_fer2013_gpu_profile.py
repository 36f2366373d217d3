"""The FER2013 search: the GPU profile's multi-fidelity search picks the model that the train
stage trains (dvc repro on a tiny image folder), and a search and training run made without
tracking (as on a lent GPU machine) are imported into MLflow and Optuna's RDB storage."""

from __future__ import annotations

import json

from tests.helpers import REPO, copy_project, make_folder, model_keys_match, run, set_params

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
