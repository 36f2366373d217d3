"""The prediction log: answers are queued, never waited for, written whole; a full queue drops
and counts; a damaged file is skipped by name; settings are strict."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ferops.kernel.errors import ConfigError, DataError
from ferops.prediction_log.records import Answerer, Answers, LogSettings
from ferops.prediction_log.statistics import face_statistics
from ferops.prediction_log.store import FolderStore, log_files, read_log
from ferops.prediction_log.writer import PredictionLog
from tests.helpers import noise_faces

SERVED = Answerer(uri="models:/fer-attention-cnn@champion", sha256="abc", source="serve")


def columns(n: int, keep_faces: bool = False) -> Answers:
    faces = noise_faces(n)
    probabilities = np.random.default_rng(n).dirichlet(np.ones(7), size=n).astype(np.float32)
    sizes = [(640, 480)] * n
    return Answers(
        SERVED, faces, probabilities, image_sizes=sizes, latency_ms=3.5, keep_faces=keep_faces
    )


def test_answers_are_written_whole_and_read_back_in_order(tmp_path):
    log = PredictionLog(FolderStore(tmp_path), flush_seconds=60)
    log.append(columns(3))
    log.append(columns(2, keep_faces=True))
    log.close()  # writes what is queued
    (written,) = log_files(tmp_path)  # one flush, one file, in a folder per day
    assert written.parent.name == time.strftime("%Y-%m-%d", time.gmtime())
    frame = read_log(tmp_path)
    assert len(frame) == 5 and frame["row"].tolist() == [0, 1, 2, 0, 1]
    assert frame["request_id"].nunique() == 2 and set(frame["model_sha256"]) == {"abc"}
    assert frame["face_png"].isna().tolist() == [True, True, True, False, False]
    assert (frame["image_width"] == 640).all() and frame["emotion"].notna().all()


def test_a_full_queue_drops_and_counts_and_never_waits(tmp_path):
    release = threading.Event()

    class Stuck(FolderStore):  # a store slower than the traffic
        def write(self, table):
            release.wait(30)
            return super().write(table)

    log = PredictionLog(Stuck(tmp_path), flush_seconds=0.01, capacity=2)
    started = time.perf_counter()
    for _ in range(20):
        log.append(columns(4))
    assert time.perf_counter() - started < 5  # appending never waited for the store
    # Kept: what the stuck flush took (at most the queue's 2) and the queue refilled (2).
    assert log.dropped >= 20 - 4
    release.set()
    log.close()
    assert len(read_log(tmp_path)) + 4 * log.dropped == 80  # every answer written or counted


def test_a_damaged_file_is_skipped_by_name(tmp_path, caplog):
    log = PredictionLog(FolderStore(tmp_path), flush_seconds=60)
    log.append(columns(2))
    log.close()
    (good,) = log_files(tmp_path)
    cut = good.with_name("000000.000000-cut-short.parquet")
    cut.write_bytes(good.read_bytes()[:100])  # a file cut short
    frame = read_log(tmp_path)
    assert len(frame) == 2
    assert f"skipping {cut}" in caplog.text
    with pytest.raises(DataError, match="no prediction log there"):
        read_log(tmp_path / "nowhere")


def test_face_statistics_see_dark_flat_and_blurred_faces():
    rng = np.random.default_rng(0)
    faces = rng.integers(60, 200, (3, 48, 48)).astype(np.uint8)
    dark = (faces[0] // 3).astype(np.uint8)
    blurred = np.full((48, 48), faces[0].mean(), np.uint8)
    stats = face_statistics(np.stack([faces[0], dark, blurred]))
    assert stats["brightness"][1] < stats["brightness"][0] / 2
    assert stats["contrast"][2] < 1 < stats["contrast"][0]
    assert stats["sharpness"][2] < 1 < stats["sharpness"][0]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"FEROPS_PREDICTION_LOG_FACES": "yes"}, "FEROPS_PREDICTION_LOG_FACES must be 1 or 0"),
        ({"FEROPS_PREDICTION_LOG_FLUSH_SECONDS": "0"}, "must be a positive number"),
        ({"FEROPS_PREDICTION_LOG": "mysql://u:pw@x/y"}, "mysql://u:[*]+@x/y: a folder or a"),
    ],
)
def test_log_settings_refuse_typos(monkeypatch, tmp_path, variables, message):
    monkeypatch.setenv("FEROPS_PREDICTION_LOG", str(tmp_path))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        LogSettings.from_environment()


def test_no_variable_no_log(monkeypatch):
    monkeypatch.delenv("FEROPS_PREDICTION_LOG", raising=False)
    assert LogSettings.from_environment() is None
