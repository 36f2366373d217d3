"""`ferops predict --log` and `EmotionRecognizer(log=True)`: their answers go to the same
prediction log as the server's, marked with where they came from."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ferops.inference.photos import FaceResult
from ferops.inference.runtime import FaceClassifier
from ferops.kernel.errors import ConfigError
from ferops.kernel.integrity import sha256_file
from ferops.kernel.layout import Layout, find_root
from ferops.prediction_log.records import LOG_VARIABLE, Answerer, Answers, LogSettings


def log_settings(root: Path | None) -> LogSettings:
    """FEROPS_PREDICTION_LOG's settings, else the project's logs/predictions/."""
    settings = LogSettings.from_environment()
    if settings is not None:
        return settings
    project = root if root is not None else find_root(Path.cwd())
    if project is None:
        raise ConfigError(
            f"--log: set {LOG_VARIABLE} to a folder, or run inside a ferops project "
            "(its logs/predictions/)"
        )
    return LogSettings(Layout(Path(project)).prediction_log)  # where `make serve` logs too


class AnswerRecorder:
    """Records each photo's faces, as the server records each request's rows."""

    def __init__(self, classifier: FaceClassifier, source: str, root: Path | None) -> None:
        self.settings = log_settings(root)
        self.log = self.settings.open()
        file = classifier.file
        self.answerer = Answerer(
            uri=classifier.model,
            sha256=sha256_file(file) if file is not None and file.is_file() else "",
            source=source,
        )

    def record(self, image: np.ndarray, results: list[FaceResult], started: float) -> None:
        """One photo's answers (`started`: time.perf_counter() before it was read)."""
        faces = [r.face for r in results if r.face is not None]
        if not faces:
            return
        height, width = image.shape[:2]
        self.log.append(
            Answers(
                self.answerer,
                np.stack(faces),
                np.stack([r.probabilities for r in results]),
                image_sizes=[(width, height)] * len(faces),
                latency_ms=(time.perf_counter() - started) * 1000,
                keep_faces=self.settings.keep_faces,
            )
        )

    def close(self) -> None:
        self.log.close()
