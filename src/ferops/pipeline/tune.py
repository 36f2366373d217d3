"""Hyper-parameter search as Prefect flows, every trial a nested MLflow run.

The search itself (candidates, study, pruner, trial loop, reports) is the package
`ferops.training.search`; this module adds the orchestration and tracking around it. The study
lives in `tune.storage` (SQLite by default, PostgreSQL for many workers), so running the flow
again resumes it: only the trials still missing are run. `tune_worker_flow` is the same loop for
many processes (on one machine or many) sharing one PostgreSQL study and one MLflow server.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Sequence
from typing import Any

import mlflow
import optuna
from mlflow import MlflowClient
from prefect import flow, runtime, task
from prefect.cache_policies import NO_CACHE

from ferops.data.faceset import FaceSet
from ferops.kernel.config import Params
from ferops.kernel.layout import Layout
from ferops.training.epoch_metrics import EpochMetricsToMlflow
from ferops.training.search.reports import best_candidate, write_tuning_reports
from ferops.training.search.space import default_study_name, suggest
from ferops.training.search.storage import study_lock, worker_name
from ferops.training.search.trials import (
    Search,
    TrialOutcome,
    open_search,
    train_trial,
    untracked_search,
)
from ferops.training.tracking import (
    log_search_space,
    log_study_summary,
    trial_run_tags,
    use_experiment,
)

__all__ = [
    "default_study_name",
    "publish_study",
    "run",
    "run_trial",
    "suggest",
    "tune_flow",
    "tune_worker_flow",
]

log = logging.getLogger(__name__)


def run(
    params: Params,
    layout: Layout,
    *,
    n_trials: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    track: bool = True,
) -> dict[str, Any]:
    """Search model variants and optimiser settings with Optuna, as a Prefect flow (tracked)
    or a plain loop (`track=False`: no Prefect, no MLflow; `ferops import-runs` logs it later).
    The flow reads params.yaml itself, so a scheduled run and this stage do the same search."""
    root = str(layout.root)
    if not track:
        return untracked_search(root=root, n_trials=n_trials, storage=storage)
    return tune_flow(root=root, n_trials=n_trials, storage=storage, study_name=study_name)


@task(name="train-trial", cache_policy=NO_CACHE)
def run_trial(
    trial: optuna.Trial,
    candidate: dict[str, Any],
    faceset: FaceSet,
    params: Params,
    parent_run_id: str,
    experiment_id: str,
    worker: str,
) -> TrialOutcome:
    """Train one candidate for tune.epochs, as a nested MLflow run; may be pruned."""
    client = MlflowClient()
    name = f"trial {trial.number}: {candidate.get('variant', params.model.variant)}"
    name = f"{name} {candidate['attention']} w{candidate['width']} d{candidate['depth']}"
    run = client.create_run(
        experiment_id,
        run_name=name,
        tags=trial_run_tags(parent_run_id, trial.number, trial.study.study_name, worker),
    )
    run_id = run.info.run_id
    try:
        for key, value in candidate.items():
            client.log_param(run_id, key, value)
        outcome = train_trial(trial, candidate, faceset, params, [EpochMetricsToMlflow(run_id)])
        client.log_param(run_id, "precision", outcome.precision)
        client.log_param(run_id, "parameter_count", outcome.parameters)
        client.set_tag(run_id, "pruned", str(outcome.pruned).lower())
        if outcome.pruned:  # seen in the runs table's name column, without adding a column
            client.update_run(run_id, name=f"{name} · pruned at epoch {outcome.epochs}")
        client.log_metric(run_id, "best_val_accuracy", outcome.value)
        # A pruned trial ended as planned: FINISHED, with its `pruned` tag (MLflow shows
        # KILLED as a crash).
        client.set_terminated(run_id, "FINISHED")
        return outcome
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise


def tracked_runner(search: Search, experiment_id: str, parent_run_id: str):
    """Each trial as a Prefect task and a nested MLflow run; a failed task raises."""

    def runner(trial: optuna.Trial, candidate: dict[str, Any], worker: str) -> TrialOutcome:
        state = run_trial(
            trial,
            candidate,
            search.faceset,
            search.params,
            parent_run_id,
            experiment_id,
            worker,
            return_state=True,
        )
        if state.is_failed():
            raise RuntimeError(state.message)
        return state.result()

    return runner


def _tracked(search: Search) -> tuple[str, str]:
    """The MLflow experiment and this study's parent run (found again on resume)."""
    with study_lock(search.storage_url, search.study.study_name):
        experiment_id = use_experiment(search.layout.root, search.params.data)
        parent_id = parent_run(search.study.study_name, search.storage_url, experiment_id)
    return experiment_id, parent_id


