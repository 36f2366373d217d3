"""The served model: an MLflow pyfunc that takes images (or 48x48 pixels) and returns emotions.

Request rows carry either `image` (base64 JPEG/PNG/... of any size and colour) or `pixels`
(2,304 space-separated grey levels, FER2013's CSV format). Each row comes back as `emotion`,
`confidence` and `p_<emotion>` for the seven classes. Bad input raises an MlflowException with
INVALID_PARAMETER_VALUE, which `mlflow models serve` answers with HTTP 400 and the message.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import io
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from ferops.imaging.contrast import Preprocessing
from ferops.imaging.decode import (
    FACE_SHAPE,
    TooManyPixels,
    UnreadableImage,
    decode_grey,
    fit_face,
)
from ferops.imaging.faces import Box, FaceDetector, crop_face
from ferops.inference.photos import FaceResult
from ferops.inference.resolve import SYNTHETIC, synthetic_warning
from ferops.inference.runtime import ModelFiles, open_classifier
from ferops.kernel.emotions import EMOTIONS, answer_columns
from ferops.kernel.integrity import ModelFileChanged, verify_files
from ferops.prediction_log.records import LOG_VARIABLE, Answerer, Answers, LogSettings
from ferops.registry.body_limit import limit_next_app

MAX_IMAGE_BYTES = 5 * 1024 * 1024  # per image, after base64 decoding
MAX_IMAGE_PIXELS = 25_000_000  # width x height: refuses decompression bombs before decoding
MAX_BATCH = 1024
SERVED_MODEL_VARIABLE = "FEROPS_SERVED_MODEL"  # the URI `make serve` serves, for the log
SCORING_SERVER_MODEL = "__pyfunc_model_path__"  # set by `mlflow models serve` for its app
# params {"faces": ...}: "one" (the default): each image is one face, centre-cropped;
# "detect": each image is a whole photo, every face in it found and answered.
ONE, DETECT = "one", "detect"
FACE_MODES = (ONE, DETECT)


@dataclass(frozen=True)
class RequestLimits:
    """What one request may hold in all, on top of the per-image caps: image bytes (after
    base64 decoding) and decoded pixels. The server reads FEROPS_MAX_REQUEST_BYTES and
    FEROPS_MAX_REQUEST_PIXELS."""

    max_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 50_000_000

    @property
    def max_body(self) -> int:
        """The largest request body: the images as base64 (4/3), and room for the JSON."""
        return self.max_bytes * 4 // 3 + 1024 * 1024

    @classmethod
    def from_environment(cls) -> RequestLimits:
        return cls(
            max_bytes=_positive_int("FEROPS_MAX_REQUEST_BYTES", cls.max_bytes),
            max_pixels=_positive_int("FEROPS_MAX_REQUEST_PIXELS", cls.max_pixels),
        )


def _positive_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) == 0:
        raise bad_request(f"server setting {name} must be a positive whole number, got {text!r}")
    return int(text)


PROBABILITY_COLUMNS = [f"p_{emotion}" for emotion in EMOTIONS]

log = logging.getLogger(__name__)


def face_mode(params: dict[str, Any] | None) -> str:
    mode = (params or {}).get("faces", ONE)
    if mode not in FACE_MODES:
        raise bad_request(f"params: faces must be one of {', '.join(FACE_MODES)}, got {mode!r}")
    return mode


def bad_request(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def decode_image(
    text: Any, *, row: int, pixels_left: int = MAX_IMAGE_PIXELS
) -> tuple[np.ndarray, tuple[int, int]]:
    """Base64 image → uint8 48x48 grayscale face (centre crop, resize) and the image's width
    and height. An image with more pixels than the request has left is refused before it is
    decoded (RequestFull)."""
    grey = decode_grey_image(text, row=row, pixels_left=pixels_left)
    return fit_face(grey), (grey.shape[1], grey.shape[0])


def decode_grey_image(text: Any, *, row: int, pixels_left: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Base64 image → the whole uint8 grey image, or HTTP 400 naming the row."""
    if not isinstance(text, str | bytes) or not text:
        raise bad_request(f"row {row}: field image must be a non-empty base64 string")
    _check_image_size(len(text), row=row)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(f"row {row}: field image is not valid base64 ({exc})") from None
    try:
        grey = decode_grey(io.BytesIO(raw), max_pixels=min(MAX_IMAGE_PIXELS, pixels_left))
    except UnreadableImage as exc:
        if isinstance(exc, TooManyPixels) and exc.pixels <= MAX_IMAGE_PIXELS:
            raise RequestFull from None  # a fine image, but the request has no room left
        raise bad_request(f"row {row}: field image is not a readable image ({exc})") from None
    return grey


