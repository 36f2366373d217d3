"""The pretrained FER2013 model that ships in the package: intact, usable, registrable."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from ferops.cli import app
from ferops.data.scenes import paste, scene
from ferops.inference.runtime import load_classifier
from ferops.models import shipped as pretrained
from tests.conftest import REPO
from tests.test_faces import detectable


def test_the_shipped_model_is_the_card_s_and_answers_with_probabilities(tiny_faceset):
    classifier = load_classifier(pretrained.verified_model_file())
    assert classifier.preprocessing.contrast == "clahe"  # from the sidecar, as trained
    faces = tiny_faceset["test"].x[:8]
    probabilities = classifier.probabilities(faces)
    assert probabilities.shape == (8, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probabilities, classifier.probabilities(faces))  # no dropout
    assert (pretrained.FOLDER / "MODEL_CARD.md").read_text().count(pretrained.SHA256) == 1


def test_it_reads_the_synthetic_faces_expressions_it_never_saw():
    """Trained on FER2013 photos only, it still calls the generator's open-mouthed faces
    surprised and finds its smiles happier than its neutral faces: a check on the whole path
    (sidecar contrast, input layout, class order) that any broken step would fail."""
    from ferops.data.synthetic import balanced_labels, generate_faces
    from ferops.kernel.emotions import EMOTIONS

    rng = np.random.default_rng(0)
    labels = balanced_labels(30, rng=rng)
    faces = generate_faces(labels, rng=rng)
    probabilities = load_classifier(pretrained.verified_model_file()).probabilities(faces)
    happy, surprise, neutral = (EMOTIONS.index(e) for e in ("happy", "surprise", "neutral"))
    said = probabilities.argmax(axis=1)
    assert np.mean(said[labels == surprise] == surprise) > 0.8  # chance: 1/7
    smiles, calm = probabilities[labels == happy], probabilities[labels == neutral]
    assert smiles[:, happy].mean() > 2 * calm[:, happy].mean()


@pytest.mark.slow
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

    imported = runner.invoke(app, ["registry", "import-pretrained", "--root", str(tmp_path)])
    assert imported.exit_code == 0, imported.output
    version = MlflowClient().get_model_version_by_alias(pretrained.MODEL_NAME, "champion")
    assert str(version.version) == "1" and "Model card" in version.description
    registered = predict("--model", f"models:/{pretrained.MODEL_NAME}@champion")
    assert registered[0]["emotion"] == fallback[0]["emotion"]
    assert abs(registered[0]["confidence"] - fallback[0]["confidence"]) < 1e-3  # ONNX vs Keras

    # The served pyfunc, given the face `predict` cut out, says the same.
    import mlflow
    import pandas as pd

    from ferops.imaging.faces import Box, crop_face

    record = registered[0]
    box = Box(record["x"], record["y"], record["w"], record["h"])
    face = crop_face(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), box)
    served = mlflow.pyfunc.load_model(f"models:/{pretrained.MODEL_NAME}@champion")
    answer = served.predict(pd.DataFrame({"pixels": [" ".join(map(str, face.ravel()))]}))
    assert answer["emotion"][0] == record["emotion"]
    assert abs(answer["p_happy"][0] - record["p_happy"]) < 1e-3
