"""Scheduled retraining: a Prefect flow around `dvc repro` that publishes the promotion outcome.

DVC decides what is stale and reruns only that; the registry gate decides promotion. This flow
adds what a schedule needs: skip when nothing changed, retry a run that crashed (not one that
failed on bad data: that fails the same way again), fail loudly with the
failing stage and its log, and leave a readable record (a Prefect markdown artifact) of what
was decided and why. A failed run never reaches `register`, so the champion alias stays put.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.exceptions import MissingContextError
from prefect.states import Completed

from ferops.kernel.config import load_params
from ferops.kernel.errors import ConfigError, FeropsError
from ferops.kernel.layout import Layout
from ferops.kernel.process import stop_group
from ferops.monitoring.report import DRIFT
from ferops.ops.monitor_flow import judge_window

ARTIFACT_KEY = "ferops-promotion"
TAIL_LINES = 40
RETRY_DELAY_S = 30
# The train stage and everything after it: `--force` retrains without searching again.
FORCED_FROM = "train"


class PipelineFailed(FeropsError):
    """`dvc repro` (or `dvc status`) failed; the message names the stage and ends its log,
    `summary` says the same in one line. `retryable` is False when the stage said what is
    wrong (bad data or params): a retry would fail the same way."""

    def __init__(self, message: str, *, summary: str = "", retryable: bool = True) -> None:
        super().__init__(message)
        self._summary = summary or message.splitlines()[0]
        self.retryable = retryable

    @property
    def summary(self) -> str:
        return self._summary


def failure_cause(output: str) -> str:
    """The line that says why: the stage's own `error:` line, else DVC's, else the last one."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for prefix in ("error: ", "ERROR: "):
        said = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
        if said:
            return said[-1]
    return lines[-1] if lines else "no output"


def stage_reported_an_error(output: str) -> bool:
    """A ferops stage that fails on bad input ends with one `error: ...` line (a FeropsError);
    a crash, a kill or a lost server does not."""
    return re.search(r"^error: ", output, re.MULTILINE) is not None


def worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: retry a failed `dvc repro` unless it failed on bad input."""
    return getattr(state.result(raise_on_failure=False), "retryable", True)


def this_prefect_api() -> dict[str, str]:
    """PREFECT_API_URL of the server this run reports to (a temporary one too), for the stages:
    tune's search flow is then recorded next to the retrain that ran it, and no stage starts a
    temporary server of its own (about 9 s each on 2 cores). Outside a run, nothing."""
    try:
        context = get_run_context()
    except MissingContextError:
        return {}
    return {"PREFECT_API_URL": str(context.client.api_url).rstrip("/")}


def dvc(
    root: Path, *args: str, on_line: Callable[[str], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run DVC from this interpreter's environment, so stages find `ferops` on PATH.

    With `on_line`, stderr joins stdout and each line is handed over as it comes (the stages'
    progress reaches the terminal and Prefect's task log while they run); the output is
    returned either way. DVC and its stage get a process group of their own; if this flow is
    stopped (SIGTERM, Ctrl-C, a cancelled run), the whole group is stopped with it, so no stage
    trains on as an orphan."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        **this_prefect_api(),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [sys.executable, "-m", "dvc", *args]
    stderr = subprocess.PIPE if on_line is None else subprocess.STDOUT
    with subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        start_new_session=True,
    ) as process:  # fmt: skip
        try:
            if on_line is None:
                stdout, errors = process.communicate()
            else:
                lines = []
                for line in process.stdout:  # type: ignore[union-attr]
                    lines.append(line)
                    if line.strip():
                        on_line(line.rstrip())
                stdout, errors = "".join(lines), ""
                process.wait()
        except BaseException:
            stop_group(process)
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, errors)


def failed_stage(output: str) -> str:
    """The stage DVC names in 'failed to reproduce <stage>', else 'unknown'."""
    match = re.search(r"failed to reproduce '([^']+)'", output)
    return match.group(1) if match else "unknown"


def tail(output: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


@task(name="dvc-status", cache_policy=NO_CACHE)
def pipeline_changes(root: Path) -> dict[str, Any]:
    """Stages whose code, data or params changed since the last run ({} when up to date)."""
    result = dvc(root, "status", "--json")
    if result.returncode != 0:
        output = result.stdout + result.stderr
        raise PipelineFailed(
            f"dvc status failed:\n{tail(output)}",
            summary=f"dvc status failed: {failure_cause(output)}",
        )
    return json.loads(result.stdout or "{}")


@task(name="dvc-repro", cache_policy=NO_CACHE)
def reproduce(root: Path, force: bool) -> str:
    """`dvc repro`; forced, it reruns train, evaluate and register even when nothing changed."""
    args = ["repro", "--force", "--downstream", FORCED_FROM] if force else ["repro"]
    result = dvc(root, *args, on_line=get_run_logger().info)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        stage = failed_stage(output)
        raise PipelineFailed(
            f"pipeline failed at stage '{stage}' (dvc repro exited {result.returncode}); "
            f"the champion alias was not touched. Last lines:\n{tail(output)}",
            summary=f"retraining failed at stage '{stage}': {failure_cause(output)} "
            "(the champion alias was not touched)",
            retryable=not stage_reported_an_error(output),
        )
    return output


def mlflow_ui(tracking_uri: str) -> tuple[str, str]:
    """Where a person browses runs, and how to open it if nothing serves it yet.

    FEROPS_MLFLOW_UI wins; a tracking server is its own UI; a local store (SQLite, files) has
    no UI until `mlflow ui` serves it, on MLflow's default address."""
    if url := os.environ.get("FEROPS_MLFLOW_UI"):
        return url.rstrip("/"), ""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/"), ""
    return "http://127.0.0.1:5000", f"mlflow ui --backend-store-uri {tracking_uri}"


def verdict_line(verdict: dict[str, Any]) -> str:
    """The monitor's verdict in one line: `drift: brightness PSI 0.41 > 0.20; ...`."""
    reasons = "; ".join(verdict.get("reasons") or [])
    return f"{verdict['verdict']}: {reasons}" if reasons else verdict["verdict"]