#: The search's parent MLflow run carries the id of the Prefect flow run that last ran it.
FLOW_RUN_TAG = "prefect.flow_run_id"


@flow(name="ferops-tune", log_prints=True)
def tune_flow(
    root: str = ".",
    n_trials: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study until it holds `n_trials` trials; write the best.

    Trials that other workers already ran (`ferops tune-worker`) count: with a finished
    shared study this flow only writes the reports.
    """
    search = open_search(root, n_trials, storage, study_name)
    experiment_id, parent_id = _tracked(search)
    started = time.perf_counter()
    with mlflow.start_run(run_id=parent_id):
        # From the search's MLflow run to the Prefect flow run that last ran it (its logs,
        # its tasks): the two UIs know the same search by different ids.
        mlflow.set_tag(FLOW_RUN_TAG, str(runtime.flow_run.id))
        search.run_trials(worker_name(), tracked_runner(search, experiment_id, parent_id))
        return publish_study(
            search.study,
            search.layout,
            search.params,
            storage or search.params.tune.storage,
            seconds=time.perf_counter() - started,
            rungs=search.rungs(),
        )


def publish_study(
    study: optuna.Study,
    layout: Layout,
    params: Params,
    storage_label: str,
    *,
    seconds: float,
    rungs: Sequence[tuple[int, int]],
) -> dict[str, Any]:
    """Write the study's reports and log them to the active parent run: the outcome as
    metrics, the space and the winner, reports/tuning/ as artifacts. The tune flow and
    `ferops import-runs` both end a search here, so a live and an imported study read alike."""
    summary = write_tuning_reports(
        study, layout.tuning, storage_label, seconds=seconds, rungs=rungs
    )
    log_study_summary(summary)
    log_search_space(params.tune.space, best_candidate(study.best_trial))
    mlflow.log_artifacts(str(layout.tuning), "tuning")
    return summary


@flow(name="ferops-tune-worker", log_prints=True)
def tune_worker_flow(
    root: str = ".",
    n_trials: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
) -> int:
    """One of many workers on a shared study: runs trials until the study holds `n_trials`.

    Returns how many trials this worker ran. Each worker samples with its own seed.
    """
    worker = worker_name()
    search = open_search(
        root, n_trials, storage, study_name, sampler_seed=zlib.crc32(worker.encode())
    )
    experiment_id, parent_id = _tracked(search)
    ran = len(search.run_trials(worker, tracked_runner(search, experiment_id, parent_id)))
    log.info("worker %s ran %d trial(s) of study %s", worker, ran, search.study.study_name)
    return ran


def parent_run(study_name: str, storage_url: str, experiment_id: str) -> str:
    """The parent MLflow run of this study: found again on resume, created the first time."""
    found = mlflow.search_runs(
        experiment_ids=[experiment_id],
        output_format="list",
        filter_string=f"tags.`ferops.study` = '{study_name}'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    run = mlflow.MlflowClient().create_run(
        experiment_id,
        run_name=f"tune {study_name}",
        tags={
            "ferops.study": study_name,
            "ferops.stage": "tune",
            "ferops.optuna_storage": storage_url.split("@")[-1],
        },
    )
    return run.info.run_id
