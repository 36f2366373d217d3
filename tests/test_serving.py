"""The served pyfunc: request decoding, junk → 400, and a real `mlflow models serve` process."""

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
import pytest
from mlflow.exceptions import MlflowException
from PIL import Image

from ferops.registry.pyfunc import MAX_IMAGE_BYTES, emotions_table, faces_from_request


def encoded(face: np.ndarray, fmt: str = "PNG", size=None, mode: str = "L") -> str:
    image = Image.fromarray(face).convert(mode)
    if size:
        image = image.resize(size)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def bomb() -> str:
    """A tiny PNG that claims 6,000 x 6,000 pixels."""
    buffer = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


JUNK = {
    "bad base64": ({"image": ["%%%not base64%%%"]}, "row 0: field image is not valid base64"),
    "not an image": (
        {"image": [base64.b64encode(b"hello world").decode()]},
        "row 0: field image is not a readable image",
    ),
    "empty": ({"image": [""]}, "row 0: neither image nor pixels"),
    "wrong shape": ({"pixels": ["1 2 3"]}, "field pixels has 3 values, expected 2304"),
    "NaN": ({"pixels": [" ".join(["nan"] * 2304)]}, "finite grey levels"),
    "too large": ({"image": ["A" * (MAX_IMAGE_BYTES * 2)]}, "image larger than"),
    "decompression bomb": ({"image": [bomb()]}, "decompression bomb"),
    "no column": ({"text": ["hi"]}, "expected a column named 'image'"),
}


def test_images_of_any_size_and_colour_and_pixel_rows_become_faces(tiny_faceset):
    faces = tiny_faceset["test"].x[:3]
    request = pd.DataFrame(
        {
            "image": [encoded(faces[0]), encoded(faces[1], "JPEG", (131, 97), "RGB"), ""],
            "pixels": ["", "", " ".join(map(str, faces[2].ravel()))],
        }
    )
    decoded = faces_from_request(request)
    assert decoded.shape == (3, 48, 48) and decoded.dtype == np.uint8
    assert np.array_equal(decoded[0], faces[0]) and np.array_equal(decoded[2], faces[2])
    assert np.array_equal(faces_from_request(faces.astype(np.float64)), faces)


@pytest.mark.parametrize("case", sorted(JUNK))
def test_junk_is_refused_with_a_message_that_names_the_problem(case):
    payload, message = JUNK[case]
    with pytest.raises(MlflowException, match=message) as caught:
        faces_from_request(pd.DataFrame(payload))
    assert caught.value.get_http_status_code() == 400


def test_each_row_gets_an_emotion_its_confidence_and_seven_probabilities():
    probabilities = np.array([[0.1, 0, 0, 0.7, 0.1, 0.1, 0], [0, 0, 0, 0, 0, 0.2, 0.8]])
    table = emotions_table(probabilities)
    assert table["emotion"].tolist() == ["happy", "neutral"]
    assert table["confidence"].tolist() == [0.7, 0.8]
    assert [c for c in table.columns if c.startswith("p_")] == [
        "p_angry",
        "p_disgust",
        "p_fear",
        "p_happy",
        "p_sad",
        "p_surprise",
        "p_neutral",
    ]


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


@pytest.mark.slow
def test_mlflow_models_serve_answers_images_pixels_and_junk(params, tiny_faceset, tmp_path):
    import dataclasses

    import mlflow

    from tests.test_register import register_in, trained_model

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
