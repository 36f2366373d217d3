"""A window of served answers judged against its model's reference: the verdict and its
reasons, as JSON for machines, markdown for Prefect, and one HTML page that works offline."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ferops.kernel.config import MonitorConfig
from ferops.kernel.emotions import EMOTIONS
from ferops.monitoring.drift import Drift, mix_drift, numeric_drift
from ferops.monitoring.estimate import AccuracyEstimator
from ferops.prediction_log.statistics import FACE_STATISTICS

OK, DRIFT, TOO_FEW = "ok", "drift", "too few answers"


@dataclass(frozen=True)
class Measured:
    """Accuracy where reviewers labelled some of the window's answers, beside the estimate
    for those same answers: how far the estimate can be trusted, in figures."""

    answers: int
    accuracy: float
    estimated: float


@dataclass
class MonitorReport:
    model: str  # models:/NAME/VERSION (@alias)
    since: str | None
    until: str | None
    answers: int
    verdict: str
    reasons: list[str]
    drifts: list[Drift] = field(default_factory=list)
    estimated_accuracy: float | None = None
    reference_accuracy: float | None = None
    reference_ece: float | None = None
    measured: Measured | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """The figures MLflow charts per window."""
        figures: dict[str, float] = {"answers": float(self.answers)}
        for drift in self.drifts:
            figures[f"{drift.name}_psi"] = drift.psi
            figures[f"{drift.name}_mean"] = drift.current
        figures["drifted_measures"] = float(sum(d.drifted for d in self.drifts))
        if self.estimated_accuracy is not None:
            figures["estimated_accuracy"] = self.estimated_accuracy
        if self.measured is not None:
            figures["measured_accuracy"] = self.measured.accuracy
        return figures

    def summary(self) -> str:
        """One line: the verdict and its reasons, or the figures that made it ok."""
        if self.reasons:
            return f"{self.verdict}: {'; '.join(self.reasons)}"
        estimate = (
            f"; estimated accuracy {self.estimated_accuracy:.3f} against "
            f"{self.reference_accuracy:.3f} at evaluation"
            if self.estimated_accuracy is not None and self.reference_accuracy is not None
            else ""
        )
        return f"{self.verdict}: {self.answers} answers like the reference{estimate}"

    def markdown(self) -> str:
        lines = [
            f"# {self.model}: **{self.verdict}**",
            "",
            f"{self.answers} answers, {self.since or 'start'} → {self.until or 'now'}",
            "",
            *[f"- {reason}" for reason in self.reasons],
            "",
            "| measure | of | reference | window | PSI | test p |",
            "|---|---|---|---|---|---|",
            *[
                f"| {d.name}{' ⚠' if d.drifted else ''} | {d.summary} | {d.reference:.3g} "
                f"| {d.current:.3g} "
                f"| {d.psi:.3f} | {d.p_value:.2g} |"
                for d in self.drifts
            ],
            "",
            self.accuracy_words(),
        ]
        return "\n".join(lines) + "\n"

    def accuracy_words(self) -> str:
        if self.estimated_accuracy is None:
            return ""
        words = (
            f"Estimated accuracy {self.estimated_accuracy:.3f} (evaluation: measured "
            f"{self.reference_accuracy:.3f}, expected calibration error "
            f"{self.reference_ece:.3f}; the estimate is as good as that calibration)."
        )
        if self.measured is not None:
            words += (
                f" Reviewed answers in the window: {self.measured.answers}, measured accuracy "
                f"{self.measured.accuracy:.3f} against {self.measured.estimated:.3f} estimated."
            )
        return words


def judge(
    reference: pd.DataFrame,
    window: pd.DataFrame,
    config: MonitorConfig,
    *,
    model: str,
    since: str | None = None,
    until: str | None = None,
    labels: pd.Series | None = None,
) -> MonitorReport:
    """Compare `window` (prediction-log rows) with `reference` (evaluate's reference.parquet).
    `labels`: reviewed emotions for some of the window's rows (same index), where known."""
    report = MonitorReport(model, since, until, len(window), OK, [])
    if len(window) < config.min_answers:
        report.verdict = TOO_FEW
        report.reasons = [
            f"{len(window)} answer(s) in the window, fewer than monitor.min_answers "
            f"({config.min_answers}); nothing is judged"
        ]
        return report
    limits = {"psi_limit": config.psi, "p_limit": config.p_value}
    report.drifts = [
        *(numeric_drift(s, reference[s], window[s], **limits) for s in FACE_STATISTICS),
        mix_drift("emotion", reference["emotion"], window["emotion"], EMOTIONS, **limits),
        numeric_drift("confidence", reference["confidence"], window["confidence"], **limits),
    ]
    report.reasons = [d.reason(config.psi) for d in report.drifts if d.drifted]
    correct = (reference["emotion"] == reference["label"]).to_numpy()
    estimator = AccuracyEstimator.fit(reference["confidence"].to_numpy(), correct)
    report.estimated_accuracy = estimator.accuracy(window["confidence"].to_numpy())
    report.reference_accuracy = estimator.reference_accuracy
    report.reference_ece = estimator.reference_ece
    drop = report.reference_accuracy - report.estimated_accuracy
    if drop > config.accuracy_drop:
        report.reasons.append(
            f"estimated accuracy {report.estimated_accuracy:.3f} against "
            f"{report.reference_accuracy:.3f} at evaluation"
        )
    if labels is not None and labels.notna().any():
        known = labels.dropna()
        rows = window.loc[known.index]
        report.measured = Measured(
            len(known),
            float((rows["emotion"] == known).mean()),
            estimator.accuracy(rows["confidence"].to_numpy()),
        )
    report.verdict = DRIFT if report.reasons else OK
    return report


def html_page(report: MonitorReport, reference: pd.DataFrame, window: pd.DataFrame) -> str:
    """One self-contained page (figures inlined as PNG): opens offline, mails as a file."""
    rows = "".join(
        f"<tr class={'bad' if d.drifted else 'good'}><td>{html.escape(d.name)}</td>"
        f"<td>{html.escape(d.summary)}</td>"
        f"<td>{d.reference:.3g}</td><td>{d.current:.3g}</td><td>{d.psi:.3f}</td>"
        f"<td>{'' if d.wasserstein is None else f'{d.wasserstein:.2f}'}</td>"
        f"<td>{d.test} {d.p_value:.2g}</td><td>{'drift' if d.drifted else 'ok'}</td></tr>"
        for d in report.drifts
    )
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report.reasons)
    figure = ""
    if report.drifts:
        png = histograms(reference, window)
        figure = f'<img alt="reference against window" src="data:image/png;base64,{png}">'

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>ferops monitor: {html.escape(report.model)}</title>
<style>body{{font:15px system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}}
table{{border-collapse:collapse}}
td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.bad{{background:#fde8e8}}
.verdict{{font-size:1.4em}}img{{max-width:100%}}</style></head><body>
<h1>{html.escape(report.model)}</h1>
<p class="verdict">Verdict: <b>{html.escape(report.verdict)}</b> over {report.answers} answers
({html.escape(report.since or "start")} → {html.escape(report.until or "now")})</p>
<ul>{reasons}</ul>
<table><tr><th>measure</th><th>of</th><th>reference</th><th>window</th><th>PSI</th>
<th>Wasserstein (ref. sd)</th><th>test p</th><th></th></tr>{rows}</table>
<p>{html.escape(report.accuracy_words())}</p>
{figure}
<p><small>A measure drifts when PSI exceeds its threshold and its test rejects.
Made by <code>ferops monitor</code>.</small></p>
</body></html>
"""


def histograms(reference: pd.DataFrame, window: pd.DataFrame) -> str:
    """Reference against window for each face statistic, the confidence and the emotion mix,
    as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*FACE_STATISTICS, "confidence"]
    figure, axes = plt.subplots(1, len(names) + 1, figsize=(4 * (len(names) + 1), 3.2))
    for ax, name in zip(axes, names, strict=False):
        both = np.concatenate([reference[name], window[name]])
        edges = np.histogram_bin_edges(both, bins=30)
        ax.hist(reference[name], edges, density=True, alpha=0.5, label="reference")
        ax.hist(window[name], edges, density=True, alpha=0.5, label="window")
        ax.set_title(name)
    ref_mix = reference["emotion"].value_counts(normalize=True).reindex(EMOTIONS, fill_value=0)
    win_mix = window["emotion"].value_counts(normalize=True).reindex(EMOTIONS, fill_value=0)
    positions = np.arange(len(EMOTIONS))
    axes[-1].bar(positions - 0.2, ref_mix, 0.4, label="reference")
    axes[-1].bar(positions + 0.2, win_mix, 0.4, label="window")
    axes[-1].set_xticks(positions, EMOTIONS, rotation=45)
    axes[-1].set_title("emotion mix")
    axes[0].legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()
