"""Train stage: train the tuned (or configured) model, resumably, and track the run in MLflow.

The model file is replaced only after training succeeded, so a crash keeps the last one.
Every epoch saves the training state (weights, optimiser and schedule, epoch, best model so
far) in `layout.train_state`; run again with the same settings and data and training resumes
where it stopped. The Preprocessing of the data travels beside the model (models/model.json).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import pandas as pd

from ferops.data.faceset import FaceSet, load_faceset
from ferops.imaging.contrast import PREPROCESSING_FILE, Preprocessing
from ferops.kernel.config import Params, TrainConfig
from ferops.kernel.files import atomic_path, write_json
from ferops.kernel.layout import Layout, recorded_uri
from ferops.kernel.model_spec import ModelSpec
from ferops.kernel.process import sole_owner
from ferops.models.builders import build_model_under
from ferops.training.epoch_metrics import EpochMetricsToMlflow
from ferops.training.fit import (
    AtomicBackupAndRestore,
    LogEpochs,
    SaveBest,
    apply_tuned,
    backup_dir,
    best_so_far,
    fit,
    float32_copy,
    logged_epochs,
    resume_state,
    seed_everything,
)
from ferops.training.tracking import (
    dataset_digest,
    flatten,
    use_experiment,
)

log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    model: keras.Model
    history: pd.DataFrame
    best_val_accuracy: float
    run_id: str
    seconds: float


def run(params: Params, layout: Layout, *, track: bool = True) -> TrainingResult:
    """Train the tuned (or configured) model on data/processed, resuming from
    models/.train-state when it holds this very run; write the best epoch's model, its
    Preprocessing sidecar and reports/training/, and log the run to MLflow (`track=False`:
    no MLflow at all)."""
    processed, model_path, report_dir = layout.processed, layout.model, layout.training
    root, state_dir = layout.root, layout.train_state
    spec, config, tuned = tuned_settings(params, layout.best_params)
    faceset = load_faceset(processed)
    digest = dataset_digest(processed)
    seed_everything(params.seed)
    model, precision = build_model_under(config.precision, spec, seed=params.seed)
    identity = {
        "model": dataclasses.asdict(spec),
        "train": dataclasses.asdict(config),
        "seed": params.seed,
        "data_sha1": digest,
    }
    # One owner at a time: a second trainer on the same state (an orphan of a killed dvc, or a
    # second `dvc repro`) would interleave epochs into the same history.
    with sole_owner(state_dir.with_name(f"{state_dir.name}.lock"), str(state_dir)):
        resume_state(state_dir, identity)
        epochs_before = logged_epochs(state_dir)
        with _tracking(track, root, params, spec, config, model, faceset, digest, tuned) as run:
            history, seconds = _fit_resumably(model, faceset, config, state_dir, run)
            best_epoch = keras.models.load_model(state_dir / "best.keras")
            best = float32_copy(best_epoch, spec, params.seed)
            metrics, timing = _summarise(
                history, model, len(faceset["train"]), len(history) - epochs_before, seconds
            )
            preprocessing = Preprocessing.load(processed / PREPROCESSING_FILE)
            write_outputs(best, preprocessing, history, metrics, model_path, report_dir)
            run_record = _log_outputs(
                run, metrics | run_timing(timing), precision, model_path, report_dir, root
            )
            run_record.update(identity, precision=precision, tuned=tuned, timing=timing)
            write_json(report_dir / "run.json", run_record)
        shutil.rmtree(state_dir, ignore_errors=True)  # finished: the next run starts afresh
        log.info(
            "trained %s: best val accuracy %.4f at epoch %d (%.0f s)",
            model.name,
            metrics["best_val_accuracy"],
            metrics["best_epoch"],
            seconds,
        )
        return TrainingResult(
            best, history, metrics["best_val_accuracy"], run_record["run_id"], seconds
        )


def _fit_resumably(
    model: keras.Model, faceset: FaceSet, config: TrainConfig, state_dir: Path, run: Any
) -> tuple[pd.DataFrame, float]:
    """Fit with the checkpoints that make a stopped run resumable; return the history of
    every epoch (a resumed run's earlier ones included) and this process's seconds."""
    callbacks = checkpoint_callbacks(state_dir, config.patience)
    if run is not None:
        callbacks.append(EpochMetricsToMlflow(run.info.run_id))
    callbacks.append(LogEpochs(config.epochs))
    started = time.perf_counter()
    fit(model, faceset, config, epochs=config.epochs, callbacks=callbacks)
    seconds = time.perf_counter() - started
    history = pd.read_csv(state_dir / "history.csv")
    history["epoch"] = np.arange(1, len(history) + 1)
    return history, seconds


def _summarise(
    history: pd.DataFrame, model: keras.Model, train_faces: int, trained: int, seconds: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the model is (DVC's metrics) and how long it took (`trained`: this process's
    epochs, not a resumed run's). Wall-clock figures vary from machine to machine and run to
    run: MLflow and run.json keep them; the DVC metrics file holds what the model is, so
    `dvc metrics diff` compares models, not machines."""
    metrics = {
        "best_val_accuracy": float(history["val_accuracy"].max()),
        "best_epoch": int(history["val_accuracy"].idxmax()) + 1,
        "epochs_run": len(history),
        "parameter_count": model.count_params(),
    }
    timing: dict[str, Any] = {"seconds": round(seconds, 1), "epochs_trained": trained}
    if trained:  # a run resumed after its last epoch trained none: no speed to report
        timing["train_images_per_second"] = round(train_faces * trained / seconds, 1)
    return metrics, timing


def run_timing(timing: dict[str, Any]) -> dict[str, Any]:
    """The timings as the run's tags name them (epochs_trained is epochs_run unless resumed,
    and run.json keeps it)."""
    names = {"seconds": "train_seconds", "train_images_per_second": "train_images_per_second"}
    return {names[k]: v for k, v in timing.items() if k in names}


def _log_outputs(
    run: Any,
    metrics: dict[str, Any],
    precision: str,
    model_path: Path,
    report_dir: Path,
    root: Path,
) -> dict[str, str]:
    """The run's metrics, model and history to MLflow; where to find the run (empty when
    not tracked)."""
    if run is None:
        return {"run_id": "", "experiment_id": "", "tracking_uri": ""}
    # One figure a chart can show; counts and timings are single values, so tags (the run
    # page lists them), not metrics (each a one-point chart in the run's metric grid).
    mlflow.log_metric("best_val_accuracy", float(metrics["best_val_accuracy"]))
    mlflow.set_tags({k: str(v) for k, v in metrics.items() if k != "best_val_accuracy"})
    mlflow.set_tag("ferops.precision", precision)
    mlflow.set_tag(  # the run page's Description
        "mlflow.note.content",
        f"Best val accuracy {metrics['best_val_accuracy']:.4f} at epoch {metrics['best_epoch']} "
        f"of {metrics['epochs_run']}; the model file is that epoch's weights. Test figures "
        "(test_*) and evaluation/ are added by the evaluate stage.",
    )
    mlflow.log_artifact(str(model_path), "model")
    mlflow.log_artifact(str(report_dir / "history.csv"))
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "tracking_uri": recorded_uri(mlflow.get_tracking_uri(), root),
    }


