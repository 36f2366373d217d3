"""The Python API: emotions in photos and videos in two lines, and the pipeline's parts.

    from ferops import EmotionRecognizer

    recognizer = EmotionRecognizer()                   # says which model answers: .model
    recognizer.detect_emotions("party.jpg")            # a path, numpy array or PIL image
    # [{'box': [x, y, w, h], 'emotions': {'angry': 0.01, ...}, 'emotion': 'happy',
    #   'confidence': 0.93}, ...]                     one per face, largest first
    recognizer.analyze_video("clip.mp4")               # a pandas DataFrame, a row per face
                                                       # per frame
    from ferops.api import classifier, emotions_in_photo, run_stage

    run_stage("train", root=".")                       # one pipeline stage, as dvc runs it
    model = classifier()                               # the champion (or the shipped model)

Everything here is light: TensorFlow loads only when a stage or a Keras model needs it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferops.imaging.faces import FaceDetector
from ferops.inference.photos import (
    FaceResult,
    analyse,
    analyse_whole,
    photo_paths,
    read_photo,
)
from ferops.inference.resolve import project_for, resolve_classifier
from ferops.inference.runtime import FaceClassifier
from ferops.inference.video import run_stream
from ferops.kernel.config import load_params
from ferops.kernel.emotions import EMOTIONS
from ferops.kernel.errors import DataError
from ferops.kernel.layout import Layout
from ferops.kernel.quiet import quiet_libraries
from ferops.pipeline import stage


class EmotionRecognizer:
    """Faces and the emotion on each, in photos and videos (like `fer.FER`).

    `model`: a .keras/.onnx/.tflite file, a models:/ URI, or "shipped" / "fast" (the shipped
    FER2013 models: accurate, or fast int8); None: the champion of the project
    at `root` (default: the nearest folder at or above the current one with a params.yaml),
    or the shipped FER2013 model when there is no project, no champion, or a champion that
    learned from synthetic faces. `model` (the attribute) says which one answers. Quiet
    like the `ferops` commands: `verbose=True` lets TensorFlow and MLflow print. `log=True`
    records every answer in the prediction log (FEROPS_PREDICTION_LOG, else the project's
    logs/predictions/)."""

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        root: Path | str | None = None,
        runtime: str = "auto",
        detector: Path | None = None,
        verbose: bool = False,
        log: bool = False,
    ) -> None:
        if not verbose:  # as the `ferops` commands: no TensorFlow start-up or MLflow notes
            quiet_libraries()
        name = None if model is None else str(model)
        layout, register = project_for(name, None if root is None else Path(root))
        self.classifier = resolve_classifier(
            name, layout=layout, register=register, runtime=runtime
        )
        self.detector = FaceDetector(detector)
        # Each answer into the prediction log, as the server records its own (written every
        # 2 s and at exit).
        self.recorder = None
        if log:
            # Deferred on purpose: the log's Parquet writer is not needed without it.
            from ferops.inference.answers import AnswerRecorder

            project = None if root is None else Path(root)
            self.recorder = AnswerRecorder(self.classifier, "api", project)

    @property
    def model(self) -> str:
        """Which model answers: where it came from, its training data and test accuracy."""
        return self.classifier.model

    @property
    def note(self) -> str:
        """Why that model answers, when it is not the project's champion ("" otherwise)."""
        return self.classifier.note

    def detect_emotions(self, image: Any) -> list[dict[str, Any]]:
        """One record per face, largest first: box [x, y, w, h] in the image's pixels, the
        seven probabilities, the top emotion and its probability. `image`: a file path, a
        numpy array as OpenCV holds it (grey, or BGR) or a PIL image."""
        return [face_record(face) for face in self._faces(as_bgr(image), time.perf_counter())]

    def _faces(self, image: np.ndarray, started: float) -> list[FaceResult]:
        faces = analyse(image, self.detector, self.classifier)
        if self.recorder is not None:
            self.recorder.record(image, faces, started)
        return faces

    def analyze_photos(self, *paths: Path | str) -> PhotoBatch:
        """Every face in many photos: files, or folders (every image under them, sorted). An
        unreadable photo does not stop the batch; it is listed in `.failed` with the reason."""
        batch = PhotoBatch(faces=[], failed={})
        for photo in photo_paths([Path(p) for p in paths]):
            started = time.perf_counter()
            try:
                image = read_photo(photo)
            except DataError as exc:
                batch.failed[str(photo)] = str(exc)
                continue
            for face in self._faces(image, started):
                batch.faces.append({"photo": str(photo), **face_record(face)})
        return batch

    def analyze_video(
        self, path: Path | str, *, max_frames: int | None = None, smoothing: float = 0.6
    ) -> Any:
        """A pandas DataFrame with a row per face per frame: frame, time_s, face_id (the same
        face keeps its id across frames), box, emotion, confidence, the seven p_<emotion>."""
        import pandas as pd

        with tempfile.TemporaryDirectory() as folder:
            timeline = Path(folder) / "timeline.csv"
            run_stream(
                str(path),
                self.detector,
                self.classifier,
                timeline=timeline,
                max_frames=max_frames,
                smoothing=smoothing,
            )
            return pd.read_csv(timeline)


