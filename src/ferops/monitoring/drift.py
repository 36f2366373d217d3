"""How far a window of served answers has moved from the reference, one measure at a time.

Each measure has an effect size and a test. The population stability index (PSI, over the
reference's deciles) is the effect: its usual reading (under 0.1 stable, over 0.2 shifted)
does not depend on the window's size. The test (two-sample Kolmogorov-Smirnov for a number,
chi-square for the emotion mix) says whether the window is large enough to tell. A measure
drifts only when both say so: a large window makes any difference significant, and a small
one makes PSI noisy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

BINS = 10
FLOOR = 1e-4  # an empty bin's share: PSI stays finite, and still large for a bin that emptied


@dataclass(frozen=True)
class Drift:
    """One measure's verdict: reference and current summaries, effect, test and p-value."""

    name: str
    summary: str  # what `reference` and `current` are: "mean", or "share of happy"
    reference: float
    current: float
    psi: float
    wasserstein: float | None  # in reference standard deviations (numbers only)
    test: str
    p_value: float
    drifted: bool

    def reason(self, psi_limit: float) -> str:
        return (
            f"{self.name} PSI {self.psi:.2f} > {psi_limit:.2f} "
            f"({self.summary} {self.reference:.3g} → {self.current:.3g}, "
            f"{self.test} p {self.p_value:.1g})"
        )


def psi_of_shares(reference: np.ndarray, current: np.ndarray) -> float:
    """Sum over bins of (current - reference) * ln(current / reference)."""
    ref = np.maximum(np.asarray(reference, float), FLOOR)
    cur = np.maximum(np.asarray(current, float), FLOOR)
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def numeric_drift(
    name: str, reference: np.ndarray, current: np.ndarray, *, psi_limit: float, p_limit: float
) -> Drift:
    """A number's drift: PSI over the reference's deciles, Kolmogorov-Smirnov, and the
    Wasserstein distance in reference standard deviations (how far, in words a person reads)."""
    reference = np.asarray(reference, float)
    current = np.asarray(current, float)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, BINS + 1)[1:-1]))
    psi = psi_of_shares(shares(reference, edges), shares(current, edges))
    p_value = float(stats.ks_2samp(reference, current).pvalue)
    spread = float(reference.std()) or 1.0
    distance = float(stats.wasserstein_distance(reference, current)) / spread
    return Drift(
        name,
        "mean",
        float(reference.mean()),
        float(current.mean()),
        psi,
        distance,
        "KS",
        p_value,
        psi > psi_limit and p_value < p_limit,
    )


def mix_drift(
    name: str, reference: np.ndarray, current: np.ndarray, classes: tuple[str, ...], *,
    psi_limit: float, p_limit: float,
) -> Drift:  # fmt: skip
    """A categorical mix's drift (the emotions answered): PSI of the shares and a chi-square
    test of the window's counts against the reference's shares."""
    ref_counts = np.array([(reference == c).sum() for c in classes], float)
    cur_counts = np.array([(current == c).sum() for c in classes], float)
    ref_shares = np.maximum(ref_counts, 0.5) / np.maximum(ref_counts, 0.5).sum()
    psi = psi_of_shares(ref_counts / ref_counts.sum(), cur_counts / max(cur_counts.sum(), 1))
    p_value = float(stats.chisquare(cur_counts, ref_shares * cur_counts.sum()).pvalue)
    cur_shares = cur_counts / max(cur_counts.sum(), 1)
    moved = int(np.abs(cur_shares - ref_counts / ref_counts.sum()).argmax())  # the most changed
    return Drift(
        name,
        f"share of {classes[moved]}",
        float(ref_counts[moved] / ref_counts.sum()),
        float(cur_shares[moved]),
        psi,
        None,
        "chi-square",
        p_value,
        psi > psi_limit and p_value < p_limit,
    )
