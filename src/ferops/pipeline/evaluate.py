"""Evaluation on the test split: metrics, confusion matrix, calibration, attention maps.

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
from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

from ferops.data.faceset import PRODUCTION, Split, load_faceset
from ferops.kernel.config import Params
from ferops.kernel.emotions import EMOTIONS, NUM_CLASSES, answer_columns
from ferops.kernel.errors import DataError
from ferops.kernel.files import replace_dir, write_json
from ferops.kernel.layout import REFERENCE_FILE, Layout, tracking_uri
from ferops.models.builders import load_model
from ferops.models.jitter import training_crop
from ferops.monitoring.estimate import CALIBRATION_BINS, calibration_bins
from ferops.prediction_log.statistics import face_statistics
from ferops.training import figures
from ferops.training.tracking import resumed_run

log = logging.getLogger(__name__)

HEADLINE = ("accuracy", "macro_f1", "expected_calibration_error")


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro and weighted precision/recall/F1, per-class figures and calibration."""
    predicted = probabilities.argmax(axis=1)
    everyone = list(range(NUM_CLASSES))
    metrics: dict[str, Any] = {
        "accuracy": float(np.mean(predicted == labels)),
        "n_images": len(labels),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            labels, predicted, labels=everyone, average=average, zero_division=0
        )
        metrics |= {
            f"{average}_precision": float(p),
            f"{average}_recall": float(r),
            f"{average}_f1": float(f),
        }
    p, r, f, support = precision_recall_fscore_support(
        labels, predicted, labels=everyone, zero_division=0
    )
    metrics["per_class"] = {
        EMOTIONS[c]: {
            "precision": float(p[c]),
            "recall": float(r[c]),
            "f1": float(f[c]),
            "support": int(support[c]),
        }
        for c in everyone
    }
    metrics["expected_calibration_error"] = float(
        reliability_table(labels, probabilities)["gap_weighted"].sum()
    )
    return metrics


def reliability_table(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS
) -> pd.DataFrame:
    """The model's calibration on these faces (ferops.monitoring.estimate.calibration_bins)."""
    return calibration_bins(probabilities.max(axis=1), probabilities.argmax(axis=1) == labels, bins)


