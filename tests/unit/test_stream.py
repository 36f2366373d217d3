"""Video: the face tracker keeps ids and smooths; bad streams are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from ferops.cli import app
from ferops.imaging.faces import Box, FaceDetector
from ferops.inference.video import FaceTracker, run_stream
from ferops.kernel.errors import DataError
from tests.helpers import tiny_onnx_classifier


def test_the_tracker_keeps_ids_and_smooths():
    from ferops.inference.photos import FaceResult

    tracker = FaceTracker(smoothing=0.5)
    happy, sad = np.eye(7)[3], np.eye(7)[4]
    first = tracker.update(
        0, [FaceResult(Box(0, 0, 50, 50), happy), FaceResult(Box(300, 0, 50, 50), sad)]
    )
    moved = tracker.update(
        1, [FaceResult(Box(305, 2, 50, 50), happy), FaceResult(Box(4, 0, 50, 50), sad)]
    )
    assert [i for i, _ in first] == [1, 2]
    assert [i for i, _ in moved] == [2, 1]  # matched by overlap, not by order
    np.testing.assert_allclose(moved[1][1].probabilities, 0.5 * happy + 0.5 * sad)
    for frame in range(2, 30):
        tracker.update(frame, [])
    assert tracker.tracks == []  # gone faces are forgotten
    assert [i for i, _ in tracker.update(30, [FaceResult(Box(0, 0, 50, 50), happy)])] == [3]


def test_faces_are_followed_between_whole_frame_searches_and_new_ones_found_at_the_next(
    tiny_faceset,
):
    """Between searches each face is looked for near where it was: a face moving 4 px a frame
    is found in every frame, one that appears at frame 7 is found from frame 10 (the next
    search), and one that leaves is dropped at once."""
    import cv2

    from benchmarks.scenes import paste, scene
    from ferops.inference.video import FaceFinder
    from tests.helpers import detectable

    def found(truth: Box, boxes: list[Box]) -> bool:  # a box centred in the pasted square
        return any(
            truth.x < b.x + b.w / 2 < truth.x + truth.w
            and truth.y < b.y + b.h / 2 < truth.y + truth.h
            for b in boxes
        )

    mover, newcomer = detectable(tiny_faceset, 2)
    finder = FaceFinder(FaceDetector(), redetect=5)
    for frame in range(15):
        image = scene(seed=1)
        truth = paste(image, mover, 60 + 4 * frame, 80 + 2 * frame, 140)
        late = paste(image, newcomer, 400, 200, 140) if frame >= 7 else None
        boxes = finder.find(frame, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        assert found(truth, boxes), frame
        if late is not None:
            assert found(late, boxes) == (frame >= 10), frame
        assert len(boxes) == 1 + (frame >= 10)
    empty = cv2.cvtColor(scene(seed=1), cv2.COLOR_BGR2GRAY)
    assert finder.find(16, empty) == []  # both left: nothing followed into an empty frame


def test_unreadable_missing_and_empty_streams_are_clear_errors(tmp_path):
    from ferops.inference.runtime import load_classifier

    model = tmp_path / "model.onnx"
    tiny_onnx_classifier(model)  # the errors come before any face is classified
    classifier = load_classifier(model)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    with pytest.raises(DataError, match=r"broken\.mp4"):
        run_stream(str(broken), FaceDetector(), classifier, timeline=tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()  # no half-written timeline
    with pytest.raises(DataError, match="not found"):
        run_stream(str(tmp_path / "missing.mp4"), FaceDetector(), classifier)

    result = CliRunner().invoke(app, ["stream", "--source", str(broken), "--model", str(model)])
    assert result.exit_code == 1 and "broken.mp4" in result.output
