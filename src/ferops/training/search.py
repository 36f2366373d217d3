"""The Optuna search itself, free of Prefect and MLflow: candidates, the study and its pruner,
trial training, the trial loop and the reports.

`ferops.pipeline.tune` runs it as a Prefect flow with every trial a nested MLflow run; `ferops tune
--no-track` runs it bare, for a machine that has neither (a lent GPU): every trial's epochs
then go to reports/tuning/trial_history.csv, and `ferops import-runs` logs them to MLflow
later, as if they had been tracked live.
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import optuna
import pandas as pd

from ferops.data.faceset import FaceSet, Split, load_faceset
from ferops.kernel.config import Params, SearchSpace, TrainConfig, TuneConfig, load_params
from ferops.kernel.errors import ConfigError
from ferops.kernel.files import atomic_path, write_json
from ferops.kernel.layout import Layout
from ferops.models.builders import build_model_under
from ferops.training import fit as training
from ferops.training.tracking import experiment_name

log = logging.getLogger(__name__)

FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)
TRIAL_HISTORY = "trial_history.csv"


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Draw one candidate: model shape and optimiser settings. Dimensions the space leaves
    out are not drawn; the learning rate (and weight decay) are drawn from the range of the
    optimiser drawn, under their own names, since AdamW's and SGD's scales differ tenfold."""
    candidate: dict[str, Any] = {}
    for name in ("variant", "blocks", "stem_pool", "crop", "attention_stages", "optimizer"):
        choices = getattr(space, name)
        if choices is not None:
            candidate[name] = trial.suggest_categorical(name, list(choices))
    candidate |= {
        "attention": trial.suggest_categorical("attention", list(space.attention)),
        "width": trial.suggest_categorical("width", list(space.width)),
        "depth": trial.suggest_categorical("depth", list(space.depth)),
        "dropout": trial.suggest_float("dropout", *space.dropout),
        "label_smoothing": trial.suggest_float("label_smoothing", *space.label_smoothing),
    }
    if space.jitter is not None:
        candidate["jitter"] = trial.suggest_float("jitter", *space.jitter)
    if candidate.get("optimizer") == "sgd":
        candidate["learning_rate"] = trial.suggest_float(
            "sgd_learning_rate", *space.sgd_learning_rate, log=True
        )
    else:
        candidate["learning_rate"] = trial.suggest_float(
            "learning_rate", *space.learning_rate, log=True
        )
    if space.weight_decay is not None:
        name = "sgd_weight_decay" if candidate.get("optimizer") == "sgd" else "weight_decay"
        low, high = space.weight_decay
        if candidate.get("optimizer") == "sgd":  # SGD's decay is Keras' coupled-like scale
            low, high = low / 100, high / 100
        candidate["weight_decay"] = trial.suggest_float(name, max(low, 1e-8), high, log=True)
    return candidate


# The train.* settings a trial trains with; not the final run's length and early stopping,
# whether `train` takes the tuned values, or EMA (trials score raw weights). The tune stage
# depends on these alone (dvc.yaml), so a longer final run does not redo the search.
TRIAL_TRAIN_SETTINGS = tuple(
    f.name
    for f in dataclasses.fields(TrainConfig)
    if f.name not in {"epochs", "patience", "use_tuned", "ema"}
)


def default_study_name(params: Params) -> str:
    """Same data and search settings → same study (resumed); any change → a fresh study.
    Settings left at their defaults are not part of the name, so a setting that a newer
    ferops adds does not orphan a study that is hours in."""
    defaults = Params()
    train = _changed(params.train, defaults.train)
    settings = {
        "data": dataclasses.asdict(params.data),
        "seed": params.seed,
        "preprocess": dataclasses.asdict(params.preprocess),
        "tune": _changed(params.tune, defaults.tune)
        | {"n_trials": None, "storage": None, "max_minutes": None},
        "model": _changed(params.model, defaults.model),
        "train": {k: v for k, v in train.items() if k in TRIAL_TRAIN_SETTINGS},
    }
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return f"{experiment_name(params.data)}-{digest[:8]}"


