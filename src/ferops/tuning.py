"""Hyper-parameter search: an Optuna study in RDB storage, driven by Prefect flows.

Each trial is a Prefect task and a nested MLflow run under one parent run per study. The study
lives in `tune.storage` (SQLite by default, PostgreSQL for many workers), so running the flow
again resumes it: only the trials still missing are run. `tune_worker_flow` is the same loop for
many processes (on one machine or many) sharing one PostgreSQL study and one MLflow server.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import socket
import time
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import optuna
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from ferops.artifacts import atomic_path, write_json
from ferops.config import Params, SearchSpace, load_params
from ferops.data.faceset import FaceSet, load_faceset
from ferops.errors import ConfigError
from ferops.layout import Layout
from ferops.tracking import experiment_name

log = logging.getLogger(__name__)

FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Draw one candidate: model shape and optimiser settings."""
    return {
        "attention": trial.suggest_categorical("attention", list(space.attention)),
        "width": trial.suggest_categorical("width", list(space.width)),
        "depth": trial.suggest_categorical("depth", list(space.depth)),
        "dropout": trial.suggest_float("dropout", *space.dropout),
        "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        "label_smoothing": trial.suggest_float("label_smoothing", *space.label_smoothing),
    }


def default_study_name(params: Params) -> str:
    """Same data and search settings → same study (resumed); any change → a fresh study."""
    settings = {
        "data": dataclasses.asdict(params.data),
        "seed": params.seed,
        "preprocess": dataclasses.asdict(params.preprocess),
        "tune": dataclasses.asdict(params.tune) | {"n_trials": None, "storage": None},
        "model": dataclasses.asdict(params.model),
        "train": dataclasses.asdict(params.train),
    }
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return f"{experiment_name(params.data)}-{digest[:8]}"


