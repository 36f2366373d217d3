"""Faces in photos: detection of synthetic faces pasted onto larger scenes, crops, `predict`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from ferops.cli import app
from ferops.data.scenes import paste, scene
from ferops.imaging.faces import Box, FaceDetector, crop_face
from ferops.kernel.emotions import EMOTIONS
from ferops.kernel.errors import DataError


def found(truth: Box, boxes: list[Box]) -> bool:
    return any(truth.iou(box) > 0.3 for box in boxes)


def test_the_shipped_cascade_finds_most_pasted_faces_and_nothing_in_an_empty_scene(tiny_faceset):
    detector = FaceDetector()
    faces = tiny_faceset["test"].x
    hits = 0
    for i, face in enumerate(faces):
        image = scene(seed=i)
        truth = paste(image, face, 80 + 13 * i, 60 + 7 * i)
        hits += found(truth, detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)))
    # Haar cascades were trained on photographs; the cartoon faces are a harder test.
    assert hits / len(faces) >= 0.6, f"{hits}/{len(faces)}"
    for seed in range(5):
        assert detector.detect(cv2.cvtColor(scene(seed=seed), cv2.COLOR_BGR2GRAY)) == []


def detectable(tiny_faceset, count: int) -> list[np.ndarray]:
    """The first `count` test faces the cascade finds when pasted alone."""
    detector = FaceDetector()
    chosen = []
    for face in tiny_faceset["test"].x:
        image = scene()
        truth = paste(image, face, 200, 150)
        if found(truth, detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))):
            chosen.append(face)
        if len(chosen) == count:
            return chosen
    raise AssertionError("too few detectable faces")


def test_several_faces_in_one_photo_are_found_largest_first(tiny_faceset):
    a, b, c = detectable(tiny_faceset, 3)
    image = scene()
    truths = [
        paste(image, a, 30, 40, 150),
        paste(image, b, 260, 200, 120),
        paste(image, c, 470, 60),
    ]
    boxes = FaceDetector().detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert all(found(t, boxes) for t in truths)
    assert boxes[0].iou(truths[0]) > 0.3  # the largest face comes first
    shrunk = FaceDetector(detect_width=320).detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert all(found(t, shrunk) for t in truths)  # found on a half-size copy, boxes mapped back


def test_a_crop_is_48x48_and_clipped_at_the_edges():
    grey = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120).astype(np.uint8)
    assert crop_face(grey, Box(40, 30, 40, 40)).shape == (48, 48)
    assert crop_face(grey, Box(-10, -10, 30, 30)).shape == (48, 48)
    assert crop_face(grey, Box(100, 80, 40, 40)).shape == (48, 48)


def test_a_bad_detector_file_is_named(tmp_path):
    junk = tmp_path / "detector.xml"
    junk.write_text("<opencv_storage>nothing</opencv_storage>")
    with pytest.raises(DataError, match=r"detector\.xml"):
        FaceDetector(junk)
    with pytest.raises(DataError, match="not found"):
        FaceDetector(tmp_path / "missing.onnx")


@pytest.mark.slow
def test_predict_lists_every_face_annotates_and_matches_the_classifier(
    tmp_path, tiny_faceset, keras_model_file
):
    from ferops.inference.runtime import load_classifier

    a, b = detectable(tiny_faceset, 2)
    image = scene()
    paste(image, a, 40, 60, 150)
    paste(image, b, 380, 200)
    photo = tmp_path / "two.png"
    cv2.imwrite(str(photo), image)
    empty = tmp_path / "empty.jpg"
    cv2.imwrite(str(empty), scene(seed=3))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")

    runner = CliRunner()
    args = ["predict", str(photo), str(empty), "--model", str(keras_model_file), "--json"]
    result = runner.invoke(app, [*args, "--annotate", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["photo"] for r in records] == [str(photo)] * 2
    assert "empty.jpg: no face found" in result.output  # said, not an error
    assert all(abs(sum(r[f"p_{e}"] for e in EMOTIONS) - 1) < 1e-3 for r in records)
    assert (tmp_path / "out" / "two.annotated.png").is_file()
    assert not (tmp_path / "out" / "empty.annotated.png").exists()

    # The same numbers as the classifier on the same crops.
    classifier = load_classifier(keras_model_file)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    boxes = [Box(r["x"], r["y"], r["w"], r["h"]) for r in records]
    expected = classifier.probabilities(np.stack([crop_face(grey, box) for box in boxes]))
    got = np.array([[r[f"p_{e}"] for e in EMOTIONS] for r in records])
    np.testing.assert_allclose(got, expected, atol=1e-4)

    failed = runner.invoke(app, ["predict", str(broken), "--model", str(keras_model_file)])
    assert failed.exit_code == 1 and "broken.png: not a readable image" in failed.output
