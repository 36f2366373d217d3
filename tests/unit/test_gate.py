"""The promotion gate (McNemar's exact test and a minimum gain), as a pure function."""

from __future__ import annotations

import numpy as np
import pytest

from ferops.registry.gate import gate, mcnemar_p_value


def correctness(n: int, right: int) -> np.ndarray:
    return np.arange(n) < right


def test_the_first_version_is_champion():
    decision = gate(correctness(100, 60), None, min_gain=0.0, alpha=0.05)
    assert decision.promote and decision.reason == "no champion yet"


def test_a_clearly_better_candidate_is_promoted_with_its_p_value():
    champion = correctness(400, 240)  # 0.60
    candidate = correctness(400, 300)  # 0.75, right wherever the champion is
    decision = gate(candidate, champion, min_gain=0.01, alpha=0.05)
    assert decision.promote
    assert decision.candidate_only_right == 60 and decision.champion_only_right == 0
    assert decision.p_value < 1e-10


@pytest.mark.parametrize(
    ("candidate_right", "why"),
    [(240, "not better"), (200, "not better"), (245, "not significantly")],
)
def test_a_worse_equal_or_barely_better_candidate_is_refused(candidate_right, why):
    champion = correctness(400, 240)
    decision = gate(correctness(400, candidate_right), champion, min_gain=0.0, alpha=0.05)
    assert not decision.promote and why in decision.reason


def test_the_minimum_gain_is_required_even_when_significant():
    decision = gate(correctness(400, 300), correctness(400, 240), min_gain=0.2, alpha=0.05)
    assert not decision.promote and "at least 0.2" in decision.reason


def test_mcnemar_matches_the_exact_binomial():
    assert mcnemar_p_value(0, 0) == 1.0
    assert mcnemar_p_value(10, 0) == pytest.approx(2 * 0.5**10)