def resolve_storage(url: str, root: Path) -> str:
    """Make a relative SQLite path relative to the project root, not the working directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str((root / url[len(prefix) :]).resolve())
    return url


@dataclass
class TrialOutcome:
    value: float
    pruned: bool
    epochs: int


class ReportToOptuna(keras.callbacks.Callback):
    """Reports val accuracy to the trial each epoch and stops the fit when Optuna prunes it."""

    def __init__(self, trial: optuna.Trial) -> None:
        super().__init__()
        self.trial = trial
        self.pruned = False

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.trial.report(float((logs or {})["val_accuracy"]), step=epoch)
        if self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True


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
    from mlflow import MlflowClient

    from ferops.models.registry import build_model
    from ferops.precision import dtype_policy
    from ferops.tracking import EpochMetricsToMlflow
    from ferops.train import apply_tuned, fit, seed_everything

    spec, config = apply_tuned(params.model, params.train, candidate)
    # A trial is a few hundred steps: too few for an average with momentum 0.999 to leave the
    # initial weights, so the search scores the raw weights.
    config = dataclasses.replace(config, ema=False)
    client = MlflowClient()
    run = client.create_run(
        experiment_id,
        run_name=f"trial {trial.number}: {spec.attention} w{spec.width} d{spec.depth}",
        tags={
            "mlflow.parentRunId": parent_run_id,
            "ferops.stage": "tune",
            "ferops.trial": str(trial.number),
            "ferops.in_study": trial.study.study_name,
            "ferops.worker": worker,
        },
    )
    run_id = run.info.run_id
    try:
        for key, value in candidate.items():
            client.log_param(run_id, key, value)
        seed_everything(params.seed + trial.number)
        with dtype_policy(config.precision) as precision:
            model = build_model(spec, seed=params.seed)
        client.log_param(run_id, "precision", precision)
        client.log_param(run_id, "params", model.count_params())
        reporter = ReportToOptuna(trial)
        history = fit(
            model,
            faceset,
            config,
            epochs=params.tune.epochs,
            callbacks=[EpochMetricsToMlflow(run_id), reporter],
        )
        value = float(history["val_accuracy"].max())
        client.set_tag(run_id, "pruned", str(reporter.pruned).lower())
        client.log_metric(run_id, "best_val_accuracy", value)
        client.set_terminated(run_id, "KILLED" if reporter.pruned else "FINISHED")
        return TrialOutcome(value, reporter.pruned, len(history))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise


@dataclass
class Search:
    """One study, its data and its MLflow parent run: what every trial of a worker needs."""

    layout: Layout
    params: Params
    study: optuna.Study
    storage_url: str
    n_trials: int
    faceset: FaceSet
    experiment_id: str
    parent_run_id: str

    def run_trials(self, worker: str) -> int:
        """Claim and run trials until the study holds `n_trials`; return how many ran here."""
        ran = 0
        while (trial := claim_trial(self.study, self.n_trials, self.storage_url)) is not None:
            trial.set_user_attr("worker", worker)
            self._run(trial, worker)
            ran += 1
        return ran

    def _run(self, trial: optuna.Trial, worker: str) -> None:
        candidate = suggest(trial, self.params.tune.space)
        try:
            state = run_trial(
                trial,
                candidate,
                self.faceset,
                self.params,
                self.parent_run_id,
                self.experiment_id,
                worker,
                return_state=True,
            )
        except BaseException:  # interrupted: hand the trial back as failed, never left RUNNING
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        if state.is_failed():
            log.warning("trial %d failed: %s", trial.number, state.message)
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        outcome: TrialOutcome = state.result()
        if outcome.pruned:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, outcome.value)
        log.info(
            "trial %d of %d (%s): val accuracy %.4f%s",
            trial.number + 1,
            self.n_trials,
            worker,
            outcome.value,
            " (pruned)" if outcome.pruned else "",
        )


def open_search(
    root: str,
    n_trials: int | None,
    storage: str | None,
    study_name: str | None,
    sampler_seed: int | None = None,
) -> Search:
    """Create or load the study and its parent run; safe when many workers start at once."""
    from ferops.tracking import use_experiment

    layout = Layout(Path(root))
    params = load_params(layout.params)
    tune = params.tune
    storage_url = resolve_storage(storage or tune.storage, layout.root)
    name = study_name or tune.study_name or default_study_name(params)
    faceset = load_faceset(layout.processed)
    if tune.train_fraction < 1:  # a search on a budget: every trial sees the same subset
        faceset = {**faceset, "train": faceset["train"].sample(tune.train_fraction, params.seed)}
    with study_lock(storage_url, name):
        study = optuna.create_study(
            study_name=name,
            storage=storage_url,
            direction="maximize",
            load_if_exists=True,
            # constant_liar: concurrent workers see each other's running trials as bad, so
            # they do not all sample the same region.
            sampler=optuna.samplers.TPESampler(
                seed=params.seed if sampler_seed is None else sampler_seed,
                n_startup_trials=3,
                constant_liar=True,
            ),
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=tune.pruner_startup_trials,
                n_warmup_steps=tune.pruner_warmup_epochs,
            ),
        )
        experiment_id = use_experiment(layout.root, params.data)
        parent_id = _parent_run(name, storage_url, experiment_id)
    return Search(
        layout,
        params,
        study,
        storage_url,
        n_trials or tune.n_trials,
        faceset,
        experiment_id,
        parent_id,
    )


def claim_trial(study: optuna.Study, n_trials: int, storage_url: str) -> optuna.Trial | None:
    """A new trial, or None once the study holds `n_trials` (running ones count).

    Counting and asking happen under one lock, so workers racing for the last trial never
    overshoot: the study ends with exactly `n_trials` trials.
    """
    with study_lock(storage_url, study.study_name):
        if len(study.get_trials(deepcopy=False)) >= n_trials:
            return None
        return study.ask()


@contextmanager
def study_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """A lock shared by every process using this study: a PostgreSQL advisory lock, or a file
    lock beside a SQLite database (SQLite means one machine)."""
    if storage_url.startswith("postgresql"):
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        key = int.from_bytes(hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True)
        engine = sqlalchemy.create_engine(storage_url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            engine.dispose()
    elif storage_url.startswith("sqlite:///"):
        lock_path = Path(storage_url[len("sqlite:///") :] + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        raise ConfigError(f"tune.storage: use postgresql:// or sqlite:///, got {storage_url!r}")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
    import mlflow

    search = open_search(root, n_trials, storage, study_name)
    started = time.perf_counter()
    with mlflow.start_run(run_id=search.parent_run_id):
        search.run_trials(worker_name())
        summary = write_tuning_reports(
            search.study,
            search.layout.tuning,
            storage or search.params.tune.storage,
            seconds=time.perf_counter() - started,
        )
        mlflow.log_metrics(
            {
                "best_val_accuracy": summary["best_value"],
                "trials_complete": summary["complete"],
                "trials_pruned": summary["pruned"],
                "trials_failed": summary["failed"],
            }
        )
        mlflow.log_artifacts(str(search.layout.tuning), "tuning")
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
    ran = search.run_trials(worker)
    log.info("worker %s ran %d trial(s) of study %s", worker, ran, search.study.study_name)
    return ran


def _parent_run(study_name: str, storage_url: str, experiment_id: str) -> str:
    """The parent MLflow run of this study: found again on resume, created the first time."""
    import mlflow

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


def write_tuning_reports(
    study: optuna.Study, out_dir: Path, storage_label: str, *, seconds: float
) -> dict[str, Any]:
    """best_params.json, summary.json, trials.csv and Optuna's plots, each written atomically."""
    states = [t.state for t in study.trials]
    complete = states.count(optuna.trial.TrialState.COMPLETE)
    if complete == 0:
        raise RuntimeError(f"study {study.study_name}: no trial completed; see the MLflow runs")
    best = study.best_trial
    summary = {
        "study": study.study_name,
        "storage": storage_label.split("@")[-1],  # never a password
        "complete": complete,
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "failed": states.count(optuna.trial.TrialState.FAIL),
        "best_trial": best.number,
        "best_value": float(best.value),
        "seconds": round(seconds, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        out_dir / "best_params.json",
        {
            "params": best.params,
            "value": best.value,
            "trial": best.number,
            "study": study.study_name,
        },
    )
    write_json(out_dir / "summary.json", summary)
    with atomic_path(out_dir / "trials.csv") as staged:
        study.trials_dataframe().to_csv(staged, index=False)
    _save_plots(study, out_dir)
    return summary


def _save_plots(study: optuna.Study, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    plots = {
        "optimization_history.png": optuna_plots.plot_optimization_history,
        "param_importances.png": optuna_plots.plot_param_importances,
    }
    for filename, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = plot(study)
        except (ValueError, RuntimeError) as exc:  # e.g. importances need 2+ complete trials
            log.warning("skipped %s: %s", filename, exc)
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        with atomic_path(out_dir / filename) as staged:
            figure.savefig(staged, dpi=100, format="png")
        plt.close(figure)
