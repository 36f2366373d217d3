"""A real `mlflow models serve` process, serving a project that was moved after it registered
its model, answers images, pixel rows and whole photos, refuses junk (HTTP 400) and oversized
requests, logs every answer, and loads the model as code (pickle deserialisation switched off).

One server for the module (starting it is the expensive part); each test sends its own
requests, and the server counts what it answered, so the prediction-log test needs no other
test to have run."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks.scenes import paste, scene
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


MODEL = "fer-serve-test"
SERVED = f"models:/{MODEL}@champion"


@pytest.fixture(scope="module")
def moved(tmp_path_factory, params, tiny_faceset) -> tuple[Path, Path]:
    """A project that registered its model, then moved as a whole: (old folder, new folder)."""
    import dataclasses

    import mlflow

    here = tmp_path_factory.mktemp("serving")
    first, project = here / "first", here / "moved"
    first.mkdir()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{first / 'mlflow.db'}"
    try:
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        trained_project(first, tiny_faceset, epochs=1)
        params = dataclasses.replace(
            params, register=dataclasses.replace(params.register, model_name=MODEL)
        )
        register_in(first, params, tiny_faceset)
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")
    first.rename(project)  # nothing is left behind
    return first, project


def relocate(project: Path):
    from typer.testing import CliRunner

    from ferops.cli import app

    return CliRunner().invoke(app, ["relocate", "--root", str(project)])


@dataclass
class Server:
    """The running server, and what it answered: rows logged (a face each) and requests."""

    port: int
    process: subprocess.Popen
    project: Path
    tracking_uri: str
    log: Path  # the server's own output
    predictions: Path  # the prediction log
    max_bytes: int
    rows: int = 0
    requests: int = 0

    def post(self, payload: dict, content_type: str | None = "application/json"):
        status, body = post(self.port, payload, content_type)
        if status == 200:
            answers = body["predictions"]
            detect = "faces" in answers[0]  # whole photos: a row for each face found
            rows = sum(len(a["faces"]) for a in answers) if detect else len(answers)
            self.rows += rows
            self.requests += rows > 0  # a photo without a face logs nothing
        return status, body


@pytest.fixture(scope="module")
def server(moved, tmp_path_factory):
    """`mlflow models serve` of the moved project's champion (relocated first), with small
    request limits and the prediction log on; killed at the end, not stopped."""
    _, project = moved
    from ferops.kernel.layout import tracking_uri

    relocate(project)
    uri = tracking_uri(project)
    port, here = free_port(), tmp_path_factory.mktemp("served")
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",  # the model is code, not a pickle
        "FEROPS_MAX_REQUEST_BYTES": "40000",
        "FEROPS_MAX_REQUEST_PIXELS": "1000000",
        "FEROPS_PREDICTION_LOG": str(here / "predictions"),
        "FEROPS_PREDICTION_LOG_FLUSH_SECONDS": "0.5",
        "FEROPS_SERVED_MODEL": SERVED,
    }
    command = ["mlflow", "models", "serve", "-m", SERVED, "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    log = here / "server.log"
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until_serving(port, process, log)
        yield Server(port, process, project, uri, log, here / "predictions", 40000)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_a_moved_project_is_refused_until_relocated(moved):
    """First in the file: the server fixture relocates the project before serving it."""
    from ferops.kernel.layout import tracking_uri
    from ferops.kernel.local_store import StoreMoved

    first, project = moved
    with pytest.raises(StoreMoved, match="ferops relocate"):
        tracking_uri(project)
    relocated = relocate(project)
    assert relocated.exit_code == 0 and "moved from" in relocated.output, relocated.output
    assert tracking_uri(project).endswith(str((project / "mlflow.db").resolve()))
    assert not first.exists()


def test_images_in_any_format_get_the_answers_of_the_loaded_model(server, tiny_faceset):
    import mlflow

    # The model learned from synthetic faces: the server says so once, at start-up.
    log = server.log.read_text()
    assert log.count("learned from synthetic faces") == 1, log
    assert "prediction log off" not in log
    faces = tiny_faceset["test"].x[:4]
    mlflow.set_tracking_uri(server.tracking_uri)
    served = mlflow.pyfunc.load_model(SERVED)  # pickle deserialisation is off here too
    request = {"image": [encoded(faces[0]), encoded(faces[1], "JPEG", (96, 96), "RGB")]}
    status, body = server.post(frame("image", request["image"]))
    assert status == 200 and len(body["predictions"]) == 2
    expected = served.predict(pd.DataFrame(request))
    got = pd.DataFrame(body["predictions"])
    assert got["emotion"].tolist() == expected["emotion"].tolist()
    np.testing.assert_allclose(got["p_happy"], expected["p_happy"], atol=1e-6)

    deep = io.BytesIO()  # the same face as a 16-bit PNG: decoded alike, answered alike
    Image.fromarray(faces[0].astype(np.uint16) * 257).save(deep, format="PNG")
    pair = [request["image"][0], base64.b64encode(deep.getvalue()).decode()]
    status, body = server.post(frame("image", pair))
    assert status == 200 and body["predictions"][0] == body["predictions"][1]


def test_pixel_rows_are_answered(server, tiny_faceset):
    faces = tiny_faceset["test"].x[:4]
    status, body = server.post(frame("pixels", [" ".join(map(str, f.ravel())) for f in faces]))
    assert status == 200 and len(body["predictions"]) == 4


def test_whole_photos_give_every_face_largest_first_and_an_empty_list_without_one(
    server, tiny_faceset
):
    import mlflow

    a, b = detectable(tiny_faceset, 2)
    photo = scene(320, 240)
    paste(photo, a, 20, 40, 110)
    paste(photo, b, 190, 100, 80)
    whole = [jpeg(photo), jpeg(scene(320, 240, seed=1))]
    found = []
    for image in whole:  # one a request: the server's byte limit here is small
        status, body = server.post({**frame("image", [image]), "params": {"faces": "detect"}})
        assert status == 200, body
        found.append(body["predictions"][0]["faces"])
    assert len(found[0]) == 2 and found[0][0]["w"] > found[0][1]["w"] and found[1] == []
    assert {"x", "y", "w", "h", "emotion", "confidence", "p_happy"} <= set(found[0][0])
    mlflow.set_tracking_uri(server.tracking_uri)
    served = mlflow.pyfunc.load_model(SERVED)
    expected = served.predict(pd.DataFrame({"image": whole[:1]}), params={"faces": "detect"})
    assert [f["emotion"] for f in found[0]] == [f["emotion"] for f in expected["faces"][0]]
    status, body = server.post({**frame("image", whole[:1]), "params": {"faces": "all"}})
    assert status == 400 and "faces must be one of one, detect" in body["message"]


def test_junk_and_oversized_requests_are_refused_naming_the_problem(server, tiny_faceset):
    # A 200 MB body is refused from its Content-Length alone: no byte of it is sent.
    status, body = announce(server.port, 200_000_000)
    assert status == 413 and "FEROPS_MAX_REQUEST_BYTES" in body["message"]

    body_limit = RequestLimits(max_bytes=server.max_bytes).max_body
    for case, (payload, message) in JUNK.items():
        column, values = next(iter(payload.items()))
        request = frame(column, values)
        size = len(json.dumps(request))
        if size > body_limit:  # over this server's small limit: refused unread
            status, body = announce(server.port, size)
            assert status == 413, case
            continue
        status, body = server.post(request)
        assert status == 400, case
        assert message in body["message"], case

    noise = np.random.default_rng(0).integers(0, 256, (120, 120), dtype=np.uint8)
    status, body = server.post(frame("image", [encoded(noise)] * 3))  # ~3 x 14 KB
    assert status == 400 and "FEROPS_MAX_REQUEST_BYTES" in body["message"]
    flat = encoded(np.full((1000, 600), 128, np.uint8))  # small file, 0.6 megapixels
    status, body = server.post(frame("image", [flat, flat]))
    assert status == 400 and "row 1" in body["message"]
    assert "FEROPS_MAX_REQUEST_PIXELS" in body["message"]

    # MLflow's scoring server (not ferops) answers a request without Content-Type; it
    # refuses it (a 500 from MLflow 3.17, see docs/inference.md, "Serving") and keeps serving.
    pixels = " ".join(map(str, tiny_faceset["test"].x[0].ravel()))
    status, _ = server.post(frame("pixels", [pixels]), content_type=None)
    assert status >= 400
    status, _ = server.post(frame("pixels", [pixels]))
    assert status == 200  # still serving after the junk


def test_every_answer_and_nothing_refused_is_in_the_prediction_log(server, tiny_faceset):
    """Killed, not stopped, after the flush interval: what the log holds is exactly what the
    server answered (whatever the other tests sent), with the served model's name and digest."""

    faces = tiny_faceset["test"].x[:2]
    sizes = [(48, 48), (96, 96)]
    images = [encoded(face, size=size) for face, size in zip(faces, sizes, strict=True)]
    assert server.post(frame("image", images))[0] == 200
    time.sleep(2)  # more than the flush interval: every answer is on disk
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)

    logged = read_log(server.predictions)
    assert len(logged) == server.rows and logged["request_id"].nunique() == server.requests
    assert set(logged["model_uri"]) == {SERVED}
    assert set(logged["model_sha256"]) == {sha256_file(Layout(server.project).model)}
    assert logged["image_width"].tolist()[-2:] == [48, 96]  # this test's request, last
    assert "face_png" not in logged  # faces only when the operator opts in
    assert (logged["latency_ms"] > 0).all() and logged["emotion"].notna().all()
