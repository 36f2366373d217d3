"""Bring runs made without tracking (`--no-track`, e.g. on a lent GPU machine with neither
MLflow nor a database) into the project's MLflow store and Optuna RDB storage, as if they
had been tracked live: a parent tuning run with one nested run per trial and its per-epoch
metrics, and a training run with its parameters, curves, metrics and model file.

Each imported run is tagged `ferops.imported`; run.json gets the new run id, so `evaluate`
and `register` attach to it as to any other training run. Importing twice is refused.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import mlflow
import optuna
import pandas as pd
from mlflow.entities import Metric

from ferops.data.faceset import load_faceset
from ferops.kernel.config import Params
from ferops.kernel.errors import ConfigError
from ferops.kernel.files import write_json
from ferops.kernel.layout import Layout, recorded_uri
from ferops.pipeline.tune import publish_study
from ferops.training.search.reports import best_candidate
from ferops.training.search.storage import open_storage, resolve_storage
from ferops.training.search.trials import TRIAL_HISTORY
from ferops.training.tracking import (
    dataset_digest,
    flatten,
    trial_run_tags,
    use_experiment,
)

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")


def import_runs(params: Params, layout: Layout) -> list[str]:
    """Import the untracked search (if any) and training run; return what was done."""
    experiment_id = use_experiment(layout.root, params.data)
    done = []
    if (layout.tuning / TRIAL_HISTORY).is_file():
        done.append(_import_search(params, layout, experiment_id))
    if layout.training_run.is_file():
        done.append(_import_training(layout, experiment_id))
    if not done:
        raise ConfigError(f"{layout.root}: no untracked search or training run to import")
    return done


def copy_journal_study(journal_url: str, study_name: str, rdb_url: str) -> optuna.Study:
    """The study from a journal file, copied into RDB storage (once) and returned from there."""
    names = [s.study_name for s in optuna.get_all_study_summaries(rdb_url)]
    if study_name not in names:
        optuna.copy_study(
            from_study_name=study_name,
            from_storage=open_storage(journal_url),
            to_storage=rdb_url,
        )
    return optuna.load_study(study_name=study_name, storage=rdb_url)


def _import_search(params: Params, layout: Layout, experiment_id: str) -> str:
    summary = json.loads((layout.tuning / "summary.json").read_text())
    study_name = summary["study"]
    source = resolve_storage(summary["storage"], layout.root)
    target = resolve_storage("sqlite:///optuna.db", layout.root)
    if source.startswith("journal:"):
        study = copy_journal_study(source, study_name, target)
    else:
        study = optuna.load_study(study_name=study_name, storage=source)
    client = mlflow.MlflowClient()
    if client.search_runs(
        [experiment_id], filter_string=f"tags.`ferops.study` = '{study_name}'", max_results=1
    ):
        raise ConfigError(f"study {study_name} is in MLflow already; nothing imported twice")
    history = pd.read_csv(layout.tuning / TRIAL_HISTORY)
    parent = client.create_run(
        experiment_id,
        run_name=f"tune {study_name}",
        tags={
            "ferops.study": study_name,
            "ferops.stage": "tune",
            "ferops.optuna_storage": target,
            "ferops.imported": "true",
        },
    )
    settings = {k: v for k, v in dataclasses.asdict(params.tune).items() if k != "space"}
    for key, value in flatten({"tune": settings}).items():
        client.log_param(parent.info.run_id, key, value)
    for trial in study.trials:
        _trial_run(client, experiment_id, parent.info.run_id, study_name, trial, history)
    with mlflow.start_run(run_id=parent.info.run_id):
        publish_study(
            study,
            layout,
            params,
            summary["storage"],
            seconds=summary["seconds"],
            rungs=rungs_of(history),
        )
    client.set_terminated(parent.info.run_id, "FINISHED")
    return f"imported study {study_name}: {len(study.trials)} trials, copied to {target}"


def rungs_of(history: pd.DataFrame | None) -> list[tuple[int, int]]:
    """(last epoch, training faces) of each rung, as the trials' histories recorded them."""
    if history is None or "train_faces" not in history:
        return []
    ends = history.groupby("train_faces")["epoch"].max().sort_index()
    return [(int(end), int(faces)) for faces, end in ends.items()]


