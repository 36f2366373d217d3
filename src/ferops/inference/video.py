"""Emotions over time in a video file or camera: track each face, smooth its emotion, and
write an annotated video and a per-frame, per-face timeline."""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from ferops.imaging.faces import Box, FaceDetector, to_grey
from ferops.inference.photos import FaceResult, classify_boxes, draw
from ferops.inference.runtime import FaceClassifier
from ferops.kernel.emotions import EMOTIONS
from ferops.kernel.errors import DataError
from ferops.kernel.files import atomic_path

log = logging.getLogger(__name__)

TIMELINE_COLUMNS = [
    "frame", "time_s", "face_id", "x", "y", "w", "h", "emotion", "confidence",
    *(f"p_{e}" for e in EMOTIONS),
]  # fmt: skip


@dataclass
class Track:
    face_id: int
    box: Box
    probabilities: np.ndarray
    last_frame: int


@dataclass
class FaceTracker:
    """Same face across frames by box overlap; each face's probabilities smoothed by an
    exponential moving average, so a blink does not flip the emotion."""

    smoothing: float = 0.6  # weight of the past; 0 = no smoothing
    min_iou: float = 0.3
    max_missing: int = 15  # frames a face may vanish (a turn of the head) and keep its id
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def update(self, frame: int, results: list[FaceResult]) -> list[tuple[int, FaceResult]]:
        """(face id, smoothed result) for each detection in this frame."""
        pairs = sorted(
            (
                (result.box.iou(track.box), r, t)
                for r, result in enumerate(results)
                for t, track in enumerate(self.tracks)
            ),
            reverse=True,
        )
        matched: dict[int, Track] = {}
        used: set[int] = set()
        for overlap, r, t in pairs:
            if overlap < self.min_iou:
                break
            if r in matched or t in used:
                continue
            matched[r] = self.tracks[t]
            used.add(t)
        out = []
        for r, result in enumerate(results):
            track = matched.get(r)
            if track is None:
                track = Track(self.next_id, result.box, result.probabilities, frame)
                self.next_id += 1
                self.tracks.append(track)
            else:
                a = self.smoothing
                track.probabilities = a * track.probabilities + (1 - a) * result.probabilities
                track.box, track.last_frame = result.box, frame
            out.append((track.face_id, FaceResult(result.box, track.probabilities)))
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_missing]
        return out


@dataclass
class FaceFinder:
    """Where the faces are, frame after frame: the detector over the whole frame every
    `redetect` frames, and in between each face of the frame before looked for near where it
    was (FaceDetector.near: one BlazeFace pass a face, about a seventh of a whole frame's).
    A face that leaves is dropped at once; a new one is found within `redetect` frames."""

    detector: FaceDetector
    redetect: int = 5
    boxes: list[Box] = field(default_factory=list)

    def find(self, index: int, grey: np.ndarray) -> list[Box]:
        if index % self.redetect == 0:
            self.boxes = self.detector.detect(grey)
        else:
            moved = (self.detector.near(grey, box) for box in self.boxes)
            self.boxes = sorted((b for b in moved if b), key=lambda b: -b.w * b.h)
        return self.boxes


Progress = Callable[[int, int | None, float], None]  # frames done, total or None, frames/s
Record = Callable[[np.ndarray, list[FaceResult], float], None]  # frame, answers, read at


@dataclass
class StreamSummary:
    frames: int
    faces: int
    face_ids: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def open_source(source: str) -> cv2.VideoCapture:
    """A video file path, or a camera index such as 0."""
    if source.isdigit():
        capture = cv2.VideoCapture(int(source))
    else:
        if not Path(source).is_file():
            raise DataError(f"{source}: video file not found")
        capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise DataError(f"{source}: cannot open as a video file or camera")
    return capture


