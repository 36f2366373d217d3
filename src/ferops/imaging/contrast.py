"""Contrast normalisation, and the typed Preprocessing value that travels with every model.

A model trained on CLAHE-equalised faces must see CLAHE-equalised faces wherever it runs: the
Preprocessing a model was trained with is saved beside its file (a JSON sidecar) and with
every registry version, and every runtime applies it through `Preprocessing.apply`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import get_args

import cv2
import numpy as np

from ferops.kernel.config import Contrast, PreprocessConfig
from ferops.kernel.errors import DataError

CONTRASTS: tuple[str, ...] = get_args(Contrast)

# The file that carries a Preprocessing beside processed data and in a registry version.
PREPROCESSING_FILE = "preprocessing.json"


def normalise_contrast(faces: np.ndarray, method: str, *, clahe_clip: float = 2.0) -> np.ndarray:
    """Return uint8 faces (N, 48, 48) with contrast normalised by `method`.

    `none` leaves pixels as they are; `equalize` is global histogram equalisation; `clahe`
    is contrast-limited adaptive equalisation on an 8x8 grid (6x6-pixel tiles), which evens
    out side lighting without blowing up noise in flat regions.
    """
    if method == "none":
        return faces
    out = np.empty_like(faces)
    if method == "equalize":
        for i, face in enumerate(faces):
            out[i] = cv2.equalizeHist(face)
        return out
    if method == "clahe":
        clahe = cv2.createCLAHE(clipLimit=clahe_clip, tileGridSize=(8, 8))
        for i, face in enumerate(faces):
            out[i] = clahe.apply(face)
        return out
    raise ValueError(f"unknown contrast method {method!r}; expected none, equalize or clahe")


@dataclass(frozen=True)
class Preprocessing:
    """What is done to a uint8 48x48 face before the model sees it."""

    contrast: Contrast = "none"
    clahe_clip: float = 2.0

    @classmethod
    def from_config(cls, config: PreprocessConfig) -> Preprocessing:
        return cls(config.contrast, config.clahe_clip)

    def apply(self, faces: np.ndarray) -> np.ndarray:
        faces = np.ascontiguousarray(faces, dtype=np.uint8)
        return normalise_contrast(faces, self.contrast, clahe_clip=self.clahe_clip)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object, *, origin: str) -> Preprocessing:
        """Check a decoded sidecar: a wrong or missing field is named with its file."""
        if not isinstance(raw, dict) or set(raw) != {"contrast", "clahe_clip"}:
            raise DataError(f"{origin}: expected keys contrast and clahe_clip, got {raw!r}")
        if raw["contrast"] not in CONTRASTS:
            raise DataError(f"{origin}: contrast must be one of {', '.join(CONTRASTS)}")
        clip = raw["clahe_clip"]
        if isinstance(clip, bool) or not isinstance(clip, int | float) or clip <= 0:
            raise DataError(f"{origin}: clahe_clip must be a positive number, got {clip!r}")
        return cls(raw["contrast"], float(clip))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: Path) -> Preprocessing:
        """The sidecar at `path`; no sidecar means no contrast normalisation."""
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(raw, origin=str(path))
