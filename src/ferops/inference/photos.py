"""Emotions of every face in a photo or frame: detect, crop, classify in one batch, draw."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferops.imaging.decode import UnreadableImage, decode_rgb, fit_face
from ferops.imaging.faces import Box, FaceDetector, crop_face, to_grey
from ferops.inference.runtime import FaceClassifier
from ferops.kernel.emotions import EMOTIONS
from ferops.kernel.errors import DataError

# BGR colours per emotion, so a glance at an annotated frame reads the mood.
COLOURS = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (160, 60, 160),
    "happy": (40, 200, 240),
    "sad": (200, 120, 40),
    "surprise": (240, 200, 40),
    "neutral": (200, 200, 200),
}


@dataclass
class FaceResult:
    box: Box
    probabilities: np.ndarray
    face: np.ndarray | None = None  # the 48x48 crop the model saw (before normalisation)

    @property
    def emotion(self) -> str:
        return EMOTIONS[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    def record(self) -> dict[str, Any]:
        """Box, emotion, confidence and all seven probabilities, JSON-ready."""
        return {
            "x": self.box.x,
            "y": self.box.y,
            "w": self.box.w,
            "h": self.box.h,
            "emotion": self.emotion,
            "confidence": round(self.confidence, 4),
            **{
                f"p_{e}": round(float(p), 4)
                for e, p in zip(EMOTIONS, self.probabilities, strict=True)
            },
        }


#: What `photo_paths` picks up inside a folder (OpenCV and Pillow read them all).
PHOTO_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm"}
)


def photo_paths(paths: list[Path]) -> list[Path]:
    """Each path as given, a folder replaced by the images under it (recursively, sorted, so
    a rerun answers in the same order). A missing path stays in, to be named when read."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()
            )
        else:
            found.append(path)
    return found


def read_photo(path: Path) -> np.ndarray:
    """A BGR image decoded as ingest and serving decode it, or a DataError naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        rgb = decode_rgb(path)
    except UnreadableImage as exc:
        raise DataError(
            f"{path}: not a readable image (PNG, JPEG, BMP, WebP, TIFF, ...): {exc}"
        ) from exc
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def analyse(
    image: np.ndarray, detector: FaceDetector, classifier: FaceClassifier
) -> list[FaceResult]:
    """Every detected face with its probabilities, largest face first; [] when none."""
    grey = to_grey(image)
    return classify_boxes(grey, detector.detect(grey), classifier)


def classify_boxes(
    grey: np.ndarray, boxes: list[Box], classifier: FaceClassifier
) -> list[FaceResult]:
    """The faces in `boxes` cut out (leveled where the box has eyes) and classified in one
    batch."""
    if not boxes:
        return []
    faces = np.stack([crop_face(grey, box) for box in boxes])
    probabilities = classifier.probabilities(faces)
    return [FaceResult(*result) for result in zip(boxes, probabilities, faces, strict=True)]


def analyse_whole(image: np.ndarray, classifier: FaceClassifier) -> list[FaceResult]:
    """The whole image as one face (already cropped): centre square, resized to 48x48."""
    grey = to_grey(image)
    face = fit_face(grey)
    probabilities = classifier.probabilities(face[None])[0]
    return [FaceResult(Box(0, 0, grey.shape[1], grey.shape[0]), probabilities, face)]


def draw(image: np.ndarray, results: list[FaceResult], labels: list[str] | None = None) -> None:
    """Boxes and '<emotion> <confidence>' labels drawn onto `image` in place."""
    for i, result in enumerate(results):
        colour = COLOURS[result.emotion]
        box = result.box
        cv2.rectangle(image, (box.x, box.y), (box.x + box.w, box.y + box.h), colour, 2)
        text = labels[i] if labels else f"{result.emotion} {result.confidence:.2f}"
        scale = max(0.4, min(1.0, box.w / 160))
        (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, box.y - height - 6)
        cv2.rectangle(image, (box.x, top), (box.x + width + 4, top + height + 6), colour, -1)
        cv2.putText(
            image,
            text,
            (box.x + 2, top + height + 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
