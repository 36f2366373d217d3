"""The tuning flow, runnable on its own: `python flows/tune.py [--trials N] [--storage URL]`.

The DVC `tune` stage runs the same flow through `ferops tune`.
"""

from __future__ import annotations

import argparse

from ferops.pipeline.tune import tune_flow

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default=".", help="project root (holds params.yaml)")
    parser.add_argument("--trials", type=int, default=None, help="total trials in the study")
    parser.add_argument("--storage", default=None, help="Optuna storage URL")
    parser.add_argument("--study", default=None, help="study name to create or resume")
    args = parser.parse_args()
    print(
        tune_flow(root=args.root, n_trials=args.trials, storage=args.storage, study_name=args.study)
    )