def _trial_run(
    client: mlflow.MlflowClient,
    experiment_id: str,
    parent_id: str,
    study_name: str,
    trial: optuna.trial.FrozenTrial,
    history: pd.DataFrame,
) -> None:
    pruned = trial.state == optuna.trial.TrialState.PRUNED
    epochs = history[history["trial"] == trial.number]
    run = client.create_run(
        experiment_id,
        run_name=f"trial {trial.number}" + (f" · pruned at epoch {len(epochs)}" if pruned else ""),
        tags=trial_run_tags(
            parent_id, trial.number, study_name, str(trial.user_attrs.get("worker", ""))
        )
        | {"ferops.imported": "true", "pruned": str(pruned).lower()},
    )
    for key, value in best_candidate(trial).items():
        client.log_param(run.info.run_id, key, value)
    if len(epochs):
        client.log_param(run.info.run_id, "precision", epochs["precision"].iloc[0])
        client.log_param(run.info.run_id, "parameter_count", int(epochs["parameters"].iloc[0]))
    log_epochs(client, run.info.run_id, epochs)
    if trial.value is not None:
        client.log_metric(run.info.run_id, "best_val_accuracy", float(trial.value))
    state = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED"}.get(trial.state.name, "FAILED")
    client.set_terminated(run.info.run_id, state)


def log_epochs(client: mlflow.MlflowClient, run_id: str, history: pd.DataFrame) -> None:
    """Each epoch's metrics at step epoch - 1, as the live callback logs them."""
    now = int(time.time() * 1000)
    metrics = [
        Metric(key, float(row[key]), now, int(row["epoch"]) - 1)
        for _, row in history.iterrows()
        for key in EPOCH_METRICS
        if key in row and pd.notna(row[key])
    ]
    for start in range(0, len(metrics), 900):  # MLflow takes at most 1,000 a batch
        client.log_batch(run_id, metrics=metrics[start : start + 900])


def _import_training(layout: Layout, experiment_id: str) -> str:
    record = json.loads(layout.training_run.read_text())
    if record.get("run_id"):
        raise ConfigError(f"{layout.training_run}: run {record['run_id']} is tracked already")
    _check_carried_data(layout, record)
    record["data_sha1_on_device"] = record["data_sha1"]
    record["data_sha1"] = dataset_digest(layout.processed)
    history = pd.read_csv(layout.training / "history.csv")
    metrics = json.loads((layout.training / "metrics.json").read_text())
    client = mlflow.MlflowClient()
    run = client.create_run(
        experiment_id,
        run_name=f"train {record['model']['variant']} (imported)",
        tags={
            "ferops.stage": "train",
            "ferops.data_sha1": record["data_sha1"],
            "ferops.variant": record["model"]["variant"],
            "ferops.tuned": str(bool(record.get("tuned"))),
            "ferops.precision": record.get("precision", ""),
            "ferops.imported": "true",
        },
    )
    run_id = run.info.run_id
    flat = flatten({"model": record["model"], "train": record["train"], "seed": record["seed"]})
    for key, value in flat.items():
        client.log_param(run_id, key, value)
    log_epochs(client, run_id, history)
    for key, value in (metrics | record.get("timing", {})).items():
        client.log_metric(run_id, key, float(value))
    client.log_artifact(run_id, str(layout.model), "model")
    client.log_artifact(run_id, str(layout.training / "history.csv"))
    client.set_terminated(run_id, "FINISHED")
    record |= {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "tracking_uri": recorded_uri(layout.tracking_uri, layout.root),
    }
    write_json(layout.training_run, record)
    return f"imported training run {run_id} ({len(history)} epochs)"


def _check_carried_data(layout: Layout, record: dict[str, Any]) -> None:
    """A run trained elsewhere on carried splits (scripts/gpu_data.py) must have seen exactly
    this project's train and val."""
    carried = layout.training / "carried_sha1.json"
    if not carried.is_file():
        return  # trained on this project's own data/processed
    expected = json.loads(carried.read_text())
    faceset = load_faceset(layout.processed)
    for split, sha1 in expected.items():
        if faceset[split].content_sha1() != sha1:
            raise ConfigError(
                f"{carried}: the run trained on a {split} split that is not this project's "
                f"data/processed/{split}.npz"
            )
    record["carried_sha1"] = expected
