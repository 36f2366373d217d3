"""One trial's training, and the loop that claims and runs trials until the study is full."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import optuna
import pandas as pd

from ferops.data.faceset import FaceSet, load_faceset
from ferops.kernel.config import Params, load_params
from ferops.kernel.files import atomic_path
from ferops.kernel.layout import Layout
from ferops.models.builders import build_model_under
from ferops.training import fit as training
from ferops.training.search.reports import write_tuning_reports
from ferops.training.search.rungs import make_pruner, rung_faces
from ferops.training.search.space import default_study_name, suggest
from ferops.training.search.storage import (
    claim_trial,
    open_storage,
    resolve_storage,
    study_lock,
    worker_name,
)

log = logging.getLogger(__name__)

TRIAL_HISTORY = "trial_history.csv"


@dataclass
class TrialOutcome:
    value: float
    pruned: bool
    epochs: int
    history: pd.DataFrame | None = None
    precision: str = ""
    parameters: int = 0


class ReportToOptuna(training.LogEpochs):
    """Reports val accuracy to the trial each epoch and stops the fit when Optuna prunes it;
    the epochs' seconds size the GPU profile's final run, and a line per epoch means a trial
    of minutes is not minutes of silence."""

    def __init__(self, trial: optuna.Trial, epochs: int) -> None:
        super().__init__(epochs)
        self.trial = trial
        self.pruned = False

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.trial.report(float((logs or {})["val_accuracy"]), step=epoch + 1)
        # After its last epoch a trial has nothing left to save: it completes (Hyperband's top
        # rung would otherwise mark trials pruned that trained as long as the winner).
        if epoch + 1 < self.epochs and self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True
        super().on_epoch_end(epoch, logs)

    def line(self, epoch: int, logs: dict[str, float]) -> str:
        return (
            f"trial {self.trial.number}, epoch {epoch}/{self.epochs}: "
            f"loss {float(logs.get('loss', float('nan'))):.4f}, "
            f"val accuracy {float(logs['val_accuracy']):.4f} ({self.epoch_seconds[-1]:.0f} s)"
            + (": pruned" if self.pruned else "")
        )


def train_trial(
    trial: optuna.Trial,
    candidate: dict[str, Any],
    faceset: FaceSet,
    params: Params,
    callbacks: list[keras.callbacks.Callback] = (),
) -> TrialOutcome:
    """Train one candidate for up to tune.epochs, reporting to the trial (which may prune it);
    rung by rung on a growing share of `faceset`'s train split (see `rung_faces`)."""
    spec, config = training.apply_tuned(params.model, params.train, candidate)
    # A trial is a few hundred steps: too few for an average with momentum 0.999 to leave the
    # initial weights, so the search scores the raw weights.
    config = dataclasses.replace(config, ema=False)
    training.seed_everything(params.seed + trial.number)
    model, precision = build_model_under(config.precision, spec, seed=params.seed)
    reporter = ReportToOptuna(trial, params.tune.epochs)
    history = training.fit(
        model,
        faceset,
        config,
        epochs=params.tune.epochs,
        callbacks=[*callbacks, reporter],
        growing=rung_faces(faceset["train"], params.tune, params.seed),
    )
    history["seconds"] = reporter.epoch_seconds[: len(history)]
    return TrialOutcome(
        float(history["val_accuracy"].max()),
        reporter.pruned,
        len(history),
        history,
        precision,
        model.count_params(),
    )


# Runs one trial: (trial, candidate, worker) → outcome; raising marks the trial failed.
TrialRunner = Callable[[optuna.Trial, dict[str, Any], str], TrialOutcome]


