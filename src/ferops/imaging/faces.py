"""Finding faces in photos and frames, and cutting them out the way the model was trained.

The default detector is OpenCV's frontal-face Haar cascade, which ships inside the opencv
wheel (nothing is downloaded). `blazeface` names MediaPipe's CNN detector, shipped in this
package (ferops.imaging.blazeface): it finds tilted and large faces the cascade misses, in
half the time. A user may bring another cascade (`.xml`), a YuNet face detector (`.onnx`, run
by OpenCV's FaceDetectorYN) or a BlazeFace short-range file (`.tflite`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferops.kernel.errors import DataError
from ferops.kernel.model_spec import FACE_SIZE

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"
HAAR, BLAZEFACE = "haar", "blazeface"  # --detector names besides files


@dataclass(frozen=True)
class Box:
    """A face's bounding box in image pixels."""

    x: int
    y: int
    w: int
    h: int

    def iou(self, other: Box) -> float:
        """Intersection over union: how much two boxes are the same face."""
        left, top = max(self.x, other.x), max(self.y, other.y)
        right = min(self.x + self.w, other.x + other.w)
        bottom = min(self.y + self.h, other.y + other.h)
        inter = max(0, right - left) * max(0, bottom - top)
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union else 0.0


class FaceDetector:
    """Faces in a grey image, largest first."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        min_size: int = 32,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        score_threshold: float = 0.7,
        detect_width: int | None = None,
    ) -> None:
        self.min_size = min_size
        # Detection cost grows with pixels: video detects on a frame shrunk to this width and
        # maps the boxes back (faces under ~24 px once shrunk, the cascade's window, are missed).
        self.detect_width = detect_width
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._yunet = None
        self._cascade = None
        self._blazeface = None
        if str(model_path) == HAAR:
            model_path = None
        if model_path is not None and (
            str(model_path) == BLAZEFACE or Path(model_path).suffix.lower() == ".tflite"
        ):
            from ferops.imaging.blazeface import MODEL, BlazeFace

            path = MODEL if str(model_path) == BLAZEFACE else Path(model_path)
            if not path.is_file():
                raise DataError(f"{path}: face detector model not found")
            self._blazeface = BlazeFace(path)
            return
        if model_path is not None and Path(model_path).suffix.lower() == ".onnx":
            if not Path(model_path).is_file():
                raise DataError(f"{model_path}: face detector model not found")
            self._yunet = cv2.FaceDetectorYN.create(
                str(model_path), "", (320, 320), score_threshold=score_threshold
            )
            return
        path = Path(model_path) if model_path else Path(cv2.data.haarcascades) / DEFAULT_CASCADE
        problem = (
            f"{path}: not a readable OpenCV cascade (.xml), YuNet (.onnx) or BlazeFace (.tflite) "
            f"model, nor {HAAR} or {BLAZEFACE}"
        )
        try:
            self._cascade = cv2.CascadeClassifier(str(path))
        except (cv2.error, SystemError) as exc:  # malformed XML raises, a missing file doesn't
            raise DataError(problem) from exc
        if self._cascade.empty():
            raise DataError(problem)

    def detect(self, grey: np.ndarray) -> list[Box]:
        """Boxes of the faces in a 2-D uint8 image, largest first."""
        scale = 1.0
        if self.detect_width and grey.shape[1] > self.detect_width:
            scale = grey.shape[1] / self.detect_width
            size = (self.detect_width, round(grey.shape[0] / scale))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        if self._blazeface is not None:
            rows = self._blazeface.detect(grey)
        elif self._yunet is not None:
            colour = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
            self._yunet.setInputSize((grey.shape[1], grey.shape[0]))
            _, found = self._yunet.detect(colour)
            rows = [] if found is None else found[:, :4]
        else:
            rows = self._cascade.detectMultiScale(
                grey,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(round(self.min_size / scale), round(self.min_size / scale)),
            )
        boxes = [
            Box(round(x * scale), round(y * scale), round(w * scale), round(h * scale))
            for x, y, w, h in rows
        ]
        return sorted(boxes, key=lambda b: b.w * b.h, reverse=True)


def crop_face(grey: np.ndarray, box: Box, margin: float = 0.1) -> np.ndarray:
    """A 48x48 crop of the box grown by `margin` on each side (FER2013 faces include a little
    forehead and chin), squared and clipped to the image."""
    side = round(max(box.w, box.h) * (1 + 2 * margin))
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    left = round(cx - side / 2)
    top = round(cy - side / 2)
    height, width = grey.shape
    crop = grey[max(0, top) : min(height, top + side), max(0, left) : min(width, left + side)]
    return cv2.resize(crop, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)


def to_grey(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or BGRA, or grey) image as 2-D uint8 grey."""
    if image.ndim == 2:
        return image
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)
