"""Models learn: the default CNN on the synthetic faces, and clearly better than a linear model
on pixels (wide margins, any x86 CPU)."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from ferops.data.faceset import save_faceset
from ferops.kernel.emotions import NUM_CLASSES
from tests.helpers import REPO, synthetic_faces


def test_a_linear_model_on_pixels_is_clearly_worse_than_a_small_cnn():
    """The data set is neither trivial (pixels alone do not solve it) nor noise (a CNN does)."""
    from keras import layers
    from sklearn.linear_model import LogisticRegression

    train_x, train_y = synthetic_faces(10, per_class=300)
    test_x, test_y = synthetic_faces(11, per_class=60)

    linear = LogisticRegression(max_iter=200, C=0.01)
    linear.fit(train_x.reshape(len(train_x), -1) / 255.0, train_y)
    linear_accuracy = linear.score(test_x.reshape(len(test_x), -1) / 255.0, test_y)

    keras.utils.set_random_seed(0)
    blocks = []
    for width in (32, 64, 128):
        blocks += [
            layers.Conv2D(width, 3, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.MaxPooling2D(),
        ]
    cnn = keras.Sequential(
        [
            keras.Input((48, 48, 1)),
            layers.Rescaling(1 / 255.0),
            *blocks,
            layers.GlobalAveragePooling2D(),
            layers.Dropout(0.3),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    epochs, steps = 22, int(np.ceil(len(train_x) / 64))
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, epochs * steps)
    cnn.compile(
        keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    cnn.fit(train_x[..., None], train_y, epochs=epochs, batch_size=64, verbose=0)
    cnn_accuracy = cnn.evaluate(test_x[..., None], test_y, verbose=0)[1]

    print(f"logistic regression {linear_accuracy:.3f}, small CNN {cnn_accuracy:.3f}")
    chance = 1 / NUM_CLASSES
    assert chance + 0.03 < linear_accuracy < 0.45
    assert cnn_accuracy > 0.80
    assert cnn_accuracy > linear_accuracy + 0.35


def test_the_default_model_learns_the_synthetic_faces(params, tmp_path, monkeypatch):
    """The default attention CNN and optimiser, on a reduced synthetic set: far above chance."""
    from ferops.data.sources import synthetic_faceset
    from ferops.kernel.config import load_params
    from ferops.pipeline.train import train

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
