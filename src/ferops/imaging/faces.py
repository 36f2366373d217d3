"""Finding faces in photos and frames, and cutting them out the way the model was trained.

The default detector is MediaPipe's BlazeFace, a small CNN shipped in this package
(ferops.imaging.blazeface): it finds tilted, covered and large faces that OpenCV's Haar cascade
misses, in half the time, and its eyes let crop_face level a tilted face. `haar` names the
cascade (inside the opencv wheel), which still finds upright faces under about 48 pixels in a
640x480 frame that BlazeFace does not (benchmarks/detection.py). A user may bring another
cascade (`.xml`), a YuNet face detector (`.onnx`, run by OpenCV's FaceDetectorYN) or a
BlazeFace short-range file (`.tflite`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferops.imaging.blazeface import MODEL, BlazeFace, face_squares
from ferops.kernel.errors import DataError
from ferops.kernel.model_spec import FACE_SIZE

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"
HAAR, BLAZEFACE = "haar", "blazeface"  # --detector names besides files
MARGIN = 0.1  # crop_face grows a box by this on each side: the cascade's box to FER2013's face
LEVEL_FROM = 2.0  # degrees of eye tilt below which a face is cut out as it stands
SMALLEST_FACE = 48  # BlazeFace's finest tiles find faces of FER2013's own size and up
SEARCH_WIDTH = 1920  # BlazeFace searches a wider photo on a copy shrunk to this width


Eyes = tuple[float, float, float, float]  # x, y of one eye, then of the other


@dataclass(frozen=True)
class Box:
    """A face's bounding box in image pixels."""

    x: int
    y: int
    w: int
    h: int
    # Eye centres where the detector finds landmarks: crop_face levels them, so a tilted
    # face reaches the classifier upright.
    eyes: Eyes | None = None

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
        smallest_face: int | None = SMALLEST_FACE,
    ) -> None:
        self.min_size = min_size
        self.smallest_face = smallest_face
        # Detection cost grows with pixels: video detects on a frame shrunk to this width and
        # maps the boxes back (faces too small once shrunk are missed: see the module's note).
        self.detect_width = detect_width
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._yunet = None
        self._cascade = None
        self._blazeface = None
        name = str(model_path or BLAZEFACE)
        if name == BLAZEFACE or name.lower().endswith(".tflite"):
            path = MODEL if name == BLAZEFACE else Path(name)
            if not path.is_file():
                raise DataError(f"{path}: face detector model not found")
            self._blazeface = BlazeFace(path)
            # A search's cost grows with the picture's area (tiles sized for `smallest_face`):
            # a larger photo is searched on a copy this wide.
            self.detect_width = detect_width or SEARCH_WIDTH
            return
        if name.lower().endswith(".onnx"):
            if not Path(name).is_file():
                raise DataError(f"{name}: face detector model not found")
            self._yunet = cv2.FaceDetectorYN.create(
                name, "", (320, 320), score_threshold=score_threshold
            )
            return
        path = Path(cv2.data.haarcascades) / DEFAULT_CASCADE if name == HAAR else Path(name)
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

    def near(self, grey: np.ndarray, box: Box) -> Box | None:
        """The face in a square of twice `box`'s side around it, where a face seen a frame ago
        now is (or None): one BlazeFace pass instead of the frame's seven, as the face fills
        half the square; the cascade searches the square alone."""
        side = 2 * max(box.w, box.h)
        left = max(0, round(box.x + box.w / 2 - side / 2))
        top = max(0, round(box.y + box.h / 2 - side / 2))
        patch = grey[top : top + side, left : left + side]
        found = [
            Box(b.x + left, b.y + top, b.w, b.h, shift(b.eyes, left, top))
            for b in self.detect(patch, tiles=False)
        ]
        best = max(found, key=box.iou, default=None)
        return best if best is not None and best.iou(box) > 0 else None

    def detect(self, grey: np.ndarray, tiles: bool = True) -> list[Box]:
        """Boxes of the faces in a 2-D uint8 image, largest first (BlazeFace without `tiles`:
        the whole-image pass only, for faces over a fifth of the image)."""
        scale = 1.0
        if self.detect_width and grey.shape[1] > self.detect_width:
            scale = grey.shape[1] / self.detect_width
            size = (self.detect_width, round(grey.shape[0] / scale))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        eyes: np.ndarray | list = []
        if self._blazeface is not None:
            found, eyes = self._blazeface.detect(grey, tiles, self.smallest_face)
            # As the cascade frames a face: FER2013's square, less crop_face's margin.
            squares = face_squares(found)
            side = squares[:, 2:] / (1 + 2 * MARGIN)
            rows = np.concatenate([squares[:, :2] + (squares[:, 2:] - side) / 2, side], axis=1)
        elif self._yunet is not None:
            colour = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
            self._yunet.setInputSize((grey.shape[1], grey.shape[0]))
            _, found = self._yunet.detect(colour)
            rows = [] if found is None else found[:, :4]
            eyes = [] if found is None else found[:, 4:8]  # YuNet: right eye, left eye first
        else:
            rows = self._cascade.detectMultiScale(
                grey,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(round(self.min_size / scale), round(self.min_size / scale)),
            )
        boxes = [
            Box(
                round(x * scale),
                round(y * scale),
                round(w * scale),
                round(h * scale),
                eyes_at(eyes[i], scale) if len(eyes) else None,
            )
            for i, (x, y, w, h) in enumerate(rows)
        ]
        return sorted(boxes, key=lambda b: b.w * b.h, reverse=True)


def eyes_at(found: np.ndarray, scale: float) -> Eyes:
    """A detector's two eye points, scaled back to the frame."""
    x1, y1, x2, y2 = (float(v) * scale for v in np.ravel(found)[:4])
    return x1, y1, x2, y2


def shift(eyes: Eyes | None, dx: float, dy: float) -> Eyes | None:
    """Eye coordinates moved by (dx, dy)."""
    return None if eyes is None else (eyes[0] + dx, eyes[1] + dy, eyes[2] + dx, eyes[3] + dy)


def crop_face(grey: np.ndarray, box: Box, margin: float = MARGIN, level: bool = True) -> np.ndarray:
    """A 48x48 crop of the box grown by `margin` on each side (FER2013 faces include a little
    forehead and chin), squared and clipped to the image. Where the box has eyes turned more
    than LEVEL_FROM degrees, the square is first turned about its centre to level them:
    tilted faces then reach the classifier upright, as FER2013's faces are."""
    side = round(max(box.w, box.h) * (1 + 2 * margin))
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    angle = eye_angle(box) if level else 0.0
    if abs(angle) > LEVEL_FROM:
        turn = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        turn[:, 2] += side / 2 - np.array([cx, cy])
        square = cv2.warpAffine(
            grey, turn, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return cv2.resize(square, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    left = round(cx - side / 2)
    top = round(cy - side / 2)
    height, width = grey.shape
    crop = grey[max(0, top) : min(height, top + side), max(0, left) : min(width, left + side)]
    return cv2.resize(crop, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)


def eye_angle(box: Box) -> float:
    """Degrees the line between the eyes turns from level (clockwise on screen is positive);
    0 for a box without eyes."""
    if box.eyes is None:
        return 0.0
    (x1, y1), (x2, y2) = sorted([box.eyes[:2], box.eyes[2:]])  # the image's left eye first
    return float(np.degrees(np.arctan2(y2 - y1, x2 - x1)))


def to_grey(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or BGRA, or grey) image as 2-D uint8 grey."""
    if image.ndim == 2:
        return image
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)
