"""One logged row per answered face, and the settings a server reads to log them.

Configured where the server runs, like the request limits: FEROPS_PREDICTION_LOG names the
folder, or a PostgreSQL URI where several servers log to one table (unset: nothing is
logged); FEROPS_PREDICTION_LOG_FACES=1 also keeps each 48x48 face (personal data: off unless
asked); FEROPS_PREDICTION_LOG_FLUSH_SECONDS sets how often the queue is written (2 s; a killed
server loses at most that much).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from ferops.kernel.emotions import answer_columns
from ferops.kernel.errors import ConfigError
from ferops.prediction_log.database import DatabaseStore, is_database, without_password
from ferops.prediction_log.statistics import face_statistics
from ferops.prediction_log.store import FolderStore
from ferops.prediction_log.writer import PredictionLog

LOG_VARIABLE = "FEROPS_PREDICTION_LOG"
FACES_VARIABLE = "FEROPS_PREDICTION_LOG_FACES"
FLUSH_VARIABLE = "FEROPS_PREDICTION_LOG_FLUSH_SECONDS"


@dataclass(frozen=True)
class LogSettings:
    folder: Path | str  # a folder, or a postgresql:// URI
    keep_faces: bool = False
    flush_seconds: float = 2.0

    @classmethod
    def from_environment(cls) -> LogSettings | None:
        """The settings in the environment, or None when FEROPS_PREDICTION_LOG is unset."""
        target = os.environ.get(LOG_VARIABLE, "").strip()
        if not target:
            return None
        if "://" in target and not is_database(target):
            raise ConfigError(
                f"{LOG_VARIABLE}={without_password(target)}: a folder or a postgresql:// URI"
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
        where = target if is_database(target) else Path(target)
        return cls(where, faces in ("1", "true"), seconds)

    def open(self) -> PredictionLog:
        store = DatabaseStore(self.folder) if is_database(self.folder) else FolderStore(self.folder)
        return PredictionLog(store, flush_seconds=self.flush_seconds)

    def __str__(self) -> str:
        return without_password(str(self.folder))


@dataclass(frozen=True)
class Answerer:
    """Which model answered: the URI it was served as (when known) and its file's sha256,
    which names the registry version whatever alias pointed at it."""

    uri: str
    sha256: str
    source: str  # serve, predict, stream


@dataclass(frozen=True)
class Answers:
    """One request's answers as the request path hands them over: arrays only. The columns
    (statistics, PNGs, Arrow) are built by the log's flush thread, off the request path."""

    answerer: Answerer
    faces: np.ndarray  # (N, 48, 48) uint8, before the model's contrast normalisation
    probabilities: np.ndarray  # (N, 7)
    image_sizes: list[tuple[int, int]]  # width, height of the image each face came from
    latency_ms: float
    keep_faces: bool
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @staticmethod
    def columns_of(answers: list[Answers]) -> dict[str, Any]:
        """The log's columns for many requests at once, a row per face: one pass of numpy
        over all of them, so a flush costs the server little however many requests it holds."""
        counts = np.array([len(a.faces) for a in answers])

        def each(values: list[Any], dtype: Any = object) -> np.ndarray:
            return np.repeat(np.asarray(values, dtype=dtype), counts)

        faces = np.concatenate([a.faces for a in answers])
        probabilities = np.concatenate([a.probabilities for a in answers])
        sizes = np.array([size for a in answers for size in a.image_sizes], np.int32).reshape(-1, 2)
        times = [a.time.replace(tzinfo=None) for a in answers]
        columns: dict[str, Any] = {
            "time": pa.array(each(times, "datetime64[us]"), pa.timestamp("us", tz="UTC")),
            "request_id": each([a.request_id for a in answers]),
            "row": np.concatenate([np.arange(n, dtype=np.int32) for n in counts]),
            "source": each([a.answerer.source for a in answers]),
            "model_uri": each([a.answerer.uri for a in answers]),
            "model_sha256": each([a.answerer.sha256 for a in answers]),
            **answer_columns(probabilities),
            "latency_ms": each([a.latency_ms for a in answers], np.float32),
            **face_statistics(faces),
            "image_width": sizes[:, 0],
            "image_height": sizes[:, 1],
        }
        keep = each([a.keep_faces for a in answers], bool)
        if keep.any():
            columns["face_png"] = [png(f) if k else None for f, k in zip(faces, keep, strict=True)]
        return columns


def png(face: np.ndarray) -> bytes:
    """A lossless 48x48 grey PNG (OpenCV's encoder: about 3x PIL's speed, without the GIL)."""
    ok, encoded = cv2.imencode(".png", face)
    if not ok:
        raise ValueError("a face could not be encoded as PNG")
    return encoded.tobytes()
