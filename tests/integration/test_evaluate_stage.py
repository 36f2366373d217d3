"""The evaluate stage on a trained model: metrics, figures, the attention sheet, and the
evaluation logged to the training run in MLflow."""

from __future__ import annotations

import json

import pytest

from ferops.kernel.emotions import EMOTIONS
from ferops.kernel.layout import Layout
from ferops.kernel.model_spec import ModelSpec
from ferops.models.builders import build_model
from ferops.pipeline.evaluate import run as evaluate


def test_evaluate_writes_metrics_attention_sheet_and_logs_to_the_training_run(
    params, tiny_faceset, tmp_path, monkeypatch
):
    import mlflow

    from ferops.data.faceset import save_faceset

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = mlflow.MlflowClient().create_run(mlflow.set_experiment("eval-test").experiment_id)
    layout = Layout(tmp_path)
    save_faceset(tiny_faceset, layout.processed)
    layout.model.parent.mkdir()
    build_model(ModelSpec(attention="cbam", width=4, depth=2)).save(layout.model)
    layout.training_run.parent.mkdir(parents=True)
    layout.training_run.write_text(json.dumps({"run_id": run.info.run_id}))

    metrics = evaluate(params, layout)
    on_disk = json.loads(layout.metrics.read_text())
    assert on_disk["accuracy"] == pytest.approx(metrics["accuracy"])
    assert on_disk["n_images"] == len(tiny_faceset["test"])
    for name in ("tta_flip", "tta_flip_shift"):
        assert 0 <= on_disk[name]["accuracy"] <= 1 and "macro_f1" in on_disk[name]
    assert (layout.evaluation / "attention.png").stat().st_size > 0
    logged = mlflow.get_run(run.info.run_id)
    assert logged.data.metrics["test_accuracy"] == pytest.approx(metrics["accuracy"])
    names = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "evaluation")]
    assert "evaluation/confusion_matrix.png" in names


def test_a_model_trained_on_random_crops_is_also_scored_on_ten_crops(
    params, tiny_faceset, tmp_path
):
    """`tta_ten_crop` is the mean over the model's answers on the ten views; a model trained
    on whole faces has no such entry."""
    import numpy as np

    from ferops.data.faceset import save_faceset
    from ferops.evaluation.metrics import classification_metrics
    from ferops.evaluation.tta import ten_crops

    layout = Layout(tmp_path)
    save_faceset(tiny_faceset, layout.processed)
    layout.model.parent.mkdir()
    for crop in (40, 48):
        model = build_model(ModelSpec(width=4, depth=2, crop=crop))
        model.save(layout.model)
        evaluate(params, layout)  # no run record: nothing logged to MLflow
        on_disk = json.loads(layout.metrics.read_text())
        if crop == 48:
            assert "tta_ten_crop" not in on_disk
            continue
        test = tiny_faceset["test"]
        views = [model.predict(v, batch_size=256, verbose=0) for v in ten_crops(test.x, crop)]
        expected = classification_metrics(test.y, np.mean(views, axis=0))
        assert on_disk["tta_ten_crop"]["accuracy"] == pytest.approx(expected["accuracy"])
        assert on_disk["tta_ten_crop"]["macro_f1"] == pytest.approx(expected["macro_f1"])


def test_the_reference_holds_each_test_face_before_normalisation_and_the_model_s_answer(
    params, tiny_faceset, tmp_path
):
    """What `monitor` compares production with: statistics of the faces as ingest read them
    (the prediction log takes them before normalisation too), not of the equalised faces
    the model saw; and the model's probabilities on them."""
    import numpy as np
    import pandas as pd

    from ferops.data.faceset import save_faceset
    from ferops.imaging.contrast import Preprocessing
    from ferops.kernel.layout import REFERENCE_FILE as REFERENCE
    from ferops.prediction_log.statistics import face_statistics
    from tests.helpers import copy_faceset

    layout = Layout(tmp_path)
    save_faceset(tiny_faceset, layout.interim)
    processed = copy_faceset(tiny_faceset)
    for split in processed.values():
        split.x = Preprocessing(contrast="equalize").apply(split.x)
    test = processed["test"]
    order = np.arange(len(test))[::-1]  # a different order than ingest's, matched by source
    processed["test"] = type(test)(test.x[order], test.y[order], [test.sources[i] for i in order])
    save_faceset(processed, layout.processed)
    model = build_model(ModelSpec(width=4, depth=2))
    layout.model.parent.mkdir()
    model.save(layout.model)

    evaluate(params, layout)
    reference = pd.read_parquet(layout.evaluation / REFERENCE)
    raw = tiny_faceset["test"].x[order]
    assert len(reference) == len(raw)
    np.testing.assert_allclose(reference["brightness"], face_statistics(raw)["brightness"])
    equalised = face_statistics(processed["test"].x)["brightness"]
    assert not np.allclose(reference["brightness"], equalised)  # not the model's input
    expected = model.predict(processed["test"].x, verbose=0)
    np.testing.assert_allclose(reference["confidence"], expected.max(axis=1), atol=1e-5)
    assert set(reference["label"]) <= set(EMOTIONS)
