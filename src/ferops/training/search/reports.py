"""What a search leaves behind: best_params.json, summary.json, trials.csv, the rung-by-rung
curves and Optuna's plots."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from ferops.kernel.files import atomic_path, write_json

log = logging.getLogger(__name__)

FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


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
