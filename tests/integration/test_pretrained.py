"""The shipped model through the registry: `predict` falls back to it, `import-pretrained`
registers it and the registered pyfunc answers."""

from __future__ import annotations

import json
import shutil
import sys

import cv2
from typer.testing import CliRunner

from benchmarks.scenes import paste, scene
from ferops.cli import app
from ferops.models.shipped import REGISTERED_NAME
from tests.helpers import REPO, detectable, ferops_in_a_fresh_interpreter, run


def test_predict_falls_back_to_it_and_import_registers_it(tmp_path, tiny_faceset, monkeypatch):
    from mlflow import MlflowClient

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    image = scene()
    paste(image, detectable(tiny_faceset, 1)[0], 200, 150, 150)
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), image)
    runner = CliRunner()

    def predict(*extra: str) -> list[dict]:
        result = runner.invoke(
            app, ["predict", str(photo), "--json", "--root", str(tmp_path), *extra]
        )
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    fallback = predict()  # an empty registry: the shipped model answers
    assert len(fallback) == 1

    # A fresh process, as a user runs it: the shipped model's checked ONNX export is
    # registered as it is, so TensorFlow never loads.
    imported = ferops_in_a_fresh_interpreter(
        ["registry", "import-pretrained", "--root", str(tmp_path)], tmp_path
    )
    assert imported["code"] == 0, imported["output"]
    assert "tensorflow" not in imported["heavy"] and "keras" not in imported["heavy"]
    version = MlflowClient().get_model_version_by_alias(REGISTERED_NAME, "champion")
    assert str(version.version) == "1" and "Model card" in version.description
    registered = predict("--model", f"models:/{REGISTERED_NAME}@champion")
    assert registered[0]["emotion"] == fallback[0]["emotion"]
    assert abs(registered[0]["confidence"] - fallback[0]["confidence"]) < 1e-3  # ONNX vs Keras

    # The served pyfunc, given the face `predict` cut out, says the same.
    import mlflow
    import pandas as pd

    from ferops.imaging.faces import FaceDetector, crop_face

    record = registered[0]
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    box = FaceDetector().detect(grey)[0]
    assert (box.x, box.y, box.w, box.h) == (record["x"], record["y"], record["w"], record["h"])
    face = crop_face(grey, box)
    served = mlflow.pyfunc.load_model(f"models:/{REGISTERED_NAME}@champion")
    answer = served.predict(pd.DataFrame({"pixels": [" ".join(map(str, face.ravel()))]}))
    assert answer["emotion"][0] == record["emotion"]
    assert abs(answer["p_happy"][0] - record["p_happy"]) < 1e-3


def test_import_pretrained_and_the_python_api_keep_library_chatter_off_the_terminal(
    tmp_path, tiny_faceset
):
    """No TensorFlow start-up lines, MLflow notes or download bars: only ferops' own lines
    (as the stages); a fresh process each, as a user runs them."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    imported = run(["ferops", "registry", "import-pretrained"], tmp_path, env=env)
    assert "registered fer2013-pretrained version 1" in imported.stdout
    assert [line for line in imported.stderr.splitlines() if " INFO ferops." not in line] == []

    image = scene()
    paste(image, detectable(tiny_faceset, 1)[0], 200, 150, 150)
    cv2.imwrite(str(tmp_path / "face.png"), image)
    code = (
        "from ferops import EmotionRecognizer\n"
        "recognizer = EmotionRecognizer()\n"  # the shipped Keras model: TensorFlow loads
        "print(len(recognizer.detect_emotions('face.png')))\n"
    )
    api = run([sys.executable, "-c", code], tmp_path, env=env)
    assert api.stdout.strip() == "1" and api.stderr == ""
