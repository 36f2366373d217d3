"""Logging the served pyfunc to an MLflow run: the Keras file, its ONNX export (checked against
Keras), the Preprocessing and their sha256 digests, a signature, a real input example, and the
model as code (models-from-code: no pickle)."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from PIL import Image

from ferops.imaging.contrast import PREPROCESSING_FILE, Preprocessing
from ferops.kernel.integrity import file_digests
from ferops.registry.pyfunc import PROBABILITY_COLUMNS

PACKAGE = Path(__file__).resolve().parents[1]  # src/ferops
MODEL_CODE = Path(__file__).with_name("served_model.py")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoggedPyfunc:
    info: Any  # mlflow.models.model.ModelInfo
    sha256: dict[str, str]  # {file name: digest} of the model files, as the pyfunc checks them


def input_example(face: np.ndarray) -> Any:
    """A one-row request with a real PNG, as a caller would send it."""
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="PNG")
    return pd.DataFrame({"image": [base64.b64encode(buffer.getvalue()).decode()], "pixels": [""]})


def signature() -> Any:
    inputs = Schema(
        [ColSpec("string", "image", required=False), ColSpec("string", "pixels", required=False)]
    )
    outputs = Schema(
        [
            ColSpec("string", "emotion"),
            ColSpec("double", "confidence"),
            *[ColSpec("double", name) for name in PROBABILITY_COLUMNS],
        ]
    )
    # {"faces": "detect"}: whole photos, every face answered (the default "one" face per image)
    params = ParamSchema([ParamSpec("faces", "string", "one")])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def pinned_requirements() -> list[str]:
    """The serving dependencies at the versions installed now (saves MLflow's slow inference)."""
    pins = []
    for package in (
        "tensorflow-cpu",
        "keras",
        "mlflow",
        "numpy",
        "pandas",
        "pillow",
        "opencv-python-headless",
        "onnxruntime",
        "scikit-learn",
        "pyyaml",
    ):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def log_trained_pyfunc(
    model: Any,
    model_path: Path,
    preprocessing: Preprocessing,
    faces: np.ndarray,
    *,
    trained_on: str,
    step: int = 0,
) -> LoggedPyfunc:
    """`log_pyfunc` for a model just trained: its ONNX export is made here and refused,
    failing the caller, unless it matches Keras within 1e-4 on `faces`."""
    # Deferred on purpose: exporting loads TensorFlow; logging a checked export does not.
    from ferops.inference.export import export_model

    with tempfile.TemporaryDirectory() as tmp:
        onnx_export = Path(tmp) / "model.onnx"
        export_model(model, "onnx", onnx_export, faces[:64])
        return log_pyfunc(
            model_path, onnx_export, preprocessing, faces, trained_on=trained_on, step=step
        )


def log_pyfunc(
    model_path: Path,
    onnx_export: Path,
    preprocessing: Preprocessing,
    faces: np.ndarray,
    *,
    trained_on: str,
    step: int = 0,
) -> LoggedPyfunc:
    """Log the served pyfunc to the active run: the Keras file, its checked ONNX export (the
    fast path the pyfunc prefers; logged as `model.onnx`), the Preprocessing, their digests, a
    signature, a real input example from `faces` and the code. The caller records the digests
    on the registry version too. `trained_on` (the data source) travels in the model config,
    so the served model can warn when it is synthetic. MLflow copies the run's metrics at
    `step` onto the logged model's page: pass a step the run's curves do not use
    (`unused_step`) when the model's own figures are logged apart."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Path(tmp) / PREPROCESSING_FILE
        preprocessing.save(settings)
        onnx_path = Path(tmp) / "model.onnx"
        shutil.copyfile(onnx_export, onnx_path)
        artifacts = {"keras_model": model_path, "onnx_model": onnx_path, "preprocessing": settings}
        digests = file_digests(artifacts.values())
        if len(digests) != len(artifacts):
            raise ValueError(f"model files need distinct names, got {list(artifacts.values())}")
        # MLflow loads the model to check the input example: its start-up warning is for a
        # server, not for the registering stage, which states the data in its own words.
        with _silenced("ferops.registry.pyfunc"):
            info = mlflow.pyfunc.log_model(
                name="emotion_classifier",
                python_model=str(MODEL_CODE),
                artifacts={key: str(path) for key, path in artifacts.items()},
                model_config={"sha256": digests, "trained_on": trained_on},
                signature=signature(),
                input_example=input_example(faces[0]),
                pip_requirements=pinned_requirements(),
                code_paths=[str(PACKAGE)],  # the model carries ferops' source (never a pickle)
                step=step,
            )
        return LoggedPyfunc(info, digests)


@contextlib.contextmanager
def _silenced(logger: str) -> Iterator[None]:
    named = logging.getLogger(logger)
    level = named.level
    named.setLevel(logging.ERROR)
    try:
        yield
    finally:
        named.setLevel(level)


def unused_step(run_id: str) -> int:
    """One past the last step of any of the run's metrics: logging a model at this step links
    none of the run's per-epoch figures (epoch 1's accuracy, say) to the model's page."""
    client = mlflow.MlflowClient()
    steps = [
        metric.step
        for key in client.get_run(run_id).data.metrics
        for metric in client.get_metric_history(run_id, key)
    ]
    return max(steps, default=-1) + 1


def register_version(model_uri: str, name: str, tags: dict[str, str]) -> Any:
    """A new version of `name` with its tags, created in one call (so none lacks its digests).

    MLflow prints "Registered model ... already exists" and "Created version ..." straight to
    stderr; the stage logs its own line with the decision, so those go to the debug log."""
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        version = mlflow.register_model(model_uri, name, tags=tags)
    for line in printed.getvalue().splitlines():
        log.debug("mlflow: %s", line)
    return version
