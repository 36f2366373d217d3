"""Fitting a model: optimiser and schedule, class weights, the tuned settings, resumable state.

The train stage (ferops.pipeline.train) and every search trial (ferops.training.search.trials) fit
through `fit`, so a trial trains exactly as the final model will."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from ferops.data.faceset import FaceSet, Split
from ferops.kernel.config import TrainConfig
from ferops.kernel.emotions import NUM_CLASSES
from ferops.kernel.errors import ConfigError
from ferops.kernel.files import atomic_path, write_json
from ferops.kernel.model_spec import ModelSpec
from ferops.models.builders import build_model_under
from ferops.training.augment import AugmentedBatches

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


def build_training_state(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    """Create the optimiser's slots and the metrics' totals now, eagerly, from one example.
    Keras 3 on TensorFlow otherwise creates them inside the first traced train step (it builds
    early only under a distribution strategy), and TensorFlow traces a function that creates
    variables twice: 1.3 to 2.7 s more per fit of a small model (AMD EPYC, AVX2), paid by
    every trial of a search. Fit resets the metrics before its first epoch."""
    model.optimizer.build(model.trainable_variables)
    model.compute_metrics(x, y, model(x, training=False), sample_weight=None)


class LogEpochs(keras.callbacks.Callback):
    """One log line per epoch (and each epoch's seconds in `epoch_seconds`): progress a log
    file keeps readably, where Keras' own lines are a progress bar's redraws."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs
        self.epoch_seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.epoch_seconds.append(time.perf_counter() - self._started)
        log.info("%s", self.line(epoch + 1, logs or {}))

    def line(self, epoch: int, logs: dict[str, float]) -> str:
        return (
            f"epoch {epoch}/{self.epochs}: loss {_figure(logs, 'loss')}, accuracy "
            f"{_figure(logs, 'accuracy')}, val accuracy {_figure(logs, 'val_accuracy')} "
            f"({self.epoch_seconds[-1]:.0f} s)"
        )


def _figure(logs: dict[str, float], key: str) -> str:
    return f"{float(logs.get(key, float('nan'))):.4f}"


def fit(
    model: keras.Model,
    faceset: FaceSet,
    config: TrainConfig,
    *,
    epochs: int,
    callbacks: list[keras.callbacks.Callback],
    verbose: int | str = 0,
    growing: Sequence[tuple[int, Split]] = (),
) -> pd.DataFrame:
    """Compile and fit on train, validating on val each epoch; return the per-epoch history.

    `growing`, (last epoch, training faces) pairs, trains on each set of faces up to its last
    epoch: a search's rungs in training fraction as well as in epochs. The optimiser and its
    schedule run on across them, sized by the steps of all of them."""
    stages = [(min(end, epochs), train) for end, train in growing] or [(epochs, faceset["train"])]
    starts = [0, *(end for end, _ in stages[:-1])]
    steps = sum(
        int(np.ceil(len(train) / config.batch_size)) * max(0, end - start)
        for start, (end, train) in zip(starts, stages, strict=True)
    )
    compile_model(model, config, steps=steps)
    val = faceset["val"]
    validation = (val.x, keras.utils.to_categorical(val.y, NUM_CLASSES))
    build_training_state(model, *(part[:1] for part in validation))
    if config.ema:  # validate and checkpoint the averaged weights, train the raw ones
        callbacks = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True), *callbacks]
    frames = []
    for start, (end, train) in zip(starts, stages, strict=True):
        if end <= start:
            continue
        history = _fit_faces(model, train, validation, config, start, end, callbacks, verbose)
        frames.append(pd.DataFrame(history.history).assign(train_faces=len(train)))
        if model.stop_training:  # pruned or stopped early: the later stages are not run
            break
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    if not growing:
        frame = frame.drop(columns="train_faces")
    return frame


def _fit_faces(
    model: keras.Model,
    train: Split,
    validation: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
    initial_epoch: int,
    epochs: int,
    callbacks: list[keras.callbacks.Callback],
    verbose: int | str,
) -> keras.callbacks.History:
    """Epochs `initial_epoch`+1 .. `epochs` on `train`: augmented batches, or the faces as
    they are (with class weights, if asked)."""
    targets = keras.utils.to_categorical(train.y, NUM_CLASSES)
    weights = class_weights(train.y) if config.class_weight else None
    common = {
        "validation_data": validation,
        "initial_epoch": initial_epoch,
        "epochs": epochs,
        "callbacks": callbacks,
        "verbose": verbose,
    }
    if config.batch_augment > 0 or config.mixup > 0:
        batches = AugmentedBatches(
            train.x,
            targets,
            batch_size=config.batch_size,
            strength=config.batch_augment,
            mixup=config.mixup,
            seed=int(np.random.randint(0, 2**31 - 1)),  # seeded by seed_everything
            sample_weights=None if weights is None else np.array([weights[c] for c in train.y]),
        )
        return model.fit(batches, **common)
    return model.fit(train.x, targets, batch_size=config.batch_size, class_weight=weights, **common)


