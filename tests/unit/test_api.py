"""The Python API (ferops.api) does what the commands do."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferops.api import classifier, emotions_in_photo, run_stage
from ferops.data.faceset import load_faceset
from ferops.kernel.emotions import EMOTIONS
from ferops.kernel.errors import DataError
from tests.helpers import tiny_onnx_classifier, tiny_params_file


def test_run_stage_runs_a_stage_on_the_project_s_params(tmp_path):
    tiny_params_file(tmp_path, **{"data.synthetic.test_per_class": 2})
    report = run_stage("ingest", root=tmp_path)
    assert report["counts"]["train"]["total"] == 84
    assert len(load_faceset(tmp_path / "data" / "interim")["test"]) == 14
    with pytest.raises(KeyError, match="unknown stage 'trian'"):
        run_stage("trian", root=tmp_path)


def test_a_photo_s_emotions_come_from_the_model_file_asked_for(tmp_path, monkeypatch):
    """A model file needs no project: no params.yaml here or above, as EmotionRecognizer."""
    monkeypatch.chdir(tmp_path)
    tiny_onnx_classifier(tmp_path / "tiny.onnx")
    model = classifier(tmp_path / "tiny.onnx")
    assert model.runtime == "onnx" and model.model == str(tmp_path / "tiny.onnx")
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), np.full((60, 80, 3), 90, np.uint8))
    (face,) = emotions_in_photo(photo, model, whole=True)
    assert (face.box.w, face.box.h) == (80, 60)
    assert face.probabilities.shape == (7,) and abs(face.probabilities.sum() - 1) < 1e-5
    with pytest.raises(DataError, match="model file not found"):
        classifier(tmp_path / "missing.onnx")


def test_emotion_recognizer_reads_paths_arrays_and_pil_images_and_videos(tmp_path, tiny_faceset):
    """The README's quick start: one record per face from any image form, alike for all
    three; a video gives a DataFrame timeline that names the model."""
    from PIL import Image

    from benchmarks.scenes import paste, scene
    from ferops import EmotionRecognizer
    from tests.helpers import detectable, write_clip

    tiny_onnx_classifier(tmp_path / "tiny.onnx")
    recognizer = EmotionRecognizer(tmp_path / "tiny.onnx")  # a file: no project needed
    assert recognizer.model == str(tmp_path / "tiny.onnx") and recognizer.note == ""
    image = scene()
    paste(image, detectable(tiny_faceset, 1)[0], 200, 150)
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    rgb = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))

    answers = [recognizer.detect_emotions(form) for form in (tmp_path / "photo.png", image, rgb)]
    assert answers[0] == answers[1] == answers[2] and len(answers[0]) == 1
    (face,) = answers[0]
    assert set(face) == {"box", "emotions", "emotion", "confidence"}
    assert list(face["emotions"]) == list(EMOTIONS)
    assert face["emotion"] == max(face["emotions"], key=face["emotions"].get)
    assert abs(sum(face["emotions"].values()) - 1) < 1e-5 and len(face["box"]) == 4
    with pytest.raises(DataError, match="uint8 numpy image"):
        recognizer.detect_emotions(np.zeros((10, 10), np.float32))

    write_clip(tmp_path / "clip.mp4", detectable(tiny_faceset, 1), frames=12)
    timeline = recognizer.analyze_video(tmp_path / "clip.mp4")
    assert timeline["frame"].nunique() >= 10 and timeline["face_id"].nunique() == 1
    assert set(timeline["model"]) == {recognizer.model}