def write_evaluation(
    labels: np.ndarray, probabilities: np.ndarray, sources: list[str], out_dir: Path
) -> dict[str, Any]:
    """Write tables and figures for a set of predictions into `out_dir`; return the metrics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = classification_metrics(labels, probabilities)
    predicted = probabilities.argmax(axis=1)
    counts = confusion_matrix(labels, predicted, labels=list(range(NUM_CLASSES)))
    normalised = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    pd.DataFrame(counts, index=EMOTIONS, columns=EMOTIONS).to_csv(out_dir / "confusion_counts.csv")
    pd.DataFrame(normalised, index=EMOTIONS, columns=EMOTIONS).round(4).to_csv(
        out_dir / "confusion_normalised.csv"
    )
    pd.DataFrame(
        {
            "source": sources,
            "actual": [EMOTIONS[y] for y in labels],
            "predicted": [EMOTIONS[y] for y in predicted],
            "confidence": probabilities.max(axis=1).round(4),
        }
    ).to_csv(out_dir / "predictions.csv", index=False)
    report = classification_report(
        labels,
        predicted,
        labels=list(range(NUM_CLASSES)),
        target_names=list(EMOTIONS),
        digits=4,
        zero_division=0,
    )
    (out_dir / "classification_report.txt").write_text(report)
    per_class = pd.DataFrame(metrics["per_class"]).T.rename_axis("emotion")
    per_class.to_csv(out_dir / "per_class.csv")
    table = reliability_table(labels, probabilities)
    table.to_csv(out_dir / "reliability.csv", index=False)
    figures.confusion(counts, normalised, out_dir / "confusion_matrix.png")
    figures.reliability(table, metrics["expected_calibration_error"], out_dir / "reliability.png")
    figures.per_class(per_class, out_dir / "per_class.png")
    return metrics


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
    """Evaluate models/model.keras on the test split; write reports/ and log to MLflow."""
    return evaluate(
        processed=layout.processed,
        interim=layout.interim,
        model_path=layout.model,
        run_file=layout.training_run,
        out_dir=layout.evaluation,
        metrics_path=layout.metrics,
        root=layout.root,
    )


def evaluate(
    *,
    processed: Path,
    model_path: Path,
    run_file: Path | None,
    out_dir: Path,
    metrics_path: Path,
    root: Path,
    data_source: str = "",
    interim: Path | None = None,
) -> dict[str, Any]:
    """Evaluate models/model.keras on the test split; reports replace the old ones only when
    every file was written. `interim`: the faces as ingest read them, for the reference's
    statistics (default: the processed faces, the same when contrast is not normalised)."""
    faceset = load_faceset(processed)
    test = faceset["test"]
    model = load_model(model_path)
    probabilities = model.predict(test.x, batch_size=256, verbose=0)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".evaluation.", dir=out_dir.parent))
    try:
        metrics = write_evaluation(test.y, probabilities, test.sources, staged)
        reference(test, probabilities, interim).to_parquet(staged / REFERENCE_FILE, index=False)
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
        metrics_path,
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
    run = json.loads(run_file.read_text()) if run_file is not None and run_file.is_file() else {}
    if run.get("run_id"):  # empty when trained with --no-track
        _log_to_training_run(run, headline, out_dir, root)
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


TTA_SHIFTS = ((2, 0), (-2, 0), (0, 2), (0, -2))  # (dx, dy) in pixels


def tta(
    model: Any, faces: np.ndarray, probabilities: np.ndarray, *, shifts: bool = False
) -> np.ndarray:
    """Mean probabilities over each face and its horizontal mirror (faces are near-symmetric)
    and, with `shifts`, the face moved 2 px each way: the views training augmentation taught
    the model to expect. `probabilities` are the model's on the faces as they are."""
    return np.mean([probabilities, *view_probabilities(model, faces, shifts=shifts)], axis=0)


def view_probabilities(model: Any, faces: np.ndarray, *, shifts: bool) -> list[np.ndarray]:
    """The model's probabilities on the mirror images, then (with `shifts`) on each shift."""
    views = [faces[:, :, ::-1]]
    if shifts:
        views += [shifted(faces, dx, dy) for dx, dy in TTA_SHIFTS]
    return [model.predict(np.ascontiguousarray(v), batch_size=256, verbose=0) for v in views]


def ten_crops(faces: np.ndarray, crop: int) -> list[np.ndarray]:
    """Ten views of `faces` for a model trained on random crop x crop windows: moved so that
    the window it looks at (the centre one) covers each corner in turn, as they are, then
    mirrored. The classic ten-crop test (Krizhevsky et al., 2012), the input kept whole."""
    m = (faces.shape[1] - crop) // 2  # how far the centre window is from each edge
    moves = [(0, 0), (m, m), (-m, m), (m, -m), (-m, -m)]
    views = [faces if (dx, dy) == (0, 0) else shifted(faces, dx, dy) for dx, dy in moves]
    return [np.ascontiguousarray(v) for v in views + [v[:, :, ::-1] for v in views]]


def shifted(faces: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Faces (N, H, W[, 1]) moved dx px right and dy px down; edge pixels fill the gap."""
    pad = max(abs(dx), abs(dy))
    widths = [(0, 0), (pad, pad), (pad, pad)] + [(0, 0)] * (faces.ndim - 3)
    padded = np.pad(faces, widths, mode="edge")
    height, width = faces.shape[1:3]
    return padded[:, pad - dy : pad - dy + height, pad - dx : pad - dx + width]


def _log_to_training_run(
    run: dict[str, Any], headline: dict[str, Any], out_dir: Path, root: Path
) -> None:
    mlflow.set_tracking_uri(tracking_uri(root))
    with resumed_run(run["run_id"]):
        mlflow.log_metrics({f"test_{k}": float(v) for k, v in headline.items()})
        mlflow.log_artifacts(str(out_dir), "evaluation")
