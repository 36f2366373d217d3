"""Running a trained classifier: Keras, or an exported ONNX / LiteRT file when one is there.

Whatever runs the model, callers hand over uint8 faces (N, 48, 48) as cropped, and get (N, 7)
probabilities; the contrast normalisation the model was trained with is applied here, once.
ONNX Runtime is the fast path: for these small CNNs it skips most of TensorFlow's per-call
overhead (see benchmarks/inference.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferops.errors import DataError
from ferops.preprocess import normalise_contrast

log = logging.getLogger(__name__)

Predict = Callable[[np.ndarray], np.ndarray]
RUNTIMES = ("auto", "onnx", "litert", "keras")
NO_CONTRAST = {"contrast": "none", "clahe_clip": 2.0}


@dataclass
class FaceClassifier:
    """uint8 faces in, probabilities out, through one runtime."""

    predict_fn: Predict
    runtime: str
    preprocessing: dict[str, Any] = field(default_factory=lambda: dict(NO_CONTRAST))

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        if len(faces) == 0:
            return np.zeros((0, 7), np.float32)
        faces = normalise_contrast(
            np.ascontiguousarray(faces, dtype=np.uint8),
            self.preprocessing["contrast"],
            clahe_clip=self.preprocessing["clahe_clip"],
        )
        return self.predict_fn(faces)


def keras_predict(model: Any, chunk: int = 256) -> Predict:
    """The model's compiled predict step, `chunk` faces at a time. `model.predict()` builds a
    data pipeline per call and an eager call runs layer by layer: one face of the shipped
    model took 76 ms that way, 2.5 ms this way (benchmarks/inference.py, 2-core CPU)."""

    def predict(faces: np.ndarray) -> np.ndarray:
        parts = [model.predict_on_batch(faces[i : i + chunk]) for i in range(0, len(faces), chunk)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    return predict


def onnx_predict(path: Path, threads: int = 0) -> Predict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: one per core
    # Idle threads sleep instead of spinning: spinning starved OpenCV's face detection of CPU
    # in the video loop (benchmarks/inference.py).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda faces: session.run(None, {name: faces})[0]


def litert_predict(path: Path, threads: int | None = None) -> Predict:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    source = interpreter.get_input_details()[0]
    batch = -1

    def predict(faces: np.ndarray) -> np.ndarray:
        nonlocal batch
        if batch != len(faces):  # resizing reallocates: only when the batch changes
            interpreter.resize_tensor_input(source["index"], [len(faces), *faces.shape[1:]])
            interpreter.allocate_tensors()
            batch = len(faces)
        interpreter.set_tensor(source["index"], faces)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    return predict


def runtime_available(runtime: str) -> bool:
    module = {"onnx": "onnxruntime", "litert": "ai_edge_litert", "keras": "keras"}[runtime]
    import importlib.util

    return importlib.util.find_spec(module) is not None


def classifier_from_files(
    *,
    keras_path: Path | None = None,
    onnx_path: Path | None = None,
    litert_path: Path | None = None,
    preprocessing: dict[str, Any] | None = None,
    runtime: str = "auto",
) -> FaceClassifier:
    """The fastest runtime that has a file and is installed (`auto`), or the one asked for."""
    if runtime not in RUNTIMES:
        raise DataError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    files = {"onnx": onnx_path, "litert": litert_path, "keras": keras_path}
    order = ("onnx", "keras", "litert") if runtime == "auto" else (runtime,)
    for name in order:
        path = files[name]
        if path is None or not Path(path).is_file() or not runtime_available(name):
            continue
        if name == "onnx":
            predict = onnx_predict(Path(path))
        elif name == "litert":
            predict = litert_predict(Path(path))
        else:
            from ferops.models.registry import load_model

            predict = keras_predict(load_model(path))
        return FaceClassifier(predict, name, dict(preprocessing or NO_CONTRAST))
    wanted = "any runtime" if runtime == "auto" else f"runtime {runtime!r}"
    present = {k: str(v) for k, v in files.items() if v is not None}
    raise DataError(f"no model file for {wanted} (installed and present): {present or 'none'}")


def classifier_from_path(path: Path, runtime: str = "auto") -> FaceClassifier:
    """A `.keras`, `.onnx` or `.tflite` file; an exported file's `.json` sidecar (written by
    `ferops export`) carries its contrast normalisation."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    kinds = {".keras": "keras_path", ".onnx": "onnx_path", ".tflite": "litert_path"}
    if suffix not in kinds:
        raise DataError(f"{path}: expected a .keras, .onnx or .tflite model file")
    preprocessing = sidecar_preprocessing(path.with_suffix(".json"))
    kind = {".keras": "keras", ".onnx": "onnx", ".tflite": "litert"}[suffix]
    chosen = kind if runtime == "auto" else runtime
    return classifier_from_files(
        **{kinds[suffix]: path}, preprocessing=preprocessing, runtime=chosen
    )


