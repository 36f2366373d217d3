"""The pruner, and the epochs and training faces of each rung a trial climbs."""

from __future__ import annotations

import optuna

from ferops.data.faceset import Split
from ferops.kernel.config import Params, TuneConfig

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
