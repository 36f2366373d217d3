"""The promotion gate, as a pure function of per-image correctness (no MLflow, no model).

Candidate and champion predict the same current test faces; McNemar's exact test on the images
where exactly one of them is right says whether the difference is more than luck. The
candidate becomes champion only if it is better by at least `min_gain` with p < `alpha` (or if
there is no champion yet).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    candidate_accuracy: float
    champion_accuracy: float | None
    p_value: float | None
    candidate_only_right: int  # McNemar's b: images only the candidate gets right
    champion_only_right: int  # McNemar's c


def mcnemar_p_value(candidate_only: int, champion_only: int) -> float:
    """Two-sided exact McNemar test: a binomial test on the discordant pairs."""
    discordant = candidate_only + champion_only
    if discordant == 0:
        return 1.0
    return float(binomtest(candidate_only, discordant, 0.5).pvalue)


def gate(
    candidate_correct: np.ndarray,
    champion_correct: np.ndarray | None,
    *,
    min_gain: float,
    alpha: float,
) -> GateDecision:
    """Decide promotion from per-image correctness of both models on the same test faces."""
    candidate_accuracy = float(candidate_correct.mean())
    if champion_correct is None:
        return GateDecision(True, "no champion yet", candidate_accuracy, None, None, 0, 0)
    b = int(np.sum(candidate_correct & ~champion_correct))
    c = int(np.sum(~candidate_correct & champion_correct))
    champion_accuracy = float(champion_correct.mean())
    p_value = mcnemar_p_value(b, c)
    gain = candidate_accuracy - champion_accuracy
    if b <= c or gain < min_gain:
        reason = (
            f"not better by at least {min_gain}: accuracy {candidate_accuracy:.4f} vs "
            f"champion {champion_accuracy:.4f} ({gain:+.4f})"
        )
        return GateDecision(False, reason, candidate_accuracy, champion_accuracy, p_value, b, c)
    if p_value >= alpha:
        reason = f"better by {gain:+.4f} but not significantly (McNemar p={p_value:.3g} >= {alpha})"
        return GateDecision(False, reason, candidate_accuracy, champion_accuracy, p_value, b, c)
    reason = f"better by {gain:+.4f}, McNemar p={p_value:.3g} < {alpha}"
    return GateDecision(True, reason, candidate_accuracy, champion_accuracy, p_value, b, c)
