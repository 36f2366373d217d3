"""Models learn: the default attention CNN on the synthetic faces, far above chance and far above
a linear model on the same pixels (wide margins, any x86 CPU)."""

from __future__ import annotations

import shutil

from ferops.data.faceset import save_faceset
from ferops.kernel.emotions import NUM_CLASSES
from tests.helpers import REPO, set_params


def test_the_default_model_learns_what_a_linear_model_on_pixels_cannot(tmp_path, monkeypatch):
    """The default model and optimiser (params.yaml) on 1,400 faces: the data set is neither
    noise (the CNN learns it) nor trivial (a logistic regression on pixels does not)."""
    from sklearn.linear_model import LogisticRegression

    from ferops.data.sources import synthetic_faceset
    from ferops.kernel.config import load_params
    from ferops.kernel.layout import Layout
    from ferops.pipeline.train import run as train

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    reduced = {
        "data.synthetic.train_per_class": 200,
        "data.synthetic.val_per_class": 40,
        "data.synthetic.test_per_class": 10,
        "train.epochs": 10,
        "train.patience": 10,
    }
    real = load_params(set_params(tmp_path, **reduced))  # the defaults, on less data
    faceset = synthetic_faceset(real.data, seed=real.seed)
    layout = Layout(tmp_path)
    save_faceset(faceset, layout.processed)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = train(real, layout)

    train_x, val_x = (
        faceset[split].x.reshape(len(faceset[split]), -1) / 255.0 for split in ("train", "val")
    )
    linear = LogisticRegression(max_iter=200, C=0.01).fit(train_x, faceset["train"].y)
    linear_accuracy = linear.score(val_x, faceset["val"].y)

    print(result.history[["accuracy", "val_accuracy"]].round(3).T)
    print(f"logistic regression {linear_accuracy:.3f}, CNN {result.best_val_accuracy:.3f}")
    chance = 1 / NUM_CLASSES
    assert chance + 0.03 < linear_accuracy < 0.45
    assert result.best_val_accuracy > 0.7
    assert result.best_val_accuracy > linear_accuracy + 0.3
    assert result.history["loss"].iloc[-1] < 0.7 * result.history["loss"].iloc[0]
