"""`ferops predict` on photos with several faces: every face listed, annotated, and the same
probabilities as the classifier gives directly."""

from __future__ import annotations

import json

import cv2
import numpy as np
from typer.testing import CliRunner

from benchmarks.scenes import paste, scene
from ferops.cli import app
from ferops.imaging.faces import FaceDetector, crop_face
from ferops.kernel.emotions import EMOTIONS
from tests.helpers import detectable, write_clip


def two_face_photo(tiny_faceset, folder):
    """A scene with two detectable faces, one enlarged, and where it was written."""
    a, b = detectable(tiny_faceset, 2)
    image = scene()
    paste(image, a, 40, 60, 150)
    paste(image, b, 380, 200)
    photo = folder / "two.png"
    cv2.imwrite(str(photo), image)
    return image, photo


def test_predict_lists_every_face_annotates_and_matches_the_classifier(
    tmp_path, tiny_faceset, keras_model_file
):
    from ferops.inference.runtime import load_classifier

    image, photo = two_face_photo(tiny_faceset, tmp_path)
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

    # The same boxes as the default detector, the same numbers as the classifier on its crops.
    classifier = load_classifier(keras_model_file)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    boxes = FaceDetector().detect(grey)
    assert [(r["x"], r["y"], r["w"], r["h"]) for r in records] == [
        (b.x, b.y, b.w, b.h) for b in boxes
    ]
    expected = classifier.probabilities(np.stack([crop_face(grey, box) for box in boxes]))
    got = np.array([[r[f"p_{e}"] for e in EMOTIONS] for r in records])
    np.testing.assert_allclose(got, expected, atol=1e-4)

    failed = runner.invoke(app, ["predict", str(broken), "--model", str(keras_model_file)])
    assert failed.exit_code == 1 and "broken.png: not a readable image" in failed.output

    # Two photos with one stem: two annotated copies, none overwritten.
    (tmp_path / "b").mkdir()
    same_stem = tmp_path / "b" / "two.jpg"
    cv2.imwrite(str(same_stem), image)
    again = runner.invoke(
        app, ["predict", str(photo), str(same_stem), "--model", str(keras_model_file),
              "--annotate", str(tmp_path / "again")],
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == [
        "two.2.annotated.png",
        "two.annotated.png",
    ]
    into_file = runner.invoke(
        app, ["predict", str(photo), "--model", str(keras_model_file), "--annotate", str(photo)]
    )
    assert into_file.exit_code == 1
    assert "--annotate" in into_file.output and "is a file" in into_file.output
    assert "Traceback" not in into_file.output


def test_predict_answers_every_readable_photo_and_folder_then_fails_naming_the_bad_one(
    tmp_path, tiny_faceset, keras_model_file
):
    from ferops.api import EmotionRecognizer

    (face,) = detectable(tiny_faceset, 1)
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    image = scene()
    paste(image, face, 200, 150)
    cv2.imwrite(str(good), image)
    bad.write_bytes(b"not a jpeg at all")
    folder = tmp_path / "folder"
    (folder / "nested").mkdir(parents=True)
    for path in (folder / "b.png", folder / "nested" / "a.png"):
        cv2.imwrite(str(path), image)
    (folder / "notes.txt").write_text("not an image, not a photo: skipped inside a folder")

    args = ["predict", str(bad), str(good), str(folder), "--model", str(keras_model_file)]
    result = CliRunner().invoke(app, [*args, "--json"])

    assert result.exit_code == 1, result.output
    answered = [json.loads(line)["photo"] for line in result.stdout.splitlines() if line[:1] == "{"]
    # Every readable photo answered, a folder's images recursively in sorted order.
    assert answered == [str(good), str(folder / "b.png"), str(folder / "nested" / "a.png")]
    assert f"{bad}: not a readable image" in result.output
    assert result.output.rstrip().endswith(f"1 of 4 photo(s) could not be read: {bad}")

    batch = EmotionRecognizer(keras_model_file).analyze_photos(bad, good, folder)
    assert [face["photo"] for face in batch.faces] == answered
    assert list(batch.failed) == [str(bad)] and "not a readable image" in batch.failed[str(bad)]


def test_predict_and_the_python_api_record_their_answers_when_asked(
    tmp_path, tiny_faceset, keras_model_file, monkeypatch
):
    from ferops.api import EmotionRecognizer
    from ferops.kernel.integrity import sha256_file
    from ferops.prediction_log.store import read_log

    image, photo = two_face_photo(tiny_faceset, tmp_path)
    monkeypatch.setenv("FEROPS_PREDICTION_LOG", str(tmp_path / "log"))
    args = ["predict", str(photo), "--model", str(keras_model_file), "--json"]

    unlogged = CliRunner().invoke(app, args)
    assert unlogged.exit_code == 0 and not (tmp_path / "log").exists()  # only when asked
    logged = CliRunner().invoke(app, [*args, "--log"])
    assert logged.exit_code == 0, logged.output
    assert f"recorded in {tmp_path / 'log'}" in logged.output
    EmotionRecognizer(keras_model_file, log=True).recorder.log.close()  # nothing answered yet
    recognizer = EmotionRecognizer(keras_model_file, log=True)
    recognizer.detect_emotions(photo)
    recognizer.recorder.close()

    clip = tmp_path / "clip.mp4"
    write_clip(clip, detectable(tiny_faceset, 1), frames=3)
    streamed = CliRunner().invoke(
        app, ["stream", "--source", str(clip), "--model", str(keras_model_file), "--log"]
    )
    assert streamed.exit_code == 0 and "recorded in" in streamed.output, streamed.output

    rows = read_log(tmp_path / "log")
    answered = [json.loads(line) for line in logged.stdout.splitlines() if line[:1] == "{"]
    assert rows["source"].tolist()[:4] == ["predict"] * 2 + ["api"] * 2
    assert set(rows["source"].tolist()[4:]) == {"stream"}  # a row per face and frame
    assert rows["emotion"].tolist()[:2] == [r["emotion"] for r in answered]
    assert set(rows["model_sha256"]) == {sha256_file(keras_model_file)}
    assert (rows["image_width"] == image.shape[1]).all()
