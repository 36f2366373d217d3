import dataclasses
import json

import keras
import numpy as np
import pandas as pd
import pytest

from ferops.data.faceset import save_faceset
from ferops.kernel.config import Params, TrainConfig
from ferops.kernel.errors import ConfigError
from ferops.kernel.model_spec import ModelSpec
from ferops.training.fit import apply_tuned, class_weights, fit, seed_everything

TINY_SPEC = ModelSpec(attention="spatial", width=4, depth=2, augment=0.5)
TINY_TRAIN = TrainConfig(epochs=2, batch_size=16, patience=2, use_tuned=False)


def tiny_params(params: Params) -> Params:
    return dataclasses.replace(params, model=TINY_SPEC, train=TINY_TRAIN)


def test_class_weights_lift_the_rare_class():
    labels = np.array([0] * 90 + [1] * 10 + [2, 3, 4, 5, 6] * 20)
    weights = class_weights(labels)
    assert weights[1] > 5 * weights[0]
    assert np.isclose(sum(weights[c] * np.sum(labels == c) for c in range(7)), len(labels))


def test_tuned_values_override_the_config_and_unknown_keys_are_refused():
    spec, config = apply_tuned(ModelSpec(), TrainConfig(), {"width": 24, "learning_rate": 0.01})
    assert spec.width == 24 and config.learning_rate == 0.01
    with pytest.raises(ConfigError, match=r"unknown key.*momentum"):
        apply_tuned(ModelSpec(), TrainConfig(), {"momentum": 0.9})


def test_the_same_seed_gives_the_same_validation_accuracy(tiny_faceset):
    from ferops.models.builders import build_model

    accuracies = []
    for _ in range(2):
        seed_everything(7)
        model = build_model(TINY_SPEC, seed=7)
        history = fit(model, tiny_faceset, TINY_TRAIN, epochs=2, callbacks=[])
        accuracies.append(round(float(history["val_accuracy"].iloc[-1]), 3))
        losses = history["loss"].round(4).tolist()
        accuracies.append(losses)
    assert accuracies[0] == accuracies[2] and accuracies[1] == accuracies[3]


@pytest.mark.slow
def test_train_writes_the_best_model_history_and_an_mlflow_run(
    params, tiny_faceset, tmp_path, monkeypatch
):
    import mlflow

    from ferops.pipeline.train import train

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    save_faceset(tiny_faceset, tmp_path / "processed")
    result = train(
        tiny_params(params),
        processed=tmp_path / "processed",
        tuned_params=None,
        model_path=tmp_path / "models" / "model.keras",
        report_dir=tmp_path / "training",
        root=tmp_path,
        state_dir=tmp_path / "state",
    )
    assert not (tmp_path / "state").exists()  # finished runs leave no resume state

    history = pd.read_csv(tmp_path / "training" / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert result.best_val_accuracy == history["val_accuracy"].max()
    loaded = keras.models.load_model(tmp_path / "models" / "model.keras")
    faces = tiny_faceset["val"].x
    np.testing.assert_allclose(
        loaded.predict(faces, verbose=0), result.model.predict(faces, verbose=0), atol=1e-6
    )

    record = json.loads((tmp_path / "training" / "run.json").read_text())
    run = mlflow.get_run(record["run_id"])
    assert record["precision"] == run.data.tags["ferops.precision"] == "float32"
    assert run.data.params["model.attention"] == "spatial"
    assert run.data.tags["ferops.stage"] == "train"
    steps = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_accuracy")
    assert [m.step for m in steps] == [0, 1]
    assert run.inputs.dataset_inputs[0].dataset.name == "synthetic-train"
    assert "model_summary.txt" in [
        a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)
    ]


@pytest.mark.slow
def test_the_default_model_learns_the_synthetic_faces(params, tmp_path, monkeypatch):
    """The default attention CNN and optimiser, on a reduced synthetic set: far above chance."""
    from ferops.data.sources import synthetic_faceset
    from ferops.kernel.config import load_params
    from ferops.pipeline.train import train
    from tests.conftest import REPO

    real = load_params(REPO / "params.yaml")
    reduced = dataclasses.replace(
        real.data.synthetic, train_per_class=200, val_per_class=40, test_per_class=10
    )
    real = dataclasses.replace(
        real,
        data=dataclasses.replace(real.data, synthetic=reduced),
        train=dataclasses.replace(real.train, epochs=12, patience=12),
    )
    save_faceset(synthetic_faceset(real.data, seed=real.seed), tmp_path / "processed")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = train(
        real,
        processed=tmp_path / "processed",
        tuned_params=None,
        model_path=tmp_path / "model.keras",
        report_dir=tmp_path / "training",
        root=tmp_path,
        state_dir=tmp_path / "state",
    )
    print(result.history[["accuracy", "val_accuracy"]].round(3).T)
    assert result.best_val_accuracy > 0.7  # chance is 0.14
    assert result.history["loss"].iloc[-1] < 0.7 * result.history["loss"].iloc[0]


@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_last_epoch(
    params, tiny_faceset, tmp_path, monkeypatch
):
    """Killed after epoch 2 of 3, the same command runs only epoch 3 (with EMA weights)."""
    import ferops.pipeline.train as training

    save_faceset(tiny_faceset, tmp_path / "processed")
    settings = tiny_params(params)
    settings = dataclasses.replace(
        settings, train=dataclasses.replace(settings.train, epochs=3, patience=3, ema=True)
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

    arguments = {
        "processed": tmp_path / "processed",
        "tuned_params": None,
        "model_path": tmp_path / "model.keras",
        "report_dir": tmp_path / "training",
        "root": tmp_path,
        "state_dir": tmp_path / "state",
        "track": False,
    }
    monkeypatch.setattr(training, "fit", fit_then(Recorder(), Crash()))
    with pytest.raises(RuntimeError, match="power cut"):
        training.train(settings, **arguments)
    assert not (tmp_path / "model.keras").exists()  # nothing half-done was published
    assert len(pd.read_csv(tmp_path / "state" / "history.csv")) == 2

    monkeypatch.setattr(training, "fit", fit_then(Recorder()))
    result = training.train(settings, **arguments)
    assert epochs_seen == [0, 1, 2]  # epoch 3 only, the second time
    assert list(result.history["epoch"]) == [1, 2, 3]
    assert (tmp_path / "model.keras").is_file() and not (tmp_path / "state").exists()
    assert json.loads((tmp_path / "training" / "run.json").read_text())["run_id"] == ""


def test_state_survives_an_upgrade_that_adds_a_default_setting_but_not_a_changed_one(tmp_path):
    from ferops.training.fit import resume_state

    state = tmp_path / "state"
    identity = {
        "model": dataclasses.asdict(TINY_SPEC),
        "train": dataclasses.asdict(TINY_TRAIN),
        "seed": 42,
        "data_sha1": "abc",
    }
    older = json.loads(json.dumps(identity))
    del older["train"]["mixup"]  # written by a ferops that had no train.mixup yet
    resume_state(state, older)
    (state / "history.csv").write_text("epoch,val_accuracy\n0,0.5\n")

    resume_state(state, identity)  # mixup at its default: the same run
    assert (state / "history.csv").is_file()

    mixed = {**identity, "train": {**identity["train"], "mixup": 0.2}}
    resume_state(state, mixed)  # a real change: start afresh
    assert not (state / "history.csv").exists()
