"""The FER2013 search: the GPU profile's multi-fidelity search picks the model that the train
stage trains (`dvc exp run` on a tiny image folder, as docs/fer2013.md's recipe does it)."""

from __future__ import annotations

import json

from tests.helpers import (
    REPO,
    TINY,
    TINY_GPU,
    copy_project,
    make_folder,
    model_keys_match,
    run,
    set_params,
)

NO_TRACKING_URI = {"MLFLOW_TRACKING_URI": ""}  # the project's own store, not the caller's


def test_the_readme_recipe_with_the_gpu_profile_trains_the_hyperband_search_winner(
    tmp_path, prefect_api
):
    """The FER2013 recipe of docs/fer2013.md on a tiny image folder: `ferops profile`, `dvc add` the
    folder, commit, `dvc exp run -S`; the search's winner is the model that is trained. The
    experiment runs up to `train` (evaluate and register are the default pipeline's, tested
    there; 17 s of CPU saved). The search flow reports to the session's Prefect server (a
    temporary one costs 14 s of CPU)."""
    project = copy_project(tmp_path / "repo")
    run(["ferops", "profile", str(REPO / "params" / "fer2013-gpu.yaml")], project)
    set_params(project, **TINY, **TINY_GPU)
    make_folder(project / "data" / "raw" / "faces", per_class=4)
    run(["dvc", "add", "data/raw/faces"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "tiny faces"], project)
    env = {**NO_TRACKING_URI, "PREFECT_API_URL": prefect_api}
    run(["dvc", "exp", "run", "-S", "data.path=data/raw/faces", "train"], project, env=env)

    ingested = json.loads((project / "reports" / "ingest.json").read_text())
    assert ingested["source"] == "image-folder" and ingested["path"] == "data/raw/faces"
    assert ingested["counts"]["test"]["total"] == 28
    assert (project / "data" / "raw" / "faces" / "train").is_dir()  # the data is still there
    summary = json.loads((project / "reports" / "tuning" / "summary.json").read_text())
    assert summary["pruner"] == "HyperbandPruner" and summary["complete"] >= 1
    assert summary["complete"] + summary["pruned"] + summary["failed"] == TINY["tune.n_trials"]
    best = json.loads((project / "reports" / "tuning" / "best_params.json").read_text())
    record = json.loads((project / "reports" / "training" / "run.json").read_text())
    assert record["tuned"] == best["params"]  # the search's winner is what was trained
    assert model_keys_match(record["model"], best["params"])
    assert model_keys_match(record["train"], best["params"])
    assert (project / "optuna.journal").is_file()  # the profile's file journal storage
    assert (project / "models" / "model.keras").is_file()
    trained = json.loads((project / "reports" / "training" / "metrics.json").read_text())
    assert trained["epochs_run"] == TINY["train.epochs"]