class Timeline:
    """The per-frame, per-face CSV: frame, time, face id, box, emotion, probabilities, and
    the model that answered."""

    def __init__(self, handle: TextIO, fps: float, model: str) -> None:
        self.rows = csv.writer(handle)
        self.rows.writerow([*TIMELINE_COLUMNS, "model"])
        self.fps, self.model = fps, model

    def add(self, index: int, frame: np.ndarray, tracked: list[tuple[int, FaceResult]]) -> None:
        for face_id, result in tracked:
            record = result.record()
            self.rows.writerow(
                [index, round(index / self.fps, 3), face_id]
                + [record[c] for c in TIMELINE_COLUMNS[3:]]
                + [self.model]
            )


class AnnotatedVideo:
    """Each frame with its faces boxed and labelled (#id emotion confidence) and the speed."""

    def __init__(self, path: Path, fps: float, stack: ExitStack) -> None:
        self.path, self.fps, self.stack = path, fps, stack
        self.writer: cv2.VideoWriter | None = None
        self.speed = 0.0
        self.last = time.perf_counter()

    def add(self, index: int, frame: np.ndarray, tracked: list[tuple[int, FaceResult]]) -> None:
        if self.writer is None:  # the frame size is known only now
            height, width = frame.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
            self.stack.callback(self.writer.release)
        labels = [f"#{i} {r.emotion} {r.confidence:.2f}" for i, r in tracked]
        draw(frame, [r for _, r in tracked], labels)
        now = time.perf_counter()
        rate = 1 / max(now - self.last, 1e-6)
        self.last = now
        self.speed = 0.9 * self.speed + 0.1 * rate if index else rate  # smoothed frames/s
        cv2.putText(
            frame, f"{self.speed:.0f} fps", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
            (0, 255, 0), 2, cv2.LINE_AA,
        )  # fmt: skip
        self.writer.write(frame)


def run_stream(
    source: str,
    detector: FaceDetector,
    classifier: FaceClassifier,
    *,
    output: Path | None = None,
    timeline: Path | None = None,
    max_frames: int | None = None,
    smoothing: float = 0.6,
    redetect: int = 5,
    progress: Progress | None = None,
    record: Record | None = None,
) -> StreamSummary:
    """Process frames until the stream ends (or Ctrl-C); outputs are complete files either way
    (each is staged and moved into place when the stream closes). `progress` hears about each
    frame: done, total (None for a camera) and frames/s so far; `record` gets each frame's
    answers before smoothing (the prediction log, with --log). The detector runs over the
    whole frame every `redetect` frames and follows the faces it found in between (FaceFinder;
    1: the whole frame every frame).

    A stream that opens but yields no frame at all is an error (unreadable or empty file).
    """
    capture = open_source(source)
    tracker = FaceTracker(smoothing=smoothing)
    finder = FaceFinder(detector, max(1, redetect))
    fps_in = capture.get(cv2.CAP_PROP_FPS) or 30.0
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    total = min(count, max_frames or count) if count > 0 else max_frames
    frames = faces = 0
    started = time.perf_counter()
    with ExitStack() as stack:
        stack.callback(capture.release)
        sinks: list[Timeline | AnnotatedVideo] = []
        if timeline is not None:
            staged = stack.enter_context(atomic_path(timeline))
            handle = stack.enter_context(staged.open("w", newline=""))
            sinks.append(Timeline(handle, fps_in, classifier.model))
        if output is not None:
            sinks.append(AnnotatedVideo(stack.enter_context(atomic_path(output)), fps_in, stack))
        try:
            while max_frames is None or frames < max_frames:
                read_at = time.perf_counter()
                ok, frame = capture.read()
                if not ok:
                    break
                grey = to_grey(frame)
                results = classify_boxes(grey, finder.find(frames, grey), classifier)
                if record is not None:
                    record(frame, results, read_at)
                tracked = tracker.update(frames, results)
                for sink in sinks:
                    sink.add(frames, frame, tracked)
                frames += 1
                faces += len(tracked)
                if progress is not None:
                    progress(frames, total, frames / (time.perf_counter() - started))
        except KeyboardInterrupt:
            log.info("stopped after %d frames", frames)
        if frames == 0:
            raise DataError(f"{source}: no frame could be read (empty or unreadable video)")
    return StreamSummary(frames, faces, tracker.next_id - 1, time.perf_counter() - started)
