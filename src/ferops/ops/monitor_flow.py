"""`ferops monitor` as a Prefect flow: scheduled beside retraining (prefect.yaml), its verdict
published as the `ferops-monitor` markdown artifact, and run first by the retrain flow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ferops.kernel.config import load_params
from ferops.kernel.errors import FeropsError
from ferops.kernel.layout import Layout
from ferops.ops.monitor import Window, monitor

ARTIFACT_KEY = "ferops-monitor"
UNAVAILABLE = "unavailable"


@task(name="monitor", cache_policy=NO_CACHE)
def judge_window(root: Path, model: str | None, hours: float | None, last: int | None) -> dict:
    """Judge the window and publish its report; a project with nothing to judge yet (no
    champion, no reference) is a verdict `unavailable` with the reason, not a failed run."""
    layout = Layout(root)
    since = datetime.now(UTC) - timedelta(hours=hours) if hours else None
    try:
        report = monitor(
            load_params(layout.params), layout, model=model, window=Window(since=since, last=last)
        )
    except FeropsError as exc:
        get_run_logger().warning("monitor: %s", exc)
        markdown = f"# monitor: **{UNAVAILABLE}**\n\n{exc}\n"
        create_markdown_artifact(key=ARTIFACT_KEY, markdown=markdown, description="ferops monitor")
        return {"verdict": UNAVAILABLE, "reasons": [str(exc)], "estimated_accuracy": None}
    get_run_logger().info("%s", report.summary())
    create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=report.markdown(), description="ferops monitor"
    )
    return report.to_json()


@flow(name="ferops-monitor", log_prints=True)
def monitor_flow(
    root: str = ".", model: str | None = None, hours: float | None = None, last: int | None = None
) -> dict[str, Any]:
    """Judge the served answers of the last `hours` (default: the latest monitor.window)."""
    return judge_window(Path(root).resolve(), model, hours, last)
