"""The train stage: the best model, its history and an MLflow run; an interrupted run resumes
from its last epoch."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pandas as pd
import pytest

from ferops.data.faceset import save_faceset
from ferops.kernel.layout import Layout


def test_train_writes_the_best_model_history_and_an_mlflow_run(
    params, tiny_faceset, tmp_path, monkeypatch, caplog
):
    import mlflow

    from ferops.pipeline.train import run as train

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    layout = Layout(tmp_path)
    save_faceset(tiny_faceset, layout.processed)
    caplog.set_level("INFO", logger="ferops")
    result = train(params, layout)
    assert not layout.train_state.exists()  # finished runs leave no resume state

    history = pd.read_csv(layout.training / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert result.best_val_accuracy == history["val_accuracy"].max()
    loaded = keras.models.load_model(layout.model)
    faces = tiny_faceset["val"].x
    np.testing.assert_allclose(
        loaded.predict(faces, verbose=0), result.model.predict(faces, verbose=0), atol=1e-6
    )

    record = json.loads(layout.training_run.read_text())
    assert record["tracking_uri"] == "sqlite:///mlflow.db"  # the project's own, relative
    run = mlflow.get_run(record["run_id"])
    assert record["precision"] == run.data.tags["ferops.precision"] == "float32"
    assert run.data.params["model.attention"] == "spatial"
    assert run.data.tags["ferops.stage"] == "train"
    steps = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_accuracy")
    assert [m.step for m in steps] == [0, 1]
    assert run.inputs.dataset_inputs[0].dataset.name == "synthetic-train"
    best = history["val_accuracy"].idxmax() + 1
    assert f"at epoch {best} of 2" in run.data.tags["mlflow.note.content"]  # the run's page
    # Timings are the run's (MLflow, run.json), not the model's DVC metrics; one number each,
    # so tags, not one-point metric charts (the run charts curves and best_val_accuracy).
    assert float(run.data.tags["train_seconds"]) == record["timing"]["seconds"] > 0
    assert run.data.tags["epochs_run"] == "2" and "parameter_count" in run.data.tags
    assert "best_val_accuracy" in run.data.metrics
    assert not {"best_epoch", "epochs_run", "parameter_count", "train_seconds"} & set(
        run.data.metrics
    )
    experiment = mlflow.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "seconds" not in json.loads((layout.training / "metrics.json").read_text())
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
    assert "model_summary.txt" in [
        a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)
    ]


def test_an_interrupted_run_resumes_from_its_last_epoch(
    params, tiny_faceset, tmp_path, monkeypatch
):
    """Killed after epoch 2 of 3, the same command runs only epoch 3 (with EMA weights)."""
    import ferops.pipeline.train as training

    layout = Layout(tmp_path)
    save_faceset(tiny_faceset, layout.processed)
    settings = dataclasses.replace(
        params, train=dataclasses.replace(params.train, epochs=3, patience=3, ema=True)
    )
    real_fit = training.fit
    epochs_seen: list[int] = []

    class Recorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_seen.append(epoch)

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("simulated power cut")

    def fit_then(*extra):
        def patched(model, faceset, config, *, epochs, callbacks, verbose=0):
            return real_fit(
                model, faceset, config, epochs=epochs, callbacks=[*callbacks, *extra],
                verbose=verbose,
            )  # fmt: skip

        return patched

    monkeypatch.setattr(training, "fit", fit_then(Recorder(), Crash()))
    with pytest.raises(RuntimeError, match="power cut"):
        training.run(settings, layout, track=False)
    assert not layout.model.exists()  # nothing half-done was published
    assert len(pd.read_csv(layout.train_state / "history.csv")) == 2

    monkeypatch.setattr(training, "fit", fit_then(Recorder()))
    result = training.run(settings, layout, track=False)
    assert epochs_seen == [0, 1, 2]  # epoch 3 only, the second time
    assert list(result.history["epoch"]) == [1, 2, 3]
    assert layout.model.is_file() and not layout.train_state.exists()
    record = json.loads(layout.training_run.read_text())
    assert record["run_id"] == ""
    assert record["timing"]["epochs_trained"] == 1  # the speed is this process's own epoch's


def test_a_second_trainer_on_the_same_state_is_refused_naming_the_owner(
    params, tiny_faceset, tmp_path
):
    import os
    import socket

    from ferops.kernel.process import StateInUse, sole_owner
    from ferops.pipeline.train import run as train

    layout = Layout(tmp_path)
    save_faceset(tiny_faceset, layout.processed)
    owner = rf"process {os.getpid()} on {socket.gethostname()}"
    lock = layout.train_state.with_name(f"{layout.train_state.name}.lock")
    with sole_owner(lock, "state"), pytest.raises(StateInUse, match=owner):
        train(params, layout, track=False)  # while a live trainer holds the state
    assert not layout.model.exists()
    train(params, layout, track=False)  # the owner is gone: the state is free again
    assert layout.model.is_file()