def _changed(settings: Any, defaults: Any) -> dict[str, Any]:
    """The fields of dataclass `settings` that differ from `defaults`."""
    given, default = dataclasses.asdict(settings), dataclasses.asdict(defaults)
    return {key: value for key, value in given.items() if value != default[key]}


def resolve_storage(url: str, root: Path) -> str:
    """Make a relative SQLite or journal path relative to the project root, not the cwd."""
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
            return prefix + str((root / url[len(prefix) :]).resolve())
    return url


def open_storage(url: str) -> str | optuna.storages.BaseStorage:
    """An RDB URL as it is; `journal:PATH` as Optuna's append-only file journal, which needs no
    database driver (what a bare GPU machine has); `ferops import-runs` copies it into RDB."""
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url[len("journal:") :]))
    return url


REDUCTION = 3  # Hyperband: a third of the trials go on at each rung


def make_pruner(params: Params) -> optuna.pruners.BasePruner:
    """Median stopping, or Hyperband: successive halving in brackets, rungs in epochs from
    tune.pruner_warmup_epochs up to tune.epochs, a third of the trials going on at each rung."""
    tune = params.tune
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, tune.pruner_warmup_epochs),
            max_resource=tune.epochs,
            reduction_factor=REDUCTION,
        )
    return optuna.pruners.MedianPruner(
        n_startup_trials=tune.pruner_startup_trials, n_warmup_steps=tune.pruner_warmup_epochs
    )


def rung_ends(tune: TuneConfig) -> list[int]:
    """The epochs at which Hyperband keeps or stops a trial (1, 3 and 9 for rungs from 1 epoch
    up to 9); just tune.epochs for the median pruner, which has no rungs."""
    ends, epoch = [], max(1, tune.pruner_warmup_epochs)
    while tune.pruner == "hyperband" and epoch < tune.epochs:
        ends.append(epoch)
        epoch *= REDUCTION
    return [*ends, tune.epochs]


def rung_faces(train: Split, tune: TuneConfig, seed: int) -> list[tuple[int, Split]]:
    """(last epoch, training faces) for each rung: the share of train grows geometrically from
    tune.min_train_fraction at the first rung to tune.train_fraction at the last, and each
    rung's faces hold the previous rung's, so a weak candidate is stopped after few faces as
    well as few epochs. One rung of tune.train_fraction without min_train_fraction."""
    top = train.sample(tune.train_fraction, seed) if tune.train_fraction < 1 else train
    ends = rung_ends(tune)
    if tune.min_train_fraction is None or len(ends) == 1:
        return [(tune.epochs, top)]
    growth = (tune.train_fraction / tune.min_train_fraction) ** (1 / (len(ends) - 1))
    splits = [top]  # from the last rung's faces down to the first's, each a sample of the next
    for _ in ends[:-1]:
        splits.append(splits[-1].sample(1 / growth, seed))
    return list(zip(ends, reversed(splits), strict=True))


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
    lock beside a SQLite database or journal file (both mean one machine)."""
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
    elif storage_url.startswith(("sqlite:///", "journal:")):
        path = storage_url.removeprefix("sqlite:///").removeprefix("journal:")
        lock_path = Path(path + ".study-lock")  # not Optuna's own journal lock file
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        raise ConfigError(
            f"tune.storage: use postgresql://, sqlite:/// or journal:, got {storage_url!r}"
        )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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


def best_candidate(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """What the trial trained: its candidate (learning rate under its own name), or for
    studies from before candidates were recorded, Optuna's parameters."""
    return dict(trial.user_attrs.get("candidate") or trial.params)


