"""The DVC stages, one module each, every one with the same contract: `run(params, layout)`.

`dvc.yaml` runs them as `ferops <stage>`; tests and the Python API call `run` directly.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Stage name -> what it does (the `ferops <stage> --help` line), in pipeline order.
STAGES: dict[str, str] = {
    "ingest": "Read data.source (synthetic, fer2013-csv or image-folder) into data/interim.",
    "preprocess": "Drop blank and duplicated faces, normalise contrast, write data/processed.",
    "validate": "Check data/processed with Great Expectations; fail if a critical check fails.",
    "tune": "Search model variants and optimiser settings with Optuna, as a Prefect flow.",
    "train": "Train the tuned (or configured) model on data/processed; track it in MLflow.",
    "evaluate": "Evaluate models/model.keras on the test split; write reports/, log to MLflow.",
    "register": "Register the trained model; promote it to champion only if it beats the last.",
}


def stage(name: str) -> ModuleType:
    """The module of stage `name`. Imported on demand on purpose: the stages import
    TensorFlow, MLflow and Great Expectations, which `ferops predict` must not pay for."""
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    return importlib.import_module(f"{__name__}.{name}")