def classifier_from_registry(uri: str, tracking: str, runtime: str = "auto") -> FaceClassifier:
    """The files of a registered pyfunc (`models:/name@alias`), downloaded once by MLflow."""
    artifacts = registered_files(uri, tracking)
    return classifier_from_files(
        keras_path=_first(artifacts, "*.keras"),
        onnx_path=_first(artifacts, "*.onnx"),
        preprocessing=sidecar_preprocessing(artifacts / "preprocessing.json"),
        runtime=runtime,
    )


def registered_files(uri: str, tracking: str) -> Path:
    """The local folder holding a registered pyfunc's artifacts (model files, settings)."""
    import mlflow

    mlflow.set_tracking_uri(tracking)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri)) / "artifacts"


def sidecar_preprocessing(path: Path) -> dict[str, Any] | None:
    """Contrast settings saved beside a model file, if any."""
    return json.loads(path.read_text()) if path.is_file() else None


def _first(folder: Path, pattern: str) -> Path | None:
    return next(iter(sorted(folder.glob(pattern))), None)


def resolve_classifier(
    model: str | None, *, root: Path, model_name: str, runtime: str = "auto"
) -> FaceClassifier:
    """`model` as a file (.keras/.onnx/.tflite) or a registry URI; by default the champion."""
    from ferops.tracking import tracking_uri

    if model is not None and Path(model).suffix.lower() in (".keras", ".onnx", ".tflite"):
        return classifier_from_path(Path(model), runtime)
    uri = model or f"models:/{model_name}@champion"
    try:
        return classifier_from_registry(uri, tracking_uri(root), runtime)
    except Exception as exc:  # MLflow raises several kinds for a missing model or alias
        if isinstance(exc, DataError):
            raise
        if model is None:  # no champion yet: the pretrained FER2013 model that ships with us
            from ferops import pretrained

            log.warning("no %s in the registry; using the shipped pretrained FER2013 model", uri)
            return classifier_from_path(pretrained.verified_model_file(), runtime)
        raise DataError(
            f"cannot load {uri} from the registry ({type(exc).__name__}); "
            "train one with `make repro` or pass --model FILE"
        ) from exc


def keras_model_with_preprocessing(
    model: str | None, *, root: Path, model_name: str
) -> tuple[Any, dict[str, Any]]:
    """A Keras model and its contrast settings, from a .keras file or the registry."""
    from ferops.models.registry import load_model
    from ferops.tracking import tracking_uri

    if model is not None and model.endswith(".keras"):
        if not Path(model).is_file():
            raise DataError(f"{model}: model file not found")
        preprocessing = sidecar_preprocessing(Path(model).with_suffix(".json"))
        return load_model(model), dict(preprocessing or NO_CONTRAST)
    uri = model or f"models:/{model_name}@champion"
    try:
        artifacts = registered_files(uri, tracking_uri(root))
    except Exception as exc:  # MLflow raises several kinds for a missing model or alias
        raise DataError(f"cannot load {uri} from the registry ({type(exc).__name__})") from exc
    preprocessing = sidecar_preprocessing(artifacts / "preprocessing.json")
    return load_model(artifacts / "model.keras"), dict(preprocessing or NO_CONTRAST)
