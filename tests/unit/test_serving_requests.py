"""The served pyfunc's request decoding: images and pixel rows become faces, junk is refused
naming the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from ferops.registry.pyfunc import emotions_table, faces_from_request
from tests.helpers import JUNK, encoded


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


def test_a_request_over_its_byte_limit_is_refused_before_any_image_is_decoded(
    tiny_faceset, monkeypatch
):
    face = encoded(tiny_faceset["test"].x[0])
    monkeypatch.setenv("FEROPS_MAX_REQUEST_BYTES", str(len(face) * 3 // 4))  # one image
    request = pd.DataFrame({"image": [face, "bm90IGFuIGltYWdl"]})  # the second is junk
    with pytest.raises(MlflowException, match="FEROPS_MAX_REQUEST_BYTES") as caught:
        faces_from_request(request)
    assert caught.value.get_http_status_code() == 400
    assert "not a readable image" not in caught.value.message  # nothing was decoded


def test_a_request_over_its_pixel_limit_stops_decoding_at_the_image_that_crosses_it(
    tiny_faceset, monkeypatch
):
    faces = [encoded(face) for face in tiny_faceset["test"].x[:3]]
    monkeypatch.setenv("FEROPS_MAX_REQUEST_PIXELS", str(2 * 48 * 48))  # two faces' worth
    with pytest.raises(MlflowException, match=r"row 2: .*more than 4608 pixels") as caught:
        faces_from_request(pd.DataFrame({"image": [*faces, "bm90IGFuIGltYWdl"]}))
    assert caught.value.get_http_status_code() == 400
    assert len(faces_from_request(pd.DataFrame({"image": faces[:2]}))) == 2  # within it