@dataclass
class Search:
    """One study and its data: what every trial of a worker needs."""

    layout: Layout
    params: Params
    study: optuna.Study
    storage_url: str
    n_trials: int
    faceset: FaceSet
    deadline: float | None = None  # time.monotonic() after which no new trial starts

    def run_trials(self, worker: str, runner: TrialRunner) -> list[tuple[int, TrialOutcome]]:
        """Claim and run trials until the study holds `n_trials` (or the deadline passed);
        return this worker's outcomes."""
        done: list[tuple[int, TrialOutcome]] = []
        while not self._past_deadline() and (trial := self._claim()) is not None:
            trial.set_user_attr("worker", worker)
            candidate = suggest(trial, self.params.tune.space)
            trial.set_user_attr("candidate", candidate)
            log.info("trial %d of %d (%s): %s", trial.number, self.n_trials, worker, candidate)
            try:
                outcome = runner(trial, candidate, worker)
            except Exception as exc:  # a broken candidate: the study goes on without it
                log.warning("trial %d failed: %s", trial.number, exc)
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            except BaseException:  # interrupted: hand the trial back as failed, never RUNNING
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            if outcome.pruned:
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                self.study.tell(trial, outcome.value)
            done.append((trial.number, outcome))
            log.info(
                "trial %d of %d (%s): val accuracy %.4f after %d epoch(s)%s",
                trial.number,
                self.n_trials,
                worker,
                outcome.value,
                outcome.epochs,
                " (pruned)" if outcome.pruned else "",
            )
        return done

    def rungs(self) -> list[tuple[int, int]]:
        """(last epoch, training faces) of each rung, for the reports."""
        train = self.faceset["train"]
        return [
            (end, len(faces))
            for end, faces in rung_faces(train, self.params.tune, self.params.seed)
        ]

    def _past_deadline(self) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            log.info("tune.max_minutes reached: no new trial starts")
            return True
        return False

    def _claim(self) -> optuna.Trial | None:
        return claim_trial(self.study, self.n_trials, self.storage_url)


def open_search(
    root: str,
    n_trials: int | None,
    storage: str | None,
    study_name: str | None,
    sampler_seed: int | None = None,
) -> Search:
    """Create or load the study; safe when many workers start at once."""
    layout = Layout(Path(root))
    params = load_params(layout.params)
    tune = params.tune
    storage_url = resolve_storage(storage or tune.storage, layout.root)
    name = study_name or tune.study_name or default_study_name(params)
    faceset = load_faceset(layout.processed)  # trials train on a share of it: rung_faces
    if not log.isEnabledFor(logging.DEBUG):  # Optuna's "Using an existing study"; ours below
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    with study_lock(storage_url, name):
        study = optuna.create_study(
            study_name=name,
            storage=open_storage(storage_url),
            direction="maximize",
            load_if_exists=True,
            # constant_liar: concurrent workers see each other's running trials as bad, so
            # they do not all sample the same region.
            sampler=optuna.samplers.TPESampler(
                seed=params.seed if sampler_seed is None else sampler_seed,
                n_startup_trials=3,
                constant_liar=True,
            ),
            pruner=make_pruner(params),
        )
    done = len(study.get_trials(deepcopy=False))
    log.info("study %s: %s", name, f"{done} trials so far, resumed" if done else "new")
    deadline = None if tune.max_minutes is None else time.monotonic() + 60 * tune.max_minutes
    return Search(layout, params, study, storage_url, n_trials or tune.n_trials, faceset, deadline)


def untracked_search(
    root: str, n_trials: int | None = None, storage: str | None = None
) -> dict[str, Any]:
    """The search without Prefect or MLflow: trials run in this process, and their per-epoch
    history is kept in reports/tuning/trial_history.csv for `ferops import-runs`."""
    search = open_search(root, n_trials, storage, None)
    started = time.perf_counter()

    def runner(trial: optuna.Trial, candidate: dict[str, Any], worker: str) -> TrialOutcome:
        return train_trial(trial, candidate, search.faceset, search.params)

    done = search.run_trials(worker_name(), runner)
    histories = [
        outcome.history.assign(
            trial=number, precision=outcome.precision, parameters=outcome.parameters
        )
        for number, outcome in done
        if outcome.history is not None
    ]
    summary = write_tuning_reports(
        search.study,
        search.layout.tuning,
        storage or search.params.tune.storage,
        seconds=time.perf_counter() - started,
        rungs=search.rungs(),
    )
    if histories:
        with atomic_path(search.layout.tuning / TRIAL_HISTORY) as staged:
            pd.concat(histories).to_csv(staged, index=False)
    return summary
