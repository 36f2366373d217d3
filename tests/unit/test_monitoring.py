"""Drift measures and the accuracy estimate on numbers whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ferops.kernel.config import MonitorConfig
from ferops.kernel.emotions import EMOTIONS
from ferops.monitoring.drift import mix_drift, numeric_drift
from ferops.monitoring.estimate import AccuracyEstimator
from ferops.monitoring.report import DRIFT, OK, TOO_FEW, html_page, judge

LIMITS = {"psi_limit": 0.2, "p_limit": 0.01}


def answers(
    rng: np.random.Generator, n: int, *, brightness: float = 120.0, sure: tuple = (0.15, 1.0)
) -> pd.DataFrame:
    """Rows like the log's: a model whose confidence (drawn from `sure`) is its real chance
    of being right."""
    confidence = rng.uniform(*sure, n)
    labels = rng.integers(0, 7, n)
    right = rng.random(n) < confidence
    emotion = np.where(right, labels, (labels + rng.integers(1, 7, n)) % 7)
    return pd.DataFrame(
        {
            "label": np.array(EMOTIONS)[labels],
            "emotion": np.array(EMOTIONS)[emotion],
            "confidence": confidence,
            "brightness": rng.normal(brightness, 20, n),
            "contrast": rng.normal(45, 8, n),
            "sharpness": rng.lognormal(6, 0.5, n),
        }
    )


def test_the_same_distribution_does_not_drift_and_a_shift_does():
    rng = np.random.default_rng(0)
    reference = rng.normal(120, 20, 2000)
    same = numeric_drift("brightness", reference, rng.normal(120, 20, 500), **LIMITS)
    darker = numeric_drift("brightness", reference, rng.normal(80, 20, 500), **LIMITS)
    assert not same.drifted and same.psi < 0.1
    assert darker.drifted and darker.psi > 1.0 and darker.current < darker.reference
    assert darker.wasserstein == pytest.approx(2.0, abs=0.3)  # 40 grey levels = 2 sd


def test_a_small_window_needs_both_effect_and_evidence():
    """Five answers can show a large PSI by chance; the test keeps it from being drift."""
    rng = np.random.default_rng(1)
    reference = rng.normal(120, 20, 2000)
    tiny = numeric_drift("brightness", reference, rng.normal(125, 20, 5), **LIMITS)
    assert not tiny.drifted


def test_a_skewed_emotion_mix_drifts_and_names_the_emotion_that_moved():
    rng = np.random.default_rng(2)
    reference = np.array(EMOTIONS)[rng.integers(0, 7, 2000)]
    happy = np.array(["happy"] * 300 + list(np.array(EMOTIONS)[rng.integers(0, 7, 100)]))
    drift = mix_drift("emotion", reference, happy, EMOTIONS, **LIMITS)
    assert drift.drifted and drift.summary == "share of happy" and drift.current > 0.7


def test_the_estimate_follows_a_calibrated_model_and_reports_its_ece():
    rng = np.random.default_rng(3)
    reference = answers(rng, 3000)
    correct = (reference["emotion"] == reference["label"]).to_numpy()
    estimator = AccuracyEstimator.fit(reference["confidence"].to_numpy(), correct)
    assert estimator.reference_ece < 0.05
    for sure in ((0.15, 0.6), (0.5, 1.0)):  # a harder window, an easier one
        window = answers(rng, 2000, sure=sure)
        measured = (window["emotion"] == window["label"]).mean()
        assert estimator.accuracy(window["confidence"].to_numpy()) == pytest.approx(
            measured, abs=0.04
        )


def test_the_verdict_names_its_reasons_and_too_few_answers_is_a_verdict():
    rng = np.random.default_rng(4)
    reference = answers(rng, 2000)
    config = MonitorConfig(min_answers=100)
    ok = judge(reference, answers(rng, 400), config, model="models:/m/1")
    dark = judge(reference, answers(rng, 400, brightness=60, sure=(0.15, 0.6)), config, model="m")
    few = judge(reference, answers(rng, 20), config, model="models:/m/1")
    assert ok.verdict == OK and not ok.reasons
    assert dark.verdict == DRIFT
    assert any(r.startswith("brightness PSI") for r in dark.reasons)
    assert any(r.startswith("estimated accuracy") for r in dark.reasons)
    assert few.verdict == TOO_FEW and "monitor.min_answers" in few.reasons[0]
    assert set(dark.to_json()) >= {"verdict", "reasons", "estimated_accuracy"}
    page = html_page(dark, reference, answers(rng, 400, brightness=60))
    assert "data:image/png;base64," in page and "<script" not in page
