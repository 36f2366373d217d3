"""One decoder everywhere: every kind of image file gives the 8-bit file's 48x48 grey face in
ingest (load_face_image), serving (the pyfunc's decode_image) and `ferops predict`
(read_photo)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferops.imaging.decode import load_face_image
from ferops.imaging.faces import to_grey
from ferops.inference.photos import read_photo
from ferops.registry.pyfunc import decode_image
from tests.helpers import synthetic_faces

EXIF_ORIENTATION = 0x0112
ROTATED_90_CW = 6  # the viewer turns the stored pixels 90 degrees clockwise to show them


def sixteen_bit(face: np.ndarray, path: Path) -> None:
    Image.fromarray(face.astype(np.uint16) * 257).save(path)  # I;16: 0..65535


def float_tiff(face: np.ndarray, path: Path) -> None:
    Image.fromarray(face.astype(np.float32) / 255.0, mode="F").save(path)


def palette(face: np.ndarray, path: Path) -> None:
    """Index i stands for grey 255 - i."""
    image = Image.frombytes("P", face.shape[::-1], (255 - face).tobytes())
    image.putpalette([level for index in range(256) for level in [255 - index] * 3])
    image.save(path)


def alpha(face: np.ndarray, path: Path) -> None:
    Image.fromarray(face).convert("RGBA").save(path)


def cmyk(face: np.ndarray, path: Path) -> None:
    Image.fromarray(face).convert("RGB").convert("CMYK").save(path)


def exif_rotated(face: np.ndarray, path: Path) -> None:
    """Stored turned a quarter left, with the EXIF tag that turns it back."""
    stored = Image.fromarray(np.rot90(face))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CW
    stored.save(path, exif=exif)


KINDS = {
    "16-bit PNG": (sixteen_bit, "png"),
    "float TIFF": (float_tiff, "tif"),
    "palette PNG": (palette, "png"),
    "PNG with alpha": (alpha, "png"),
    "CMYK TIFF": (cmyk, "tif"),
    "EXIF-rotated PNG": (exif_rotated, "png"),
}


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    faces, _ = synthetic_faces(3, per_class=1)
    return faces[0]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_image_gives_the_8_bit_face_in_ingest_serving_and_predict(
    kind, face, tmp_path
):
    write, suffix = KINDS[kind]
    reference, path = tmp_path / "face-8bit.png", tmp_path / f"face.{suffix}"
    Image.fromarray(face).save(reference)
    write(face, path)
    assert not np.array_equal(np.asarray(Image.open(path)), face)  # the file really differs

    for image in (reference, path):
        served, _ = decode_image(base64.b64encode(image.read_bytes()).decode(), row=0)
        np.testing.assert_array_equal(load_face_image(image), face, err_msg=f"ingest {kind}")
        np.testing.assert_array_equal(served, face, err_msg=f"serving {kind}")
        np.testing.assert_array_equal(to_grey(read_photo(image)), face, err_msg=f"predict {kind}")