def _check_image_size(base64_length: int, *, row: int) -> None:
    if base64_length > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise bad_request(f"row {row}: image larger than {MAX_IMAGE_BYTES} bytes")


def parse_pixels(value: Any, *, row: int) -> np.ndarray:
    """2,304 grey levels (a space-separated string or a list) → uint8 48x48 face."""
    try:
        if isinstance(value, str):
            values = np.array(value.split(), dtype=np.float64)
        else:
            values = np.asarray(value, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError):
        raise bad_request(f"row {row}: field pixels must hold numbers") from None
    if values.size != 48 * 48:
        raise bad_request(
            f"row {row}: field pixels has {values.size} values, expected 2304 (48x48)"
        )
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 255:
        raise bad_request(f"row {row}: field pixels must be finite grey levels in 0..255")
    return np.rint(values).astype(np.uint8).reshape(48, 48)


class RequestFull(Exception):
    """An image would take the request past its pixel limit."""


@dataclass(frozen=True)
class Request:
    faces: np.ndarray  # (N, 48, 48) uint8
    sizes: list[tuple[int, int]]  # each row's image, width and height (48x48 for pixels)
    images: list[np.ndarray] | None = None  # whole grey images, with faces="detect"


def faces_from_request(model_input: Any) -> np.ndarray:
    """Turn a pyfunc request (DataFrame with image/pixels columns, or an array) into faces."""
    return read_request(model_input).faces


def read_request(model_input: Any, *, whole: bool = False) -> Request:
    """A pyfunc request's faces and the size of the image each came from (or HTTP 400);
    `whole` also keeps each whole image, for face detection."""
    if isinstance(model_input, np.ndarray):
        model_input = pd.DataFrame({"pixels": list(model_input.reshape(len(model_input), -1))})
    if not isinstance(model_input, pd.DataFrame):
        raise bad_request("expected a table with an 'image' or 'pixels' column")
    columns = [c for c in ("image", "pixels") if c in model_input.columns]
    if not columns:
        raise bad_request("expected a column named 'image' (base64) or 'pixels' (2304 values)")
    if len(model_input) == 0:
        raise bad_request("the request holds no rows")
    if len(model_input) > MAX_BATCH:
        raise bad_request(f"at most {MAX_BATCH} images per request, got {len(model_input)}")
    limits = RequestLimits.from_environment()
    if "image" in columns:  # sizes are checked before any image is decoded
        sizes = [len(v) if isinstance(v, str | bytes) else 0 for v in model_input["image"]]
        for row, size in enumerate(sizes):
            _check_image_size(size, row=row)
        sent = sum(sizes) * 3 // 4
        if sent > limits.max_bytes:
            raise bad_request(
                f"the request holds about {sent} bytes of images; at most {limits.max_bytes} "
                "per request (FEROPS_MAX_REQUEST_BYTES): send fewer or smaller images"
            )
    faces = np.empty((len(model_input), 48, 48), dtype=np.uint8)
    sizes = [(48, 48)] * len(model_input)
    images: list[np.ndarray] = []
    pixels_left = limits.max_pixels
    for row, record in enumerate(model_input[columns].itertuples(index=False)):
        values = dict(zip(columns, record, strict=True))
        image, pixels = values.get("image"), values.get("pixels")
        if _present(image):
            try:
                if whole:  # the whole image is searched: no centre crop to make
                    images.append(decode_grey_image(image, row=row, pixels_left=pixels_left))
                    sizes[row] = (images[-1].shape[1], images[-1].shape[0])
                else:
                    faces[row], sizes[row] = decode_image(image, row=row, pixels_left=pixels_left)
            except RequestFull:
                raise bad_request(
                    f"row {row}: the request's images hold more than {limits.max_pixels} "
                    "pixels in all (FEROPS_MAX_REQUEST_PIXELS); the rest were not decoded"
                ) from None
            pixels_left -= sizes[row][0] * sizes[row][1]
        elif _present(pixels):
            faces[row] = parse_pixels(pixels, row=row)
            if whole:
                images.append(faces[row])  # a face already: detected as a whole image
        else:
            raise bad_request(f"row {row}: neither image nor pixels given")
    return Request(faces, sizes, images if whole else None)


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    return not (isinstance(value, str) and value == "")


def emotions_table(probabilities: np.ndarray) -> pd.DataFrame:
    """One row per face: the emotion, its probability, and all seven probabilities."""
    return pd.DataFrame(answer_columns(probabilities, np.float64))


