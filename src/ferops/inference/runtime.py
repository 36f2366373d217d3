"""Running a trained classifier: Keras, or an exported ONNX / LiteRT file when one is there.

Whatever runs the model, callers hand over uint8 faces (N, 48, 48) as cropped, and get (N, 7)
probabilities; the Preprocessing the model was trained with is applied here, once.
ONNX Runtime is the fast path: for these small CNNs it skips most of TensorFlow's per-call
overhead (see benchmarks/inference.py), and it keeps TensorFlow out of the process entirely.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferops.imaging.contrast import Preprocessing
from ferops.kernel.errors import DataError
from ferops.kernel.quiet import import_tensorflow_quietly, native_stderr_closed

Predict = Callable[[np.ndarray], np.ndarray]
RUNTIMES = ("auto", "onnx", "litert", "keras")
SUFFIXES = {".keras": "keras", ".onnx": "onnx", ".tflite": "litert"}
_MODULES = {"onnx": "onnxruntime", "litert": "ai_edge_litert", "keras": "keras"}


@dataclass(frozen=True)
class ModelFiles:
    """One model as files on disk (any of Keras, ONNX, LiteRT), the Preprocessing it was
    trained with, and where it came from (a file, a registry URI, the shipped model)."""

    keras: Path | None = None
    onnx: Path | None = None
    litert: Path | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    source: str = ""
    trained_on: str = ""  # "synthetic", "fer2013-csv", ...; "" when unknown (a bare file)
    test_accuracy: float | None = None
    note: str = ""  # why this model answers, when it is not the one a user might expect

    def describe(self) -> str:
        """Which model this is, in words a user can check: where it came from, the data it
        learned from and its test accuracy."""
        facts = [f"trained on {_data_name(self.trained_on)}"] if self.trained_on else []
        if self.test_accuracy is not None:
            facts.append(f"test accuracy {self.test_accuracy:.3f}")
        return f"{self.source} ({', '.join(facts)})" if facts else self.source

    @classmethod
    def from_file(cls, path: Path) -> ModelFiles:
        """A `.keras`, `.onnx` or `.tflite` file; its `.json` sidecar (written by training and
        `ferops export`) carries its contrast normalisation."""
        path = Path(path)
        kind = SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise DataError(f"{path}: expected a .keras, .onnx or .tflite model file")
        if not path.is_file():
            raise DataError(f"{path}: model file not found")
        preprocessing = Preprocessing.load(path.with_suffix(".json"))
        return cls(**{kind: path}, preprocessing=preprocessing, source=str(path))

    def path(self, runtime: str) -> Path | None:
        return {"keras": self.keras, "onnx": self.onnx, "litert": self.litert}[runtime]


def _data_name(source: str) -> str:
    return {"synthetic": "synthetic faces", "fer2013": "FER2013"}.get(source, source)


@dataclass
class FaceClassifier:
    """uint8 faces in, probabilities out, through one runtime. `model` says which model
    (ModelFiles.describe)."""

    predict_fn: Predict
    runtime: str
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    model: str = ""
    note: str = ""
    file: Path | None = None  # the model file that runs

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        if len(faces) == 0:
            return np.zeros((0, 7), np.float32)
        return self.predict_fn(self.preprocessing.apply(faces))


def open_classifier(files: ModelFiles, runtime: str = "auto") -> FaceClassifier:
    """The fastest runtime that has a file and is installed (`auto`), or the one asked for."""
    if runtime not in RUNTIMES:
        raise DataError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    order = ("onnx", "keras", "litert") if runtime == "auto" else (runtime,)
    for name in order:
        path = files.path(name)
        if path is None or not Path(path).is_file() or not runtime_available(name):
            continue
        predict = {"onnx": onnx_predict, "litert": litert_predict, "keras": keras_file_predict}
        return FaceClassifier(
            predict[name](Path(path)),
            name,
            files.preprocessing,
            files.describe(),
            files.note,
            Path(path),
        )
    wanted = "any runtime" if runtime == "auto" else f"runtime {runtime!r}"
    present = {k: str(files.path(k)) for k in _MODULES if files.path(k) is not None}
    raise DataError(f"no model file for {wanted} (installed and present): {present or 'none'}")


def runtime_available(runtime: str) -> bool:
    return importlib.util.find_spec(_MODULES[runtime]) is not None


def load_keras(path: Path) -> Any:
    """The Keras model in `path`, with ferops' custom layers registered."""
    # Deferred on purpose: it imports TensorFlow (seconds), which the ONNX path never needs.
    import_tensorflow_quietly()  # predict/stream on a .keras file: no C++ start-up lines
    from ferops.models.builders import load_model

    return load_model(path)


def keras_file_predict(path: Path) -> Predict:
    return keras_predict(load_keras(path))


def keras_predict(model: Any, chunk: int = 256) -> Predict:
    """The model's compiled predict step, `chunk` faces at a time. `model.predict()` builds a
    data pipeline per call and an eager call runs layer by layer: one face of the shipped
    model took 76 ms that way, 2.5 ms this way (benchmarks/inference.py, 2-core CPU)."""

    def predict(faces: np.ndarray) -> np.ndarray:
        parts = [model.predict_on_batch(faces[i : i + chunk]) for i in range(0, len(faces), chunk)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    return predict


#: Up to this many faces run on one thread: one face is too little work to share between
#: cores (waking a pool for it costs more than it saves). Two or more share the pool: in the
#: video loop four faces of the fast model took 2.1-2.3 ms a frame on two threads against
#: 2.4-3.2 on one, the accurate model's 3.8-4.0 against 4.6-4.9 (2-core AMD EPYC, AVX2;
#: benchmarks/inference.py's loop profile). The loop is sequential, so the second core is idle.
SMALL_BATCH = 1


def onnx_predict(path: Path, threads: int = 0) -> Predict:
    """ONNX Runtime: batches on `threads` (0: one per core), one face on one thread."""
    # Deferred on purpose: an optional runtime, imported only when it runs the model.
    import onnxruntime as ort

    def session(threads: int) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Idle threads sleep instead of spinning: spinning starved OpenCV's face detection of
        # CPU in the video loop (benchmarks/inference.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    many, few = session(threads), session(1)
    name = many.get_inputs()[0].name

    def predict(faces: np.ndarray) -> np.ndarray:
        return (few if len(faces) <= SMALL_BATCH else many).run(None, {name: faces})[0]

    return predict


def litert_predict(path: Path, threads: int | None = None) -> Predict:
    # Deferred on purpose: an optional runtime, imported only when it runs the model.
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    source = interpreter.get_input_details()[0]
    batch = -1

    def predict(faces: np.ndarray) -> np.ndarray:
        nonlocal batch
        if batch != len(faces):  # resizing reallocates: only when the batch changes
            interpreter.resize_tensor_input(source["index"], [len(faces), *faces.shape[1:]])
            with native_stderr_closed():
                interpreter.allocate_tensors()
            batch = len(faces)
        interpreter.set_tensor(source["index"], faces)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    return predict


def load_classifier(path: Path, runtime: str = "auto") -> FaceClassifier:
    """A classifier for one model file (.keras, .onnx or .tflite) and its sidecar."""
    return open_classifier(ModelFiles.from_file(path), runtime)
