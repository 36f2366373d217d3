"""Video: a clip written by the test gives an annotated video and a timeline with stable ids."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from ferops.imaging.faces import FaceDetector
from ferops.inference.video import run_stream
from tests.helpers import detectable, write_clip


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
