"""A real `mlflow models serve` process, serving a project that was moved after it registered
its model, answers images, pixel rows and junk (HTTP 400), holds a request to its limits, and
loads the model as code (pickle deserialisation switched off)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ferops.data.scenes import paste, scene
from ferops.kernel.integrity import sha256_file
from ferops.kernel.layout import Layout
from ferops.prediction_log.store import read_log
from ferops.registry.pyfunc import RequestLimits
from tests.helpers import (
    JUNK,
    detectable,
    encoded,
    free_port,
    register_in,
    trained_project,
    wait_until_serving,
)


def post(port: int, payload: dict, content_type: str | None = "application/json"):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": content_type} if content_type else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"message": text.decode(errors="replace")}


def announce(port: int, length: int) -> tuple[int, dict]:
    """POST headers announcing a body of `length` bytes, and read the answer before sending it."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.putrequest("POST", "/invocations")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(length))
    connection.endheaders()
    response = connection.getresponse()
    try:
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def jpeg(image: np.ndarray) -> str:
    import cv2

    return base64.b64encode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]).decode()


def frame(column: str, values: list) -> dict:
    return {"dataframe_split": {"columns": [column], "data": [[v] for v in values]}}


def test_mlflow_models_serve_answers_images_pixels_and_junk(params, tiny_faceset, tmp_path):
    import dataclasses

    import mlflow
    from typer.testing import CliRunner

    from ferops.cli import app
    from ferops.kernel.layout import tracking_uri
    from ferops.kernel.local_store import StoreMoved

    first = tmp_path / "first"
    first.mkdir()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{first / 'mlflow.db'}"
    try:
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        trained_project(first, tiny_faceset, epochs=1)
        params = dataclasses.replace(
            params, register=dataclasses.replace(params.register, model_name="fer-serve-test")
        )
        register_in(first, params, tiny_faceset)
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")

    project = tmp_path / "moved"  # the whole project folder moves; nothing is left behind
    first.rename(project)
    with pytest.raises(StoreMoved, match="ferops relocate"):
        tracking_uri(project)
    relocated = CliRunner().invoke(app, ["relocate", "--root", str(project)])
    assert relocated.exit_code == 0 and "moved from" in relocated.output, relocated.output
    uri = tracking_uri(project)
    assert not list(tmp_path.glob("first"))

    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",  # the model is code, not a pickle
        "FEROPS_MAX_REQUEST_BYTES": "40000",
        "FEROPS_MAX_REQUEST_PIXELS": "1000000",
        "FEROPS_PREDICTION_LOG": str(tmp_path / "predictions"),
        "FEROPS_PREDICTION_LOG_FLUSH_SECONDS": "0.5",
        "FEROPS_SERVED_MODEL": "models:/fer-serve-test@champion",
    }
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
        stderr=(tmp_path / "server.log").open("w"),
        start_new_session=True,
    )
    try:
        wait_until_serving(port, server, tmp_path / "server.log")
        # The model learned from synthetic faces: the server says so once, at start-up.
        log = (tmp_path / "server.log").read_text()
        assert log.count("learned from synthetic faces") == 1, log
        assert "prediction log off" not in log
        faces = tiny_faceset["test"].x[:4]
        mlflow.set_tracking_uri(uri)
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

        # Whole photos: every face found, largest first; a photo without one is an empty list.
        a, b = detectable(tiny_faceset, 2)
        photo = scene(320, 240)
        paste(photo, a, 20, 40, 110)
        paste(photo, b, 190, 100, 80)
        whole = [jpeg(photo), jpeg(scene(320, 240, seed=1))]
        found = []
        for image in whole:  # one a request: the server's byte limit here is small
            status, body = post(port, {**frame("image", [image]), "params": {"faces": "detect"}})
            assert status == 200, body
            found.append(body["predictions"][0]["faces"])
        assert len(found[0]) == 2 and found[0][0]["w"] > found[0][1]["w"] and found[1] == []
        assert {"x", "y", "w", "h", "emotion", "confidence", "p_happy"} <= set(found[0][0])
        expected = served.predict(pd.DataFrame({"image": whole[:1]}), params={"faces": "detect"})
        assert [f["emotion"] for f in found[0]] == [f["emotion"] for f in expected["faces"][0]]
        status, body = post(port, {**frame("image", whole[:1]), "params": {"faces": "all"}})
        assert status == 400 and "faces must be one of one, detect" in body["message"]

        # A 200 MB body is refused from its Content-Length alone: no byte of it is sent.
        status, body = announce(port, 200_000_000)
        assert status == 413 and "FEROPS_MAX_REQUEST_BYTES" in body["message"]

        body_limit = RequestLimits(max_bytes=int(env["FEROPS_MAX_REQUEST_BYTES"])).max_body
        for case, (payload, message) in JUNK.items():
            column, values = next(iter(payload.items()))
            request = {"dataframe_split": {"columns": [column], "data": [[v] for v in values]}}
            size = len(json.dumps(request))
            if size > body_limit:  # over this server's small limit: refused unread
                status, body = announce(port, size)
                assert status == 413, case
                continue
            status, body = post(port, request)
            assert status == 400, case
            assert message in body["message"], case

        noise = np.random.default_rng(0).integers(0, 256, (120, 120), dtype=np.uint8)
        status, body = post(port, frame("image", [encoded(noise)] * 3))  # ~3 x 14 KB
        assert status == 400 and "FEROPS_MAX_REQUEST_BYTES" in body["message"]
        flat = encoded(np.full((1000, 600), 128, np.uint8))  # small file, 0.6 megapixels
        status, body = post(port, frame("image", [flat, flat]))
        assert status == 400 and "row 1" in body["message"]
        assert "FEROPS_MAX_REQUEST_PIXELS" in body["message"]

        # MLflow's scoring server (not ferops) answers a request without Content-Type; it
        # refuses it (a 500 from MLflow 3.17, see docs/inference.md, "Serving") and keeps serving.
        status, _ = post(port, frame("pixels", pixels[0]), content_type=None)
        assert status >= 400
        status, _ = post(port, frame("pixels", pixels[0]))
        assert status == 200  # still serving after the junk
        time.sleep(2)  # more than the flush interval: every answer is on disk
    finally:
        os.killpg(server.pid, 9)  # killed, not stopped: the log must still read
        server.wait(timeout=30)

    # Every answer, and nothing refused, is in the prediction log, with the served model.
    logged = read_log(tmp_path / "predictions")
    assert len(logged) == 2 + 2 + 4 + 2 + 1 and logged["request_id"].nunique() == 5
    assert set(logged["model_uri"]) == {"models:/fer-serve-test@champion"}
    assert set(logged["model_sha256"]) == {sha256_file(Layout(project).model)}
    assert logged["image_width"].tolist()[:4] == [48, 96, 48, 48]
    assert "face_png" not in logged  # faces only when the operator opts in
    assert (logged["latency_ms"] > 0).all() and logged["emotion"].notna().all()
