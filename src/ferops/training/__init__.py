"""Training: fitting a model, augmentation, the Optuna search, MLflow tracking helpers and the
evaluation figures."""
