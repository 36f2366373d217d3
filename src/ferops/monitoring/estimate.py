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
from sklearn.isotonic import IsotonicRegression

from ferops.evaluation.calibration import calibration_bins


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
