"""Video: faces tracked across frames of a clip written by the test, a timeline, bad streams."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ferops.cli import app
from ferops.data.scenes import paste, scene
from ferops.imaging.faces import Box, FaceDetector
from ferops.inference.video import FaceTracker, run_stream
from ferops.kernel.errors import DataError
from tests.test_faces import detectable


def write_clip(path, faces: list[np.ndarray], frames: int = 24) -> None:
    """Faces drifting right across a 640x480 scene, 12 frames/s."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 12.0, (640, 480))
    for i in range(frames):
        image = scene()
        for k, face in enumerate(faces):
            paste(image, face, 40 + 4 * i + 300 * k, 120 + 60 * k)
        writer.write(image)
    writer.release()


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


@pytest.mark.slow
def test_a_clip_gives_an_annotated_video_and_a_timeline_with_stable_ids(
    tmp_path, tiny_faceset, keras_model_file
):
    from ferops.inference.runtime import load_classifier

    clip = tmp_path / "clip.mp4"
    write_clip(clip, detectable(tiny_faceset, 2))
    summary = run_stream(
        str(clip),
        FaceDetector(),
        load_classifier(keras_model_file),
        output=tmp_path / "annotated.mp4",
        timeline=tmp_path / "timeline.csv",
    )
    assert summary.frames == 24
    timeline = pd.read_csv(tmp_path / "timeline.csv")
    assert timeline["frame"].nunique() >= 20  # faces found in nearly every frame
    assert timeline.groupby("frame").size().max() <= 2
    top_two = timeline["face_id"].value_counts().iloc[:2]
    assert top_two.sum() >= 0.9 * len(timeline)  # two faces, two ids, kept across frames
    probabilities = timeline[[c for c in timeline.columns if c.startswith("p_")]]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)

    annotated = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    assert (
        int(annotated.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(annotated.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    ) == (640, 480)
    annotated.release()


def test_unreadable_missing_and_empty_streams_are_clear_errors(tmp_path, keras_model_file):
    from ferops.inference.runtime import load_classifier

    classifier = load_classifier(keras_model_file)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    with pytest.raises(DataError, match=r"broken\.mp4"):
        run_stream(str(broken), FaceDetector(), classifier, timeline=tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()  # no half-written timeline
    with pytest.raises(DataError, match="not found"):
        run_stream(str(tmp_path / "missing.mp4"), FaceDetector(), classifier)

    result = CliRunner().invoke(
        app, ["stream", "--source", str(broken), "--model", str(keras_model_file)]
    )
    assert result.exit_code == 1 and "broken.mp4" in result.output
