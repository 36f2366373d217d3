"""Evaluation metrics, calibration, reports and test-time augmentation, on given probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from ferops.evaluation.calibration import reliability_table
from ferops.evaluation.metrics import classification_metrics, write_evaluation


def confident(labels: np.ndarray, predicted: np.ndarray, confidence: float) -> np.ndarray:
    """Probabilities that put `confidence` on `predicted` and share the rest."""
    probabilities = np.full((len(labels), 7), (1 - confidence) / 6)
    probabilities[np.arange(len(labels)), predicted] = confidence
    return probabilities


def test_metrics_match_scikit_learn_and_name_every_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 300)
    predicted = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 7, 300))
    metrics = classification_metrics(labels, confident(labels, predicted, 0.7))
    assert metrics["accuracy"] == pytest.approx(np.mean(labels == predicted))
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert set(metrics["per_class"]) == {
        "angry",
        "disgust",
        "fear",
        "happy",
        "sad",
        "surprise",
        "neutral",
    }
    assert sum(m["support"] for m in metrics["per_class"].values()) == 300


def test_calibration_error_is_low_when_confidence_matches_accuracy_and_high_when_not():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 2000)
    right = rng.random(2000) < 0.8  # 80 % correct ...
    predicted = np.where(right, labels, (labels + 1) % 7)
    honest = classification_metrics(labels, confident(labels, predicted, 0.8))
    boastful = classification_metrics(labels, confident(labels, predicted, 0.99))
    assert honest["expected_calibration_error"] < 0.03
    assert boastful["expected_calibration_error"] > 0.15
    table = reliability_table(labels, confident(labels, predicted, 0.8))
    assert table["count"].sum() == 2000


def test_write_evaluation_produces_every_report(tmp_path):
    labels = np.repeat(np.arange(7), 5)
    probabilities = confident(labels, labels, 0.9)
    write_evaluation(labels, probabilities, [f"face{i}" for i in range(35)], tmp_path)
    for name in (
        "classification_report.txt",
        "confusion_counts.csv",
        "confusion_normalised.csv",
        "predictions.csv",
        "per_class.csv",
        "reliability.csv",
        "confusion_matrix.png",
        "reliability.png",
        "per_class.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    counts = pd.read_csv(tmp_path / "confusion_counts.csv", index_col=0)
    assert np.trace(counts.to_numpy()) == 35
    assert list(pd.read_csv(tmp_path / "predictions.csv").columns) == [
        "source",
        "actual",
        "predicted",
        "confidence",
    ]


def test_flip_tta_averages_each_face_with_its_mirror_image():
    from ferops.evaluation.tta import tta

    class BrightSide:  # says happy when the left half is brighter, sad otherwise
        def predict(self, faces, **kwargs):
            left = faces[:, :, :24].mean(axis=(1, 2)) > faces[:, :, 24:].mean(axis=(1, 2))
            return np.eye(7)[np.where(left, 3, 4)]

    faces = np.zeros((2, 48, 48), np.uint8)
    faces[:, :, :24] = 200
    averaged = tta(BrightSide(), faces, BrightSide().predict(faces))
    np.testing.assert_allclose(averaged[:, 3], 0.5)
    np.testing.assert_allclose(averaged[:, 4], 0.5)


def test_shift_tta_moves_faces_two_pixels_each_way_and_repeats_the_edge():
    from ferops.evaluation.tta import TTA_SHIFTS, shifted, tta

    faces = np.random.default_rng(0).integers(0, 256, size=(3, 48, 48, 1), dtype=np.uint8)
    right = shifted(faces, 2, 0)
    np.testing.assert_array_equal(right[:, :, 2:], faces[:, :, :-2])
    np.testing.assert_array_equal(right[:, :, 0], faces[:, :, 0])
    up = shifted(faces, 0, -2)
    np.testing.assert_array_equal(up[:, :-2], faces[:, 2:])

    class CentreOfMass:  # "probabilities" that are the face's mean column, one per class
        def predict(self, faces, **kwargs):
            columns = np.arange(48)[None, None, :, None]
            centre = (faces * columns).sum(axis=(1, 2, 3)) / faces.sum(axis=(1, 2, 3))
            return np.repeat(centre[:, None], 7, axis=1)

    model = CentreOfMass()
    plain = model.predict(faces)
    views = [faces[:, :, ::-1]] + [shifted(faces, dx, dy) for dx, dy in TTA_SHIFTS]
    expected = np.mean([plain, *(model.predict(v) for v in views)], axis=0)
    np.testing.assert_allclose(tta(model, faces, plain, shifts=True), expected)
    assert not np.allclose(expected, tta(model, faces, plain))  # shifts add views


def test_ten_crops_move_the_centre_window_onto_each_corner_and_mirror_them():
    """A random-crop model looks at its centre window; the ten views move the face so that
    window shows each corner window (and the centre), then the same mirrored."""
    from ferops.evaluation.tta import ten_crops

    faces = np.random.default_rng(2).integers(0, 256, size=(3, 48, 48), dtype=np.uint8)
    crop, m = 40, 4

    def centre(views):
        return views[:, m : m + crop, m : m + crop]

    views = ten_crops(faces, crop)
    assert len(views) == 10 and all(v.shape == faces.shape for v in views)
    corners = [(m, m), (0, 0), (0, 2 * m), (2 * m, 0), (2 * m, 2 * m)]  # (top, left)
    for view, (top, left) in zip(views[:5], corners, strict=True):
        np.testing.assert_array_equal(centre(view), faces[:, top : top + crop, left : left + crop])
    for view, mirrored in zip(views[:5], views[5:], strict=True):
        np.testing.assert_array_equal(mirrored, view[:, :, ::-1])