@dataclass
class PhotoBatch:
    """What `EmotionRecognizer.analyze_photos` found: a record per face (with its `photo`),
    and the photos that could not be read, each with the reason."""

    faces: list[dict[str, Any]]
    failed: dict[str, str]


def face_record(face: FaceResult) -> dict[str, Any]:
    return {
        "box": [face.box.x, face.box.y, face.box.w, face.box.h],
        "emotions": dict(zip(EMOTIONS, map(float, face.probabilities), strict=True)),
        "emotion": face.emotion,
        "confidence": face.confidence,
    }


def as_bgr(image: Any) -> np.ndarray:
    """A path, a numpy array (2-D grey, or 3-D BGR as OpenCV reads it) or a PIL image, as
    the BGR array the face detector takes."""
    if isinstance(image, str | Path):
        return read_photo(Path(image))
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or array.size == 0:
        raise DataError(
            f"expected a path, a PIL image or a uint8 numpy image, got {array.dtype} "
            f"array of shape {array.shape}"
        )
    return array


def run_stage(name: str, root: Path | str = ".", **options: Any) -> Any:
    """Run one stage (ingest … register) on `root`'s params.yaml; no dependency check, unlike
    `dvc repro`. Options are the stage's own (e.g. `track=False` for train and tune)."""
    layout = Layout(Path(root))
    return stage(name).run(load_params(layout.params), layout, **options)


def classifier(
    model: str | Path | None = None,
    *,
    root: Path | str | None = None,
    runtime: str = "auto",
    verbose: bool = False,
) -> FaceClassifier:
    """A .keras/.onnx/.tflite file or a models:/ URI; None: the champion, else the shipped
    model. The project is found as EmotionRecognizer finds it (`root`, else the nearest
    folder with a params.yaml); a file or a shipped model needs none. `runtime`: auto (ONNX
    Runtime when there), onnx, litert or keras. `verbose`: let TensorFlow and MLflow print
    what they print (quiet by default, as the commands are)."""
    if not verbose:
        quiet_libraries()
    name = None if model is None else str(model)
    layout, register = project_for(name, None if root is None else Path(root))
    return resolve_classifier(name, layout=layout, register=register, runtime=runtime)


def emotions_in_photo(
    photo: Path | str,
    model: FaceClassifier,
    detector: FaceDetector | None = None,
    *,
    whole: bool = False,
) -> list[FaceResult]:
    """Every face found in the photo (largest first) with its emotion; `whole`: the photo is
    one face already."""
    image = read_photo(Path(photo))
    if whole:
        return analyse_whole(image, model)
    return analyse(image, detector or FaceDetector(), model)