def float32_copy(model: keras.Model, spec: ModelSpec, seed: int) -> keras.Model:
    """The same weights in a fresh float32 model: no optimiser state (a third of the file)
    and no bfloat16 policy, which most CPUs run slowly and the ONNX export cannot take."""
    clean, _ = build_model_under("float32", spec, seed=seed)
    clean.set_weights(model.get_weights())
    return clean


def resume_state(state_dir: Path, identity: dict[str, Any]) -> None:
    """Keep `state_dir` only if it belongs to this very run (same settings and data)."""
    marker = state_dir / "identity.json"
    if marker.is_file() and _same_run(
        json.loads(marker.read_text()), json.loads(json.dumps(identity, default=str))
    ):
        keep_backed_up_epochs(state_dir)
        log.info("resuming training from %s after %d epoch(s)", state_dir, logged_epochs(state_dir))
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


def backup_dir(state_dir: Path) -> Path:
    """Where AtomicBackupAndRestore keeps the resumable weights and epoch."""
    return state_dir / "backup"


def keep_backed_up_epochs(state_dir: Path) -> None:
    """Drop history rows of epochs that the backup does not hold (a run killed after logging
    an epoch but before backing it up redoes that epoch; its row must not appear twice)."""
    history = state_dir / "history.csv"
    if not history.is_file():
        return
    metadata = backup_dir(state_dir) / "training_metadata.json"  # BackupAndRestore's name
    backed_up = json.loads(metadata.read_text())["epoch"] if metadata.is_file() else 0
    lines = history.read_text().splitlines()
    if len(lines) - 1 > backed_up:
        log.info("dropping %d logged epoch(s) that were not backed up", len(lines) - 1 - backed_up)
        with atomic_path(history) as staged:
            staged.write_text("\n".join(lines[: backed_up + 1]) + "\n")


def logged_epochs(state_dir: Path) -> int:
    """Epochs finished so far, as the history log records them."""
    history = state_dir / "history.csv"
    return max(0, len(history.read_text().splitlines()) - 1) if history.is_file() else 0


def best_so_far(state_dir: Path) -> float | None:
    """The best val accuracy of the epochs before a resume, so a worse epoch can't replace it."""
    history = state_dir / "history.csv"
    if logged_epochs(state_dir) == 0:
        return None
    return float(pd.read_csv(history)["val_accuracy"].max())


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, but a run stopped while saving keeps the last whole backup:
    Keras overwrites the weights in place (a kill mid-write left a file that could not be
    loaded), here they and their epoch are written aside and swapped in together."""

    def _save_model(self) -> None:
        backup = Path(self.backup_dir)
        backup.mkdir(parents=True, exist_ok=True)
        weights, metadata = backup / "staged.weights.h5", backup / "staged.json"
        self.model.save_weights(weights, overwrite=True)
        metadata.write_text(json.dumps({"epoch": self._current_epoch, "batch": 0}))
        with deferred_sigterm():  # both files swapped, or neither
            os.replace(weights, self._weights_path)
            os.replace(metadata, self._training_metadata_path)


class SaveBest(keras.callbacks.Callback):
    """The best epoch's model by val accuracy, replaced atomically (ModelCheckpoint writes in
    place, so a kill mid-save could leave no loadable best model)."""

    def __init__(self, path: Path, threshold: float | None) -> None:
        super().__init__()
        self.path = path
        self.best = -np.inf if threshold is None else threshold

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        value = (logs or {}).get("val_accuracy")
        if value is not None and value > self.best:
            self.best = float(value)
            with atomic_path(self.path) as staged:  # keeps the .keras suffix
                self.model.save(staged)


@contextmanager
def deferred_sigterm() -> Iterator[None]:
    """Hold SIGTERM back for the block (it is delivered right after), so a stopped run never
    stops between two steps that belong together."""
    blocked = {signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
