"""The Keras callback that logs each epoch to MLflow (apart from tracking.py, which must not
load Keras)."""

from __future__ import annotations

import keras


class EpochMetricsToMlflow(keras.callbacks.Callback):
    """Logs every epoch's loss, accuracy and learning rate to one MLflow run."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        import time

        from mlflow import MlflowClient
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, epoch) for key, value in (logs or {}).items()]
        MlflowClient().log_batch(self.run_id, metrics=metrics)
