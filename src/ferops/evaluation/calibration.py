"""Confidence against accuracy: the reliability table behind the expected calibration error."""

from __future__ import annotations

import numpy as np
import pandas as pd

CALIBRATION_BINS = 15


def calibration_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS
) -> pd.DataFrame:
    """Confidence vs accuracy in equal-width confidence bins (Guo et al., 2017): evaluate's
    reliability table and the monitor's calibration are this one table.

    The expected calibration error is the sum of `gap_weighted`: each bin's |accuracy -
    confidence| weighted by its share of images.
    """
    confidence, correct = np.asarray(confidence), np.asarray(correct, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        accuracy = float(correct[inside].mean()) if count else float("nan")
        mean_conf = float(confidence[inside].mean()) if count else float("nan")
        rows.append(
            {
                "bin_low": edges[b],
                "bin_high": edges[b + 1],
                "count": count,
                "confidence": mean_conf,
                "accuracy": accuracy,
                "gap_weighted": abs(accuracy - mean_conf) * count / len(correct) if count else 0.0,
            }
        )
    return pd.DataFrame(rows)


def reliability_table(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS
) -> pd.DataFrame:
    """The model's calibration on these faces (`calibration_bins` of its answers)."""
    return calibration_bins(probabilities.max(axis=1), probabilities.argmax(axis=1) == labels, bins)
