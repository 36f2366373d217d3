"""What a trial draws from tune.space, and the name that makes a study resumable."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import optuna

from ferops.kernel.config import Params, SearchSpace, TrainConfig
from ferops.training.tracking import experiment_name


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