def tuned_settings(
    params: Params, tuned_params: Path | None
) -> tuple[ModelSpec, TrainConfig, dict[str, Any]]:
    """model.* and train.*, overridden by the search's best trial when train.use_tuned."""
    spec, config = params.model, params.train
    if not (config.use_tuned and tuned_params is not None and tuned_params.is_file()):
        return spec, config, {}
    tuned = json.loads(tuned_params.read_text())["params"]
    spec, config = apply_tuned(spec, config, tuned)
    return spec, config, tuned


def checkpoint_callbacks(state_dir: Path, patience: int) -> list[keras.callbacks.Callback]:
    """The history, the best epoch's model, early stopping, and resumable state every epoch.

    The backup comes last: an epoch counts as done once it is backed up, and a run killed
    between the history and the backup redoes that epoch (resume_state drops its row)."""
    return [
        keras.callbacks.CSVLogger(str(state_dir / "history.csv"), append=True),
        SaveBest(state_dir / "best.keras", best_so_far(state_dir)),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience),
        AtomicBackupAndRestore(str(backup_dir(state_dir)), delete_checkpoint=False),
    ]


def write_outputs(
    model: keras.Model,
    preprocessing: Preprocessing,
    history: pd.DataFrame,
    metrics: dict[str, Any],
    model_path: Path,
    report_dir: Path,
) -> None:
    """Each file is replaced atomically; the model's sidecar says how to preprocess faces."""
    with atomic_path(model_path) as staged:  # staged keeps the .keras suffix Keras needs
        model.save(staged)
    with atomic_path(model_path.with_suffix(".json")) as staged:
        preprocessing.save(staged)
    report_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(report_dir / "history.csv") as staged:
        history.to_csv(staged, index=False)
    write_json(report_dir / "metrics.json", metrics)


@contextmanager
def _tracking(
    track: bool,
    root: Path,
    params: Params,
    spec: ModelSpec,
    config: TrainConfig,
    model: keras.Model,
    faceset: FaceSet,
    digest: str,
    tuned: dict[str, Any],
) -> Iterator[Any]:
    """An MLflow run with the run's settings, data and model summary; None when not tracking."""
    if not track:
        yield None
        return

    use_experiment(root, params.data)
    run_name = f"train {model.name} lr={config.learning_rate:.2g}"
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags(
            {
                "ferops.stage": "train",
                "ferops.data_sha1": digest,
                "ferops.variant": spec.variant,
                "ferops.tuned": str(bool(tuned)),
            }
        )
        mlflow.log_params(
            flatten(
                {
                    "model": dataclasses.asdict(spec),
                    "train": dataclasses.asdict(config),
                    "data": {"source": params.data.source},
                    "seed": params.seed,
                    "parameter_count": model.count_params(),
                }
            )
        )
        dataset = mlflow.data.from_numpy(
            faceset["train"].x,
            targets=faceset["train"].y,
            name=f"{params.data.source}-train",
            digest=digest[:32],
        )
        mlflow.log_input(dataset, context="training")
        mlflow.log_text(_summary(model), "model_summary.txt")
        yield run


def _summary(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines)
