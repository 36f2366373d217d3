"""`ferops monitor`: a window of the prediction log judged against the served version's own
reference, written as report.json and report.html, and charted in MLflow one step per window.

The answers are matched to the version by the sha256 of its model file, which the server logs
with every answer: whatever alias pointed at it, and whichever server answered.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ferops.feedback.review import reviewed_labels
from ferops.inference.answers import log_settings
from ferops.inference.registered import RegisteredVersion, registered_version
from ferops.kernel.config import Params
from ferops.kernel.errors import DataError
from ferops.kernel.files import atomic_path, write_json
from ferops.kernel.layout import REFERENCE_FILE, Layout
from ferops.monitoring.report import TOO_FEW, MonitorReport, html_page, judge
from ferops.prediction_log.database import is_database, without_password
from ferops.prediction_log.records import LOG_VARIABLE
from ferops.prediction_log.store import read_log

log = logging.getLogger(__name__)

EXPERIMENT_SUFFIX = "-monitoring"
VERSION_TAG = "ferops.monitored_version"


@dataclass(frozen=True)
class Window:
    """Which answers to judge: between `since` and `until`, else the latest `last`."""

    since: datetime | None = None
    until: datetime | None = None
    last: int | None = None


def log_folder(layout: Layout, given: str | None = None) -> Path | str:
    """--log, else where `predict --log` and the server write (FEROPS_PREDICTION_LOG, else
    the project's logs/predictions): a folder, or a postgresql:// URI."""
    if given:
        return given if is_database(given) else Path(given)
    return log_settings(layout.root).folder


def monitor(
    params: Params,
    layout: Layout,
    *,
    model: str | None = None,
    window: Window = Window(),
    log_root: str | None = None,
    reference_file: Path | None = None,
    track: bool = True,
) -> MonitorReport:
    """Judge the window for `model` (default: the champion) and write reports/monitoring/."""
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or layout.tracking_uri
    version = registered_version(model or params.register.champion_uri, tracking)
    reference = read_reference(version, reference_file)
    folder = log_folder(layout, log_root)
    answers, missing = answers_of(version, folder, window, params.monitor.window)
    labels = reviewed_labels(layout.feedback, answers)
    report = judge(
        reference,
        answers,
        params.monitor,
        model=version.source,
        since=_text(window.since),
        until=_text(window.until),
        labels=labels,
    )
    if report.verdict == TOO_FEW and missing:
        report.reasons.append(missing)
    write_reports(report, reference, answers, layout.monitoring)
    if track and report.verdict != TOO_FEW:
        track_window(report, version, layout.monitoring, tracking)
    return report


def answers_of(
    version: RegisteredVersion, target: Path | str, window: Window, default_last: int
) -> tuple[pd.DataFrame, str]:
    """The window's answers by this version, and, when there are none, where it looked."""
    folder = without_password(str(target))
    if not is_database(target) and not Path(target).is_dir():
        return pd.DataFrame(), f"no prediction log at {folder} (set {LOG_VARIABLE} or --log)"
    rows = read_log(target, since=window.since, until=window.until)
    if rows.empty:
        return rows, f"{folder} holds no answers in this window"
    digests = set(version.sha256.values())
    mine = rows[rows["model_sha256"].isin(digests)] if digests else rows
    if mine.empty:
        return mine, (
            f"{folder} holds {len(rows)} answer(s), none by {version.source} "
            f"(they were given by {', '.join(sorted(set(rows['model_uri'])))})"
        )
    if (window.since is None and window.until is None) or window.last is not None:
        mine = mine.tail(window.last or default_last)
    return mine.reset_index(drop=True), ""


def read_reference(version: RegisteredVersion, given: Path | None) -> pd.DataFrame:
    """evaluate's reference.parquet as logged with the version (or the file given)."""
    if given is not None:
        if not given.is_file():
            raise DataError(f"{given}: no such reference file")
        return pd.read_parquet(given)
    import mlflow

    if version.run_id is None:
        raise DataError(f"{version.source} is not a registry version; pass --reference FILE")
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=f"evaluation/{REFERENCE_FILE}"
        )
    except Exception as exc:  # MLflow raises several kinds for a missing artifact
        raise DataError(
            f"{version.source} was registered without evaluation/{REFERENCE_FILE} (before ferops "
            "wrote one, or imported): register it again, or pass --reference FILE"
        ) from exc
    return pd.read_parquet(path)


def write_reports(
    report: MonitorReport, reference: pd.DataFrame, answers: pd.DataFrame, folder: Path
) -> None:
    write_json(folder / "report.json", report.to_json())
    with atomic_path(folder / "report.html") as staged:
        staged.write_text(html_page(report, reference, answers))


def track_window(
    report: MonitorReport, version: RegisteredVersion, folder: Path, tracking: str
) -> str:
    """Log the window's figures to the version's monitoring run, one step per window, so
    MLflow charts them over time; tag the version with the latest verdict."""
    import mlflow

    mlflow.set_tracking_uri(tracking)
    client = mlflow.MlflowClient()
    if not version.name:
        return ""
    experiment = mlflow.set_experiment(version.name + EXPERIMENT_SUFFIX)
    key = f"{version.name}/{version.version}"
    found = client.search_runs(
        [experiment.experiment_id], f"tags.`{VERSION_TAG}` = '{key}'", max_results=1
    )
    if found:
        run_id = found[0].info.run_id
        step = len(client.get_metric_history(run_id, "answers"))
    else:
        run = client.create_run(
            experiment.experiment_id,
            run_name=f"monitor {version.name} v{version.version}",
            tags={VERSION_TAG: key, "model_uri": version.uri, "source_run": version.run_id or ""},
        )
        run_id, step = run.info.run_id, 0
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(report.metrics(), step=step)
        mlflow.log_artifacts(str(folder), f"window-{step:04d}")
        mlflow.set_tag("last_verdict", report.summary()[:4000])
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = f"{report.verdict} ({stamp})"
    client.set_model_version_tag(version.name, version.version, "monitor", verdict)
    return run_id


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