def write_tuning_reports(
    study: optuna.Study,
    out_dir: Path,
    storage_label: str,
    *,
    seconds: float,
    rungs: Sequence[tuple[int, int]] = (),
) -> dict[str, Any]:
    """best_params.json, summary.json, trials.csv, the rung-by-rung curves (rungs.csv and
    rung_curves.png; `rungs` labels them: last epoch and training faces of each rung) and
    Optuna's plots, each written atomically."""
    states = [t.state for t in study.trials]
    complete = states.count(optuna.trial.TrialState.COMPLETE)
    if complete == 0:
        raise RuntimeError(f"study {study.study_name}: no trial completed; see the MLflow runs")
    best = study.best_trial
    summary = {
        "study": study.study_name,
        "storage": storage_label.split("@")[-1],  # never a password
        "pruner": type(study.pruner).__name__,
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
            "params": best_candidate(best),
            "value": best.value,
            "trial": best.number,
            "study": study.study_name,
        },
    )
    write_json(out_dir / "summary.json", summary)
    with atomic_path(out_dir / "trials.csv") as staged:
        study.trials_dataframe().to_csv(staged, index=False)
    curves = rung_curves(study)
    with atomic_path(out_dir / RUNGS) as staged:
        curves.to_csv(staged, index=False)
    _save_plots(study, out_dir, curves, rungs)
    return summary


RUNGS = "rungs.csv"


def rung_curves(study: optuna.Study) -> pd.DataFrame:
    """Every finished trial's val accuracy epoch by epoch, as it reported it to the pruner:
    where each trial stood at each rung, and where the pruned ones stopped."""
    rows = [
        {"trial": t.number, "state": t.state.name.lower(), "epoch": step, "val_accuracy": value}
        for t in study.get_trials(deepcopy=False, states=FINISHED)
        for step, value in sorted(t.intermediate_values.items())
    ]
    return pd.DataFrame(rows, columns=["trial", "state", "epoch", "val_accuracy"])


#: Below this many complete trials, fANOVA importances mostly reflect which values happened
#: to be drawn; the plot still helps, but says so in its title.
FEW_TRIALS_FOR_IMPORTANCE = 10


def _draw_rung_curves(curves: pd.DataFrame, best: int, rungs: Sequence[tuple[int, int]]) -> Any:
    """Val accuracy against epoch, a line per trial: the best bold, complete ones coloured,
    pruned ones grey; a dotted line at each rung, labelled with the faces trained on."""
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    for (trial, state), rows in curves.groupby(["trial", "state"]):
        style = (
            {"color": "black", "linewidth": 2.5, "zorder": 3, "label": f"best: trial {trial}"}
            if trial == best
            else {"color": "0.7", "linewidth": 1}
            if state == "pruned"
            else {"linewidth": 1.2}
        )
        ax.plot(rows["epoch"], rows["val_accuracy"], marker=".", **style)
    for end, _ in rungs[:-1]:
        ax.axvline(end, color="0.5", linestyle=":", linewidth=1)
    label = ", ".join(f"to epoch {end}: {faces:,} faces" for end, faces in rungs)
    ax.set_title(f"Trials rung by rung (grey: pruned)\n{label}", loc="left", fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val accuracy")
    ax.legend(loc="lower right")
    return ax


def _save_plots(
    study: optuna.Study,
    out_dir: Path,
    curves: pd.DataFrame,
    rungs: Sequence[tuple[int, int]],
) -> None:
    try:
        import matplotlib
    except ImportError:  # a bare GPU machine: the plots are drawn when the run is imported
        log.warning("matplotlib is not installed: no tuning plots")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    plots = {
        "rung_curves.png": (
            lambda _: _draw_rung_curves(curves, study.best_trial.number, rungs),
            "",
        ),
        "optimization_history.png": (optuna_plots.plot_optimization_history, ""),
        "param_importances.png": (
            optuna_plots.plot_param_importances,
            f"from only {complete} complete trials: indicative, not conclusive"
            if complete < FEW_TRIALS_FOR_IMPORTANCE
            else "",
        ),
    }
    for filename, (plot, caveat) in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = plot(study)
        except (ValueError, RuntimeError) as exc:  # e.g. importances need 2+ complete trials
            log.warning("skipped %s: %s", filename, exc)
            (out_dir / filename).unlink(missing_ok=True)  # not a previous search's figure
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
        if caveat:
            ax = axes if hasattr(axes, "set_title") else axes[0]
            ax.set_title(f"{ax.get_title(loc='left')}\n({caveat})", loc="left", color="darkred")
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        with atomic_path(out_dir / filename) as staged:
            figure.savefig(staged, dpi=100, format="png")
        plt.close(figure)