def return_large_buffers_when_freed() -> None:
    """Make glibc give each large buffer (a decoded image, a request body) back to the system
    when it is freed. By default, after freeing one, glibc raises its mmap threshold (up to
    32 MB) and keeps later ones in a heap that does not shrink: the served worker grew from
    288 to 693 MB after 100 maximum-size requests, and stayed there; with a fixed 128 KB
    threshold, 1.3x (benchmarks/serving_memory.py). Nothing to do off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold = -3  # mallopt's M_MMAP_THRESHOLD; setting it disables the adjustment
    libc.mallopt(m_mmap_threshold, 128 * 1024)


class EmotionClassifier(mlflow.pyfunc.PythonModel):
    """The model (ONNX Runtime when its export is there, else Keras) plus the contrast
    normalisation it was trained with, behind the pyfunc API. Logged as code
    (registry/served_model.py); its files are checked against the sha256 digests logged with
    it (the model config's `sha256`) before any is opened."""

    # Requests are checked here (faces_from_request); MLflow's type-hint validation has no
    # hints to check and would only warn, at import, that there are none. (The attribute is
    # MLflow's own switch, used by its ChatModel.)
    _skip_type_hint_validation = True

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        artifacts = context.artifacts
        recorded = (context.model_config or {}).get("sha256")
        if not recorded:
            raise ModelFileChanged(
                "this model was logged without the sha256 of its files; register it again"
            )
        verify_files([Path(p) for p in artifacts.values()], recorded, "the served model")
        onnx = artifacts.get("onnx_model")
        files = ModelFiles(
            keras=Path(artifacts["keras_model"]),
            onnx=Path(onnx) if onnx else None,
            preprocessing=Preprocessing.load(Path(artifacts["preprocessing"])),
            source="pyfunc",
        )
        self.classifier = open_classifier(files)
        return_large_buffers_when_freed()
        if (context.model_config or {}).get("trained_on") == SYNTHETIC:
            log.warning(synthetic_warning("this model"))
        self.answerer = Answerer(
            uri=os.environ.get(SERVED_MODEL_VARIABLE, ""),
            sha256=recorded.get(Path(artifacts["keras_model"]).name, ""),
            source="serve",
        )
        self.detector = FaceDetector()  # for {"faces": "detect"}: BlazeFace, LiteRT, no TF
        if os.environ.get(SCORING_SERVER_MODEL):  # under `mlflow models serve`: its app next
            limit_next_app(RequestLimits.from_environment().max_body)
        self.settings = LogSettings.from_environment()
        self.log = None if self.settings is None else self.settings.open()
        if self.log is None:
            log.warning(
                "prediction log off: %s is not set, so answers are not recorded", LOG_VARIABLE
            )

    # No type hints on purpose: MLflow would derive from them a signature the table does not fit.
    def predict(self, context, model_input, params=None):
        """One row per request row: emotion, confidence, p_<emotion> (or HTTP 400). With
        params {"faces": "detect"}, each image is a whole photo and its row is `faces`: one
        record per face found, largest first ([] when none). Each answer goes to the
        prediction log when there is one (queued: never waited for)."""
        started = time.perf_counter()
        if face_mode(params) == DETECT:
            return self.detect(read_request(model_input, whole=True), started)
        request = read_request(model_input)
        probabilities = self.classifier.probabilities(request.faces)
        self.record(request.faces, probabilities, request.sizes, started)
        return emotions_table(probabilities)

    def detect(self, request: Request, started: float) -> pd.DataFrame:
        """Every face of every image, classified in one batch."""
        boxes: list[list[Box]] = []
        crops: list[np.ndarray] = []
        for image in request.images or []:
            if image.shape == FACE_SHAPE:  # a face already (a pixels row, a 48x48 crop)
                boxes.append([Box(0, 0, *FACE_SHAPE)])
                crops.append(image)
                continue
            boxes.append(self.detector.detect(image))
            crops += [crop_face(image, box) for box in boxes[-1]]
        faces = np.stack(crops) if crops else np.empty((0, 48, 48), np.uint8)
        probabilities = self.classifier.probabilities(faces) if crops else np.empty((0, 7))
        answers, start = [], 0
        for found in boxes:
            results = zip(found, probabilities[start : start + len(found)], strict=True)
            answers.append([FaceResult(box, p).record() for box, p in results])
            start += len(found)
        sizes = [size for size, found in zip(request.sizes, boxes, strict=True) for _ in found]
        if crops:
            self.record(faces, probabilities, sizes, started)
        return pd.DataFrame({"faces": answers})

    def record(self, faces, probabilities, sizes, started) -> None:
        if self.log is not None:
            self.log.append(
                Answers(
                    self.answerer,
                    faces,
                    probabilities,
                    image_sizes=sizes,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    keep_faces=self.settings.keep_faces,
                )
            )