def promotion_markdown(
    promotion: dict[str, Any],
    run: dict[str, Any],
    fresh: bool,
    tracking_uri: str,
    verdict: dict[str, Any] | None = None,
) -> str:
    """Candidate against champion, the decision and its p-value, with links to MLflow."""
    ui, opener = mlflow_ui(tracking_uri)
    run_link = f"{ui}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}"
    version = promotion["version"]
    model_link = f"{ui}/#/models/{promotion['model_name']}/versions/{version}"

    def figure(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    p_value = promotion.get("p_value")
    decision = "promoted to **champion**" if promotion["promote"] else "kept as **challenger**"
    lines = [
        f"# {promotion['model_name']} version {version}: {decision}",
        "" if fresh else "_The register stage did not run this time; this is its last outcome._",
        "",
        "| | candidate | champion |",
        "|---|---|---|",
        f"| model version | {version} | {promotion.get('previous_champion') or 'n/a'} |",
        "| test accuracy | "
        f"{figure(promotion['candidate_accuracy'])} | {figure(promotion['champion_accuracy'])} |",
        "| right where the other is wrong | "
        f"{promotion['candidate_only_right']} | {promotion['champion_only_right']} |",
        "",
        f"**Decision:** {promotion['reason']}",
        f"**McNemar exact p-value:** {'n/a' if p_value is None else f'{p_value:.4g}'}",
        *([f"**Monitor before retraining:** {verdict_line(verdict)}"] if verdict else []),
        "",
        f"- training run: [{run['run_id']}]({run_link})",
        f"- registered model: [{promotion['model_name']} v{version}]({model_link})",
        f"- tracking store: `{tracking_uri}`"
        + (f" (the links work once `{opener}` runs)" if opener else ""),
        f"- serve it: `mlflow models serve -m {promotion['model_uri']} --env-manager local`",
    ]
    return "\n".join(lines) + "\n"


@task(name="publish-promotion", cache_policy=NO_CACHE)
def publish_promotion(
    root: Path, before: bytes | None, verdict: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Read reports/promotion.json and publish it as the `ferops-promotion` artifact, with
    the monitor's verdict that preceded the retraining."""
    layout = Layout(root)
    current = layout.promotion.read_bytes()
    promotion = json.loads(current)
    run = json.loads(layout.training_run.read_text())
    fresh = current != before
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=promotion_markdown(promotion, run, fresh, layout.tracking_uri, verdict),
        description="Promotion decision of the latest retraining",
    )
    return {**promotion, "register_ran": fresh}


SKIPPED = "Skipped"


@flow(name="ferops-retrain", log_prints=True)
def retrain_flow(root: str = ".", force: bool = False, retries: int = 1) -> Any:
    """Judge the served answers first (ferops monitor), then retrain as `retrain.trigger`
    says: `data` when data or params changed, `drift` when the monitor says drift, `either`;
    always with `force`. Report the promotion with the verdict beside it.

    A run with nothing to do ends in a Completed state named "Skipped", so the Prefect UI tells
    it from a retraining at a glance; called directly, the flow returns the same dict either way.
    """
    project = Path(root).resolve()
    verdict = judge_window(project, None, None, None)
    changes = pipeline_changes(project)
    try:
        trigger = load_params(Layout(project).params).retrain.trigger
    except ConfigError:
        if not changes:
            raise
        trigger = "data"  # the first stage to run fails on it, naming the stage and the key
    on_data, on_drift = reasons_to_retrain(trigger, bool(changes), verdict["verdict"])
    outcome = {"monitor": verdict_line(verdict), "trigger": trigger}
    if not (force or on_data or on_drift):
        reason = skip_reason(trigger, changes, verdict)
        get_run_logger().info(reason)
        data = {"retrained": False, "changed": sorted(changes), **outcome}
        return Completed(name=SKIPPED, message=reason, data=data)
    why = "changed stages: " + (", ".join(sorted(changes)) or "none")
    if on_drift:
        why += f"; the monitor says {verdict_line(verdict)}"
    get_run_logger().info("retraining (trigger %s); %s", trigger, why if not force else "forced")
    promotion_file = Layout(project).promotion
    before = promotion_file.read_bytes() if promotion_file.is_file() else None
    retrying = reproduce.with_options(
        retries=retries, retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=worth_retrying
    )
    # Drift with unchanged data: DVC sees nothing stale, so train onwards is forced.
    retrying(project, force or (on_drift and not on_data))
    promotion = publish_promotion(project, before, verdict)
    return {"retrained": True, "changed": sorted(changes), **outcome, **promotion}


def reasons_to_retrain(trigger: str, changed: bool, verdict: str) -> tuple[bool, bool]:
    """(retrain because data changed, retrain because of drift), as `retrain.trigger` says."""
    on_data = changed and trigger in ("data", "either")
    on_drift = verdict == DRIFT and trigger in ("drift", "either")
    return on_data, on_drift


def skip_reason(trigger: str, changes: dict[str, Any], verdict: dict[str, Any]) -> str:
    if trigger == "data" or not changes:
        said = "nothing changed since the last run"
        if trigger == "data" and verdict["verdict"] == DRIFT:
            said += " (the monitor says drift; retrain.trigger: data waits for new data)"
        elif trigger != "data":
            said += f" and the monitor says {verdict['verdict']}"
        return f"{said}; no retraining (use --force to retrain)"
    return (
        f"data changed but retrain.trigger is {trigger} and the monitor says "
        f"{verdict['verdict']}; no retraining (use --force to retrain)"
    )
