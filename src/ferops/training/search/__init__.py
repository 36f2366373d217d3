"""The Optuna search itself, free of Prefect and MLflow, one concern a module:

- `space`: what a trial draws (the candidate) and the study's name;
- `storage`: where the study lives (SQLite, PostgreSQL, a journal file) and the lock that
  lets many workers share it;
- `rungs`: the pruner and the epochs and faces of each rung;
- `trials`: one trial's training and the loop that claims and runs trials;
- `reports`: best_params.json, summary.json, the trials table and the plots.

`ferops.pipeline.tune` runs it as a Prefect flow with every trial a nested MLflow run; `ferops tune
--no-track` runs it bare (`trials.untracked_search`), for a machine that has neither (a lent
GPU): every trial's epochs then go to reports/tuning/trial_history.csv, and `ferops import-runs`
logs them to MLflow later, as if they had been tracked live.
"""
