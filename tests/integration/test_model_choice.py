"""Which model answers photos: the champion when it learned from real faces; the shipped FER2013
model when there is no project, or the champion learned from synthetic faces (unless named);
and every answer says which model gave it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import cv2
import mlflow
import pytest
from typer.testing import CliRunner

from benchmarks.scenes import paste, scene
from ferops import EmotionRecognizer
from ferops.cli import app
from ferops.kernel.config import load_params
from tests.helpers import (
    REPO,
    detectable,
    register_in,
    run,
    tiny_params_file,
    trained_project,
)

CHAMPION = "models:/fer-attention-cnn@champion"


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_faceset):
    """A project whose champion learned from synthetic faces, and a photo with a face."""
    root = tmp_path_factory.mktemp("choice") / "project"
    tiny_params_file(root)
    trained_project(root, tiny_faceset, epochs=1)
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        register_in(root, load_params(root / "params.yaml"), tiny_faceset, trained_on="synthetic")
    (root / "sub" / "folder").mkdir(parents=True)
    image = scene()
    paste(image, detectable(tiny_faceset, 1)[0], 200, 150)
    cv2.imwrite(str(root / "photo.png"), image)
    return root


def predict(folder, *args: str):
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.chdir(folder)
        return CliRunner().invoke(app, ["predict", *args, "--json"])


def models_in(result) -> set[str]:
    return {json.loads(line)["model"] for line in result.stdout.splitlines() if line[:1] == "{"}


def test_a_synthetic_champion_does_not_answer_photos_unless_named(project):
    photo = str(project / "photo.png")
    default = predict(project / "sub" / "folder", photo)  # the project is found upwards
    assert default.exit_code == 0, default.output
    assert "because the champion models:/fer-attention-cnn/1" in default.output
    assert "learned from synthetic faces" in default.output
    assert "model: the shipped FER2013 model" in default.output
    assert {m.split(" (")[0] for m in models_in(default)} == {"the shipped FER2013 model"}

    named = predict(project / "sub", photo, "--model", CHAMPION)
    assert named.exit_code == 0, named.output
    (model,) = models_in(named)
    assert model.startswith("models:/fer-attention-cnn/1 (@champion) (trained on synthetic")
    assert "test accuracy" in model


def test_outside_a_project_the_shipped_model_answers_and_a_bad_root_is_named(project, tmp_path):
    outside = predict(tmp_path, str(project / "photo.png"))
    assert outside.exit_code == 0, outside.output
    assert "model: the shipped FER2013 model" in outside.output
    assert "trained on FER2013, test accuracy 0.668" in outside.output

    wrong = predict(tmp_path, str(project / "photo.png"), "--root", str(tmp_path / "nowhere"))
    assert wrong.exit_code == 1
    assert "--root" in wrong.output and "no params.yaml there" in wrong.output


def test_the_python_api_follows_the_same_rule(project, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(project / "sub")
    assert EmotionRecognizer().model.startswith("the shipped FER2013 model")
    chosen = EmotionRecognizer(CHAMPION)
    assert chosen.model.startswith("models:/fer-attention-cnn/1 (@champion)")
    (face,) = chosen.detect_emotions(project / "photo.png")
    assert face["emotion"] in face["emotions"]


def test_the_shipped_models_are_asked_for_by_name_from_anywhere(project, tmp_path):
    fast = predict(tmp_path, str(project / "photo.png"), "--model", "fast")
    assert fast.exit_code == 0, fast.output
    (model,) = models_in(fast)
    assert model.startswith("the shipped fast FER2013 model (fer2013_fast_cnn_int8.onnx)")
    assert "because" not in fast.output  # asked for, not a fallback
    assert "onnx runtime" in fast.output

    accurate = predict(project, str(project / "photo.png"), "--model", "shipped")
    assert accurate.exit_code == 0, accurate.output
    assert {m.split(" (")[0] for m in models_in(accurate)} == {"the shipped FER2013 model"}
    assert EmotionRecognizer("fast").model == model


def test_a_missing_alias_is_named_with_the_aliases_and_versions_there_are(project):
    missing = predict(project, str(project / "photo.png"), "--model", f"{CHAMPION[:-8]}production")
    assert missing.exit_code == 1
    assert (
        "error: models:/fer-attention-cnn@production: model 'fer-attention-cnn' has no alias "
        "'production'; its aliases: @champion → version 1; latest versions: 1"
    ) in missing.output
    assert "Traceback" not in missing.output and "make repro" not in missing.output
    unknown = predict(project, str(project / "photo.png"), "--model", "models:/fer-atention-cnn/1")
    assert "no model named 'fer-atention-cnn'; it holds fer-attention-cnn" in unknown.output


def test_make_serve_checks_the_model_first_then_warns_once_about_a_synthetic_one(project):
    """`make serve` names a missing alias in one line instead of MLflow's traceback; serving
    a champion that learned from synthetic faces, it says so in one line at start-up."""
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    missing = run(["make", "-s", "serve", f"MODEL={CHAMPION[:-8]}production"], REPO, False, env)
    assert missing.returncode != 0
    errors = [line for line in missing.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 2 and "has no alias 'production'" in errors[0], missing.stderr
    assert errors[1].startswith("make") and "***" in errors[1]  # make's own line, no more
    assert "Traceback" not in missing.stderr

    port = free_port()
    log = project / "serve.log"
    server = subprocess.Popen(
        ["make", "-s", "serve", f"PORT={port}"],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while "Uvicorn running" not in log.read_text() and time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()
            time.sleep(1)
        said = log.read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert said.startswith(
        "models:/fer-attention-cnn/1 (@champion): trained on synthetic faces, test accuracy"
    ), said
    warnings = [line for line in said.splitlines() if "synthetic faces" in line][1:]
    assert len(warnings) == 1 and "fer2013-pretrained@champion" in warnings[0], said


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
