"""The evaluate stage: the trained model on the test split (metrics, confusion matrix,
calibration, TTA and attention maps, computed by `ferops.evaluation`) and the reference the
monitor compares served answers with.

Everything lands in reports/ (metrics.json is the DVC metric; evaluation/ holds the tables and
figures) and is logged to the training run in MLflow.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from ferops.data.faceset import PRODUCTION, Split, load_faceset
from ferops.evaluation import figures
from ferops.evaluation.metrics import HEADLINE, classification_metrics, write_evaluation
from ferops.evaluation.tta import ten_crops, view_probabilities
from ferops.kernel.config import Params
from ferops.kernel.emotions import EMOTIONS, answer_columns
from ferops.kernel.errors import DataError
from ferops.kernel.files import replace_dir, write_json
from ferops.kernel.layout import REFERENCE_FILE, Layout, tracking_uri
from ferops.models.builders import load_model
from ferops.models.jitter import training_crop
from ferops.prediction_log.statistics import face_statistics
from ferops.training.tracking import resumed_run

log = logging.getLogger(__name__)


def reference(test: Split, probabilities: np.ndarray, interim: Path | None) -> pd.DataFrame:
    """What production is compared with (ferops monitor): per test face its label, the
    model's probabilities and confidence, and the face's statistics as the prediction log
    takes them, before contrast normalisation. The calibration it is read with is beside it
    (reliability.csv, and the ECE in metrics.json)."""
    return pd.DataFrame(
        {
            "label": [EMOTIONS[int(i)] for i in test.y],
            **answer_columns(probabilities),
            **face_statistics(raw_faces(test, interim)),
        }
    )


def raw_faces(test: Split, interim: Path | None) -> np.ndarray:
    """The processed test faces as ingest read them (matched by source), so that a
    normalised contrast does not hide what production's statistics see."""
    if interim is None or not (interim / "test.npz").is_file():
        return test.x
    raw = load_faceset(interim)["test"]
    where = {source: i for i, source in enumerate(raw.sources)}
    if not all(source in where for source in test.sources):
        raise DataError(f"{interim}: the test faces in data/processed are not all there")
    return raw.x[[where[source] for source in test.sources]]


def run(params: Params, layout: Layout) -> dict[str, Any]:
    """Evaluate models/model.keras on the test split: reports/metrics.json and
    reports/evaluation/ replace the old ones only when every file was written, and go to the
    training run in MLflow. The reference's statistics are of the faces as ingest read them
    (data/interim; the processed faces where that is missing)."""
    out_dir, run_file = layout.evaluation, layout.training_run
    faceset = load_faceset(layout.processed)
    test = faceset["test"]
    model = load_model(layout.model)
    probabilities = model.predict(test.x, batch_size=256, verbose=0)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".evaluation.", dir=out_dir.parent))
    try:
        metrics = write_evaluation(test.y, probabilities, test.sources, staged)
        table = reference(test, probabilities, layout.interim)
        table.to_parquet(staged / REFERENCE_FILE, index=False)
        figures.attention_sheet(model, test.x, test.y, probabilities, staged / "attention.png")
        replace_dir(staged, out_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    # The figures people compare first lead the file (and `dvc metrics show`/`dvc exp show`).
    headline = {k: metrics[k] for k in HEADLINE} | {
        k: v for k, v in metrics.items() if k != "per_class"
    }
    mirrored, *moved = view_probabilities(model, test.x, shifts=True)  # each view once
    with_tta = {
        "tta_flip": classification_metrics(test.y, np.mean([probabilities, mirrored], axis=0)),
        "tta_flip_shift": classification_metrics(
            test.y, np.mean([probabilities, mirrored, *moved], axis=0)
        ),
    }
    crop = training_crop(model)
    if crop is not None:  # trained on random crops: the corners and centre, and mirrored
        views = [model.predict(v, batch_size=256, verbose=0) for v in ten_crops(test.x, crop)]
        with_tta["tta_ten_crop"] = classification_metrics(test.y, np.mean(views, axis=0))
    write_json(
        layout.metrics,
        {
            **headline,
            "per_class_f1": {e: round(m["f1"], 4) for e, m in metrics["per_class"].items()},
            # Test-time augmentation: the mean over the face and its mirror image (and the face
            # moved 2 px each way; for a model trained on random crops, ten crops). Reported
            # beside the plain figures; the gate and the served model use the plain ones.
            **{name: {k: m[k] for k in ("accuracy", "macro_f1")} for name, m in with_tta.items()},
            **production_slice(model, faceset.get(PRODUCTION)),
        },
    )
    run = json.loads(run_file.read_text()) if run_file.is_file() else {}
    if run.get("run_id"):  # empty when trained with --no-track
        _log_to_training_run(run, headline, out_dir, layout.root)
    log.info(
        "test accuracy %.4f, macro F1 %.4f, ECE %.4f on %d images",
        metrics["accuracy"],
        metrics["macro_f1"],
        metrics["expected_calibration_error"],
        len(test),
    )
    return metrics


def production_slice(model: Any, production: Split | None) -> dict[str, Any]:
    """Accuracy on reviewed production faces held out of training (ferops feedback): what
    the model does on the faces it is actually sent, beside the test split's figure."""
    if production is None or not len(production):
        return {}
    answers = model.predict(production.x, batch_size=256, verbose=0).argmax(axis=1)
    return {
        "production_accuracy": round(float((answers == production.y).mean()), 4),
        "production_faces": len(production),
    }


def _log_to_training_run(
    run: dict[str, Any], headline: dict[str, Any], out_dir: Path, root: Path
) -> None:
    mlflow.set_tracking_uri(tracking_uri(root))
    with resumed_run(run["run_id"]):
        mlflow.log_metrics({f"test_{k}": float(v) for k, v in headline.items()})
        mlflow.log_artifacts(str(out_dir), "evaluation")
