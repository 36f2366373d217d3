"""Classification metrics of a set of answers, and the tables and figures that show them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

from ferops.evaluation import figures
from ferops.evaluation.calibration import reliability_table
from ferops.kernel.emotions import EMOTIONS, NUM_CLASSES

# The figures people compare first: they lead metrics.json (and `dvc metrics show`).
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
