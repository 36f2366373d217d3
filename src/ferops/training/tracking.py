"""MLflow wiring: where runs go, how experiments are named, what a search logs. Keras-free, so
registering a shipped model never loads TensorFlow; the per-epoch callback is epoch_metrics.py."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ferops.kernel.config import DataConfig
from ferops.kernel.layout import tracking_uri
from ferops.kernel.local_store import ARTIFACTS_DIR

log = logging.getLogger(__name__)


def experiment_name(data: DataConfig) -> str:
    """One experiment per data set, so runs on synthetic faces never mix with FER2013's."""
    if data.source == "synthetic":
        return "ferops-synthetic"
    return f"ferops-{data.source}-{Path(data.path).stem}"


# MLflow 3's UI opens an experiment on its GenAI pages (traces) unless the experiment says
# it holds model training; this is the tag its own "experiment type" switch writes.
KIND = "mlflow.experimentKind"
TRAINING_EXPERIMENT = {KIND: "custom_model_development"}


def use_experiment(root: Path, data: DataConfig) -> str:
    """Point MLflow at the project's store and experiment; return the experiment id."""
    import mlflow

    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    name = experiment_name(data)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        mlflow.set_experiment(name)
        if KIND not in experiment.tags:  # made before ferops set it
            mlflow.set_experiment_tags(TRAINING_EXPERIMENT)
        return experiment.experiment_id
    # A local store keeps artifacts beside the database, whatever folder the command runs
    # from; a tracking server chooses (and proxies) its own artifact destination.
    local = not uri.startswith(("http://", "https://"))
    artifacts = (root / ARTIFACTS_DIR).resolve().as_uri() if local else None
    experiment_id = mlflow.create_experiment(
        name, artifact_location=artifacts, tags=TRAINING_EXPERIMENT
    )
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextmanager
def resumed_run(run_id: str) -> Iterator[Any]:
    """Reopen a training run (evaluate and register add to it) in the experiment that holds
    it. MLflow refuses to resume a run outside the active experiment, and a process that ran
    another project's stage first (the Python API, a test session) has set a different one."""
    import mlflow

    experiment_id = mlflow.MlflowClient().get_run(run_id).info.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run(run_id=run_id) as run:
        yield run


def dataset_digest(directory: Path) -> str:
    """sha1 over the processed split files: the identity of the data a model saw."""
    digest = hashlib.sha1()
    for name in ("train.npz", "val.npz", "test.npz"):
        digest.update(name.encode())
        with (directory / name).open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}: MLflow params are flat."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def trial_run_tags(parent_run_id: str, trial: int, study_name: str, worker: str) -> dict[str, str]:
    """Tags of a trial's MLflow run, nested under its study's parent run: one shape whether the
    trial was tracked live (`ferops.pipeline.tune`) or imported afterwards
    (`ferops.ops.run_import`)."""
    return {
        "mlflow.parentRunId": parent_run_id,
        "ferops.stage": "tune",
        "ferops.trial": str(trial),
        "ferops.in_study": study_name,
        "ferops.worker": worker,
    }


def log_study_summary(summary: dict[str, Any]) -> None:
    """The search's outcome (summary.json) as metrics of the active parent run."""
    import mlflow

    mlflow.log_metrics(
        {
            "best_val_accuracy": summary["best_value"],
            "trials_complete": summary["complete"],
            "trials_pruned": summary["pruned"],
            "trials_failed": summary["failed"],
        }
    )


def log_search_space(space: Any, best: dict[str, Any]) -> None:
    """On the parent run: what the search could choose, as params `space.*` (fixed for a
    study, whose name hashes its settings), and what it chose, as tags `best.*` (they may
    change when a resumed study finds better), so the run answers both without its files."""
    import mlflow

    used = dataclasses.asdict(space)
    if "sgd" not in (space.optimizer or ()):  # SGD's learning rate is drawn only with SGD
        used.pop("sgd_learning_rate")
    searched = flatten({"space": used})
    try:
        mlflow.log_params({k: str(v) for k, v in searched.items() if v is not None})
    except mlflow.exceptions.MlflowException:  # a study renamed by hand onto another space
        log.warning("the parent run already records another search space; kept as it was")
    mlflow.set_tags({f"best.{k}": str(v) for k, v in flatten(best).items()})
