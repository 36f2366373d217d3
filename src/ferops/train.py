"""Training: fit a registry model on data/processed, keep the best epoch, track it in MLflow."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from ferops.artifacts import atomic_path, write_json
from ferops.config import Params, TrainConfig
from ferops.data.faceset import FaceSet, load_faceset
from ferops.emotions import NUM_CLASSES
from ferops.errors import ConfigError
from ferops.models.registry import build_model
from ferops.models.spec import ModelSpec
from ferops.precision import dtype_policy

log = logging.getLogger(__name__)

# Keys of best_params.json that override model.* and train.* respectively.
MODEL_KEYS = {f.name for f in dataclasses.fields(ModelSpec)}
TRAIN_KEYS = {"learning_rate", "label_smoothing", "optimizer", "weight_decay"}


def seed_everything(seed: int) -> None:
    """Same seed, same weights, same batches, same augmentations: runs repeat exactly
    (on TensorFlow; other Keras backends are seeded but not made deterministic)."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def apply_tuned(
    spec: ModelSpec, train: TrainConfig, tuned: dict[str, Any]
) -> tuple[ModelSpec, TrainConfig]:
    """Overlay tuned values on the configured model and optimiser settings."""
    unknown = set(tuned) - MODEL_KEYS - TRAIN_KEYS
    if unknown:
        raise ConfigError(f"best_params.json: unknown key(s) {', '.join(sorted(unknown))}")
    spec = dataclasses.replace(spec, **{k: v for k, v in tuned.items() if k in MODEL_KEYS})
    train = dataclasses.replace(train, **{k: v for k, v in tuned.items() if k in TRAIN_KEYS})
    return spec, train


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights (sklearn's "balanced"): rare classes count as much as common."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(float)
    present = counts > 0
    weights = np.zeros(NUM_CLASSES)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def make_optimizer(config: TrainConfig, *, steps: int) -> keras.optimizers.Optimizer:
    """AdamW with cosine decay over the whole run, or SGD with Nesterov momentum and a step
    schedule (the learning rate divided by 10 at half and at three quarters of the run, as the
    strongest from-scratch FER2013 models train); weights averaged by EMA if asked. Both
    schedules are fixed by the run's length, so a trial and the full run follow the same shape."""
    if config.optimizer == "sgd":
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            [max(1, steps // 2), max(2, steps * 3 // 4)],
            [config.learning_rate, config.learning_rate / 10, config.learning_rate / 100],
        )
        return keras.optimizers.SGD(
            schedule,
            momentum=0.9,
            nesterov=True,
            weight_decay=config.weight_decay,
            use_ema=config.ema,
            ema_momentum=0.999,
        )
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps)
    return keras.optimizers.AdamW(
        schedule, weight_decay=config.weight_decay, use_ema=config.ema, ema_momentum=0.999
    )


def compile_model(model: keras.Model, config: TrainConfig, *, steps: int) -> None:
    """The configured optimiser; cross-entropy with label smoothing."""
    model.compile(
        optimizer=make_optimizer(config, steps=steps),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )


def fit(
    model: keras.Model,
    faceset: FaceSet,
    config: TrainConfig,
    *,
    epochs: int,
    callbacks: list[keras.callbacks.Callback],
    verbose: int | str = 0,
) -> pd.DataFrame:
    """Compile and fit on train, validating on val each epoch; return the per-epoch history."""
    train, val = faceset["train"], faceset["val"]
    steps = int(np.ceil(len(train) / config.batch_size)) * epochs
    compile_model(model, config, steps=steps)
    if config.ema:  # validate and checkpoint the averaged weights, train the raw ones
        callbacks = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True), *callbacks]
    targets = keras.utils.to_categorical(train.y, NUM_CLASSES)
    weights = class_weights(train.y) if config.class_weight else None
    validation = (val.x, keras.utils.to_categorical(val.y, NUM_CLASSES))
    if config.augment > 0 or config.mixup > 0:
        from ferops.augment import AugmentedBatches

        batches = AugmentedBatches(
            train.x,
            targets,
            batch_size=config.batch_size,
            strength=config.augment,
            mixup=config.mixup,
            seed=int(np.random.randint(0, 2**31 - 1)),  # seeded by seed_everything
            sample_weights=None if weights is None else np.array([weights[c] for c in train.y]),
        )
        history = model.fit(
            batches, validation_data=validation, epochs=epochs, callbacks=callbacks, verbose=verbose
        )
    else:
        history = model.fit(
            train.x,
            targets,
            validation_data=validation,
            epochs=epochs,
            batch_size=config.batch_size,
            class_weight=weights,
            callbacks=callbacks,
            verbose=verbose,
        )
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    return frame


@dataclass
class TrainingResult:
    model: keras.Model
    history: pd.DataFrame
    best_val_accuracy: float
    run_id: str
    seconds: float


