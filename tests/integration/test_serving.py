"""A real `mlflow models serve` process answers images, pixel rows and junk (HTTP 400)."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tests.helpers import JUNK, encoded, register_in, trained_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_mlflow_models_serve_answers_images_pixels_and_junk(params, tiny_faceset, tmp_path):
    import dataclasses

    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        mlflow.set_tracking_uri(uri)
        from ferops.data.faceset import save_faceset

        save_faceset(tiny_faceset, tmp_path / "processed")
        trained_model(tiny_faceset, tmp_path / "model.keras", epochs=1)
        params = dataclasses.replace(
            params, register=dataclasses.replace(params.register, model_name="fer-serve-test")
        )
        register_in(tmp_path, params, tiny_faceset)
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")

    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    server = subprocess.Popen(
        [
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/fer-serve-test@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None, "the server exited"
                time.sleep(1)
        faces = tiny_faceset["test"].x[:4]
        served = mlflow.pyfunc.load_model("models:/fer-serve-test@champion")
        request = {"image": [encoded(faces[0]), encoded(faces[1], "JPEG", (96, 96), "RGB")]}
        status, body = post(
            port,
            {"dataframe_split": {"columns": ["image"], "data": [[v] for v in request["image"]]}},
        )
        assert status == 200 and len(body["predictions"]) == 2
        expected = served.predict(pd.DataFrame(request))
        got = pd.DataFrame(body["predictions"])
        assert got["emotion"].tolist() == expected["emotion"].tolist()
        np.testing.assert_allclose(got["p_happy"], expected["p_happy"], atol=1e-6)

        deep = io.BytesIO()  # the same face as a 16-bit PNG: decoded alike, answered alike
        Image.fromarray(faces[0].astype(np.uint16) * 257).save(deep, format="PNG")
        pair = [[request["image"][0]], [base64.b64encode(deep.getvalue()).decode()]]
        status, body = post(port, {"dataframe_split": {"columns": ["image"], "data": pair}})
        assert status == 200 and body["predictions"][0] == body["predictions"][1]

        pixels = [[" ".join(map(str, face.ravel()))] for face in faces]
        status, body = post(port, {"dataframe_split": {"columns": ["pixels"], "data": pixels}})
        assert status == 200 and len(body["predictions"]) == 4

        for case, (payload, message) in JUNK.items():
            column, values = next(iter(payload.items()))
            status, body = post(
                port, {"dataframe_split": {"columns": [column], "data": [[v] for v in values]}}
            )
            assert status == 400, case
            assert message in body["message"], case
        status, _ = post(port, {"dataframe_split": {"columns": ["pixels"], "data": pixels[:1]}})
        assert status == 200  # still serving after the junk
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
