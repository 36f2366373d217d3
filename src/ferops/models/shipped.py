"""The pretrained FER2013 models shipped inside the package (see pretrained/MODEL_CARD.md).

The accurate one (a residual attention CNN, Keras, with its float32 ONNX export beside it, so
answering needs no TensorFlow): `ferops registry import-pretrained` registers it; `predict`,
`stream` and `export` fall back to it when the registry has no champion, so real photos get
real emotions before anyone has trained anything. The fast one
(a plain CNN, int8 ONNX): `--model fast`, for video and small machines.
"""

from __future__ import annotations

from pathlib import Path

from ferops.imaging.contrast import Preprocessing
from ferops.kernel.errors import DataError
from ferops.kernel.integrity import sha256_file

FOLDER = Path(__file__).parent / "pretrained"
MODEL_FILE = FOLDER / "fer2013_res_attention_cnn.keras"
MODEL_CARD = FOLDER / "MODEL_CARD.md"
MODEL_NAME = "fer2013-pretrained"
SHA256 = "09fadf6aee66faf20c615071ad8d3b4b89f823301b6b19f7ee84d1bb36b9a6d1"
# Measured by `ferops evaluate` on FER2013 PrivateTest (MODEL_CARD.md).
TEST_METRICS = {
    "accuracy": 0.6677,
    "macro_f1": 0.6263,
    "accuracy_tta_flip": 0.6702,
    "accuracy_tta_flip_shift": 0.6755,
}


# `ferops export … --format onnx` of MODEL_FILE: 1.4e-06 at most from Keras, every clear answer
# kept; ONNX Runtime runs it (2.3x Keras' speed a face) and TensorFlow is never imported.
ONNX_FILE = MODEL_FILE.with_suffix(".onnx")
ONNX_SHA256 = "ad044b60b31eaa95067a3715158182308c81a7a56d41eb5462be71d8faf83e59"


def preprocessing() -> Preprocessing:
    return Preprocessing.load(MODEL_FILE.with_suffix(".json"))


FAST_MODEL_FILE = FOLDER / "fer2013_fast_cnn_int8.onnx"
FAST_SHA256 = "1f53a231bdb8549b95985c1dc8bdfa2ca2deb846dc8b7a670d744579c2fd84b6"
# The int8 file on FER2013 PrivateTest after de-duplication (3,572 faces; MODEL_CARD.md).
FAST_TEST_METRICS = {"accuracy": 0.6523, "macro_f1": 0.5742}


def verified_model_file() -> Path:
    """The shipped file, after checking it is the one the model card describes."""
    return _verified(MODEL_FILE, SHA256)


def verified_onnx_file() -> Path:
    """The accurate model's ONNX export, checked like the model itself."""
    return _verified(ONNX_FILE, ONNX_SHA256)


def verified_fast_model_file() -> Path:
    """The fast model's file, after checking it is the one the model card describes."""
    return _verified(FAST_MODEL_FILE, FAST_SHA256)


def _verified(path: Path, expected: str) -> Path:
    digest = sha256_file(path)
    if digest != expected:
        raise DataError(f"{path}: sha256 {digest} is not the model card's {expected}")
    return path
