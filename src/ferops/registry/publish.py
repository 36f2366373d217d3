"""Logging the served pyfunc to an MLflow run: the Keras file, its ONNX export (checked against
Keras), the Preprocessing, a signature, a real input example and the code it needs."""

from __future__ import annotations

import base64
import io
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from PIL import Image

from ferops.imaging.contrast import PREPROCESSING_FILE, Preprocessing
from ferops.inference.export import export_model
from ferops.registry.pyfunc import PROBABILITY_COLUMNS, EmotionClassifier

PACKAGE = Path(__file__).resolve().parents[1]  # src/ferops


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
    return ModelSignature(inputs=inputs, outputs=outputs)


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


def log_pyfunc(
    model: Any, model_path: Path, preprocessing: Preprocessing, faces: np.ndarray
) -> Any:
    """Log the served pyfunc to the active run: the Keras file, its ONNX export (the fast path
    the pyfunc prefers; refused, failing the caller, unless it matches Keras within 1e-4 on
    `faces`), the Preprocessing, a signature, a real input example and the code."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Path(tmp) / PREPROCESSING_FILE
        preprocessing.save(settings)
        onnx_path = Path(tmp) / "model.onnx"
        export_model(model, "onnx", onnx_path, faces[:64])
        return mlflow.pyfunc.log_model(
            name="emotion_classifier",
            python_model=EmotionClassifier(),
            artifacts={
                "keras_model": str(model_path),
                "onnx_model": str(onnx_path),
                "preprocessing": str(settings),
            },
            signature=signature(),
            input_example=input_example(faces[0]),
            pip_requirements=pinned_requirements(),
            code_paths=[str(PACKAGE)],  # the model carries its code
        )
