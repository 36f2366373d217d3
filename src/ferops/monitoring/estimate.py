"""Accuracy without labels, from the model's own probabilities.

A calibrated model that says 0.8 is right 80 % of the time, so the mean confidence of a window
estimates its accuracy. Few models are calibrated as they come; like NannyML's
confidence-based performance estimation, the confidence is first mapped to the chance of being
right as measured on the reference (isotonic regression on the test split's answers). The
estimate holds as long as that mapping does: it cannot see a model that is confidently wrong
in a way the reference never showed (a new kind of face), which is why drift is watched too
and why labelled feedback is compared with it wherever there is some.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

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


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Mean |accuracy - confidence| over the bins, weighted by their size."""
    return float(calibration_bins(confidence, correct)["gap_weighted"].sum())


@dataclass(frozen=True)
class AccuracyEstimator:
    """Confidence → chance of being right, fitted on the reference's labelled answers."""

    calibration: IsotonicRegression
    reference_accuracy: float
    reference_ece: float

    @classmethod
    def fit(cls, confidence: np.ndarray, correct: np.ndarray) -> AccuracyEstimator:
        confidence = np.asarray(confidence, float)
        correct = np.asarray(correct, float)
        calibration = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        calibration.fit(confidence, correct)
        return cls(
            calibration,
            float(correct.mean()),
            expected_calibration_error(confidence, correct),
        )

    def accuracy(self, confidence: np.ndarray) -> float:
        """The window's estimated accuracy: the mean calibrated chance of each answer."""
        return float(self.calibration.predict(np.asarray(confidence, float)).mean())