def train(
    params: Params,
    *,
    processed: Path,
    tuned_params: Path | None,
    model_path: Path,
    report_dir: Path,
    root: Path,
    state_dir: Path,
    track: bool = True,
) -> TrainingResult:
    """Train the configured (or tuned) model; write the best epoch's model and the history.

    The model file is replaced only after training succeeded, so a crash keeps the last one.
    Every epoch saves the training state (weights, optimiser and schedule, epoch, best model
    so far) in `state_dir`; run again with the same settings and data, and training resumes
    where it stopped. `track=False` trains without MLflow (e.g. on a machine that has none).
    """
    from ferops.tracking import dataset_digest

    spec, config = params.model, params.train
    tuned: dict[str, Any] = {}
    if config.use_tuned and tuned_params is not None and tuned_params.is_file():
        tuned = json.loads(tuned_params.read_text())["params"]
        spec, config = apply_tuned(spec, config, tuned)
    faceset = load_faceset(processed)
    digest = dataset_digest(processed)
    seed_everything(params.seed)
    with dtype_policy(config.precision) as precision:  # its layers keep the policy
        model = build_model(spec, seed=params.seed)
    identity = {
        "model": dataclasses.asdict(spec),
        "train": dataclasses.asdict(config),
        "seed": params.seed,
        "data_sha1": digest,
    }
    resume_state(state_dir, identity)
    epochs_before = _logged_epochs(state_dir)

    with _tracking(track, root, params, spec, config, model, faceset, digest, tuned) as run:
        callbacks = [
            keras.callbacks.BackupAndRestore(str(state_dir / "backup"), delete_checkpoint=False),
            keras.callbacks.ModelCheckpoint(
                state_dir / "best.keras",
                monitor="val_accuracy",
                mode="max",
                save_best_only=True,
                initial_value_threshold=_best_so_far(state_dir),
            ),
            keras.callbacks.CSVLogger(str(state_dir / "history.csv"), append=True),
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=config.patience
            ),
        ]
        if run is not None:
            from ferops.tracking import EpochMetricsToMlflow

            callbacks.append(EpochMetricsToMlflow(run.info.run_id))
        started = time.perf_counter()
        fit(
            model,
            faceset,
            config,
            epochs=config.epochs,
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
        )
        seconds = time.perf_counter() - started
        history = pd.read_csv(state_dir / "history.csv")  # every epoch, resumed runs included
        history["epoch"] = np.arange(1, len(history) + 1)
        best = float32_copy(keras.models.load_model(state_dir / "best.keras"), spec, params.seed)
        best_epoch = int(history["val_accuracy"].idxmax()) + 1
        epochs_here = max(1, len(history) - epochs_before)
        metrics = {
            "best_val_accuracy": float(history["val_accuracy"].max()),
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "seconds": round(seconds, 1),
            "train_images_per_second": round(len(faceset["train"]) * epochs_here / seconds, 1),
            "params": model.count_params(),
        }
        with atomic_path(model_path) as staged:  # staged keeps the .keras suffix Keras needs
            best.save(staged)
        report_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(report_dir / "history.csv") as staged:
            history.to_csv(staged, index=False)
        write_json(report_dir / "metrics.json", metrics)
        run_id = ""
        if run is not None:
            import mlflow

            run_id = run.info.run_id
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            mlflow.set_tag("ferops.precision", precision)
            mlflow.log_artifact(str(model_path), "model")
            mlflow.log_artifact(str(report_dir / "history.csv"))
        write_json(
            report_dir / "run.json",
            {
                "run_id": run_id,
                "experiment_id": run.info.experiment_id if run is not None else "",
                "tracking_uri": _current_tracking_uri() if run is not None else "",
                **identity,
                "precision": precision,
                "tuned": tuned,
            },
        )
    shutil.rmtree(state_dir, ignore_errors=True)  # finished: the next run starts afresh
    log.info(
        "trained %s: best val accuracy %.4f at epoch %d (%.0f s)",
        model.name,
        metrics["best_val_accuracy"],
        best_epoch,
        seconds,
    )
    return TrainingResult(best, history, metrics["best_val_accuracy"], run_id, seconds)


def float32_copy(model: keras.Model, spec: ModelSpec, seed: int) -> keras.Model:
    """The same weights in a fresh float32 model: no optimiser state (a third of the file)
    and no bfloat16 policy, which most CPUs run slowly and the ONNX export cannot take."""
    with dtype_policy("float32"):
        clean = build_model(spec, seed=seed)
    clean.set_weights(model.get_weights())
    return clean


def resume_state(state_dir: Path, identity: dict[str, Any]) -> None:
    """Keep `state_dir` only if it belongs to this very run (same settings and data)."""
    marker = state_dir / "identity.json"
    if marker.is_file() and _same_run(
        json.loads(marker.read_text()), json.loads(json.dumps(identity, default=str))
    ):
        log.info(
            "resuming training from %s after %d epoch(s)", state_dir, _logged_epochs(state_dir)
        )
        return
    if state_dir.exists():
        log.info("discarding %s: it belongs to other settings or data", state_dir)
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    write_json(marker, identity)


def _same_run(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    """Same settings and data; a setting that a newer ferops added, left at its default,
    is no change (an upgrade mid-run must not throw hours of training away)."""
    defaults = {
        "model": dataclasses.asdict(ModelSpec()),
        "train": dataclasses.asdict(TrainConfig()),
    }
    completed = {
        section: {**defaults[section], **settings}
        if section in defaults and isinstance(settings, dict)
        else settings
        for section, settings in stored.items()
    }
    return completed == current


def _logged_epochs(state_dir: Path) -> int:
    """Epochs finished so far, as the history log records them."""
    history = state_dir / "history.csv"
    return max(0, len(history.read_text().splitlines()) - 1) if history.is_file() else 0


def _best_so_far(state_dir: Path) -> float | None:
    """The best val accuracy of the epochs before a resume, so a worse epoch can't replace it."""
    history = state_dir / "history.csv"
    if _logged_epochs(state_dir) == 0:
        return None
    return float(pd.read_csv(history)["val_accuracy"].max())


def _current_tracking_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


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
    import mlflow

    from ferops.tracking import flatten, use_experiment

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
                    "params": model.count_params(),
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
