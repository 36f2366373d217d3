"""One logged row per answered face, and the settings a server reads to log them.

Configured where the server runs, like the request limits: FEROPS_PREDICTION_LOG names the
folder (unset: nothing is logged), FEROPS_PREDICTION_LOG_FACES=1 also keeps each 48x48 face
(personal data: off unless asked), FEROPS_PREDICTION_LOG_FLUSH_SECONDS sets how often the
queue is written (2 s; a killed server loses at most that much).
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ferops.kernel.emotions import EMOTIONS
from ferops.kernel.errors import ConfigError
from ferops.prediction_log.statistics import face_statistics
from ferops.prediction_log.store import FolderStore
from ferops.prediction_log.writer import PredictionLog

LOG_VARIABLE = "FEROPS_PREDICTION_LOG"
FACES_VARIABLE = "FEROPS_PREDICTION_LOG_FACES"
FLUSH_VARIABLE = "FEROPS_PREDICTION_LOG_FLUSH_SECONDS"


@dataclass(frozen=True)
class LogSettings:
    folder: Path
    keep_faces: bool = False
    flush_seconds: float = 2.0

    @classmethod
    def from_environment(cls) -> LogSettings | None:
        """The settings in the environment, or None when FEROPS_PREDICTION_LOG is unset."""
        target = os.environ.get(LOG_VARIABLE, "").strip()
        if not target:
            return None
        if "://" in target:
            raise ConfigError(
                f"{LOG_VARIABLE}={target}: only a folder is supported as the prediction log"
            )
        faces = os.environ.get(FACES_VARIABLE, "").strip().lower()
        if faces not in ("", "0", "1", "false", "true"):
            raise ConfigError(f"{FACES_VARIABLE} must be 1 or 0, got {faces!r}")
        flush = os.environ.get(FLUSH_VARIABLE, "").strip()
        try:
            seconds = float(flush) if flush else 2.0
        except ValueError:
            seconds = -1.0
        if not seconds > 0:
            raise ConfigError(f"{FLUSH_VARIABLE} must be a positive number, got {flush!r}")
        return cls(Path(target), faces in ("1", "true"), seconds)

    def open(self) -> PredictionLog:
        return PredictionLog(FolderStore(self.folder), flush_seconds=self.flush_seconds)


@dataclass(frozen=True)
class Answerer:
    """Which model answered: the URI it was served as (when known) and its file's sha256,
    which names the registry version whatever alias pointed at it."""

    uri: str
    sha256: str
    source: str  # serve, predict, stream


def answer_columns(
    answerer: Answerer,
    faces: np.ndarray,
    probabilities: np.ndarray,
    *,
    image_sizes: list[tuple[int, int]],
    latency_ms: float,
    keep_faces: bool,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The log's columns for one request: a row per face, statistics taken before the
    model's contrast normalisation; the face itself only when `keep_faces`."""
    n = len(faces)
    stats = face_statistics(faces)
    widths, heights = zip(*image_sizes, strict=True) if image_sizes else ((), ())
    columns: dict[str, Any] = {
        "time": [datetime.now(UTC)] * n,
        "request_id": [request_id or uuid.uuid4().hex] * n,
        "row": np.arange(n, dtype=np.int32),
        "source": [answerer.source] * n,
        "model_uri": [answerer.uri] * n,
        "model_sha256": [answerer.sha256] * n,
        "emotion": [EMOTIONS[i] for i in probabilities.argmax(axis=1)],
        "confidence": probabilities.max(axis=1).astype(np.float32),
        **{f"p_{e}": probabilities[:, i].astype(np.float32) for i, e in enumerate(EMOTIONS)},
        "latency_ms": np.full(n, latency_ms, dtype=np.float32),
        **stats,
        "image_width": np.asarray(widths, dtype=np.int32),
        "image_height": np.asarray(heights, dtype=np.int32),
    }
    if keep_faces:
        columns["face_png"] = [png(face) for face in faces]
    return columns


def png(face: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="PNG")
    return buffer.getvalue()
