"""The FER2013 models shipped inside the package (see pretrained/MODEL_CARD.md), one
`ShippedModel` record each.

`ACCURATE` (a residual attention CNN, Keras, with its float32 ONNX export beside it, so
answering needs no TensorFlow): `ferops registry import-pretrained` registers it as
`fer2013-pretrained`; `predict`, `stream` and `export` fall back to it when the registry has no
champion, so real photos get real emotions before anyone has trained anything. `FAST` (a plain
CNN, int8 ONNX): `--model fast`, for video and small machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ferops.imaging.contrast import Preprocessing
from ferops.kernel.errors import DataError
from ferops.kernel.integrity import sha256_file

FOLDER = Path(__file__).parent / "pretrained"
MODEL_CARD = FOLDER / "MODEL_CARD.md"
REGISTERED_NAME = "fer2013-pretrained"  # the accurate model's name in the MLflow registry


@dataclass(frozen=True)
class ShippedModel:
    """A model file in the package, the digest the model card gives for it, and what it
    scored on FER2013 PrivateTest (MODEL_CARD.md)."""

    name: str  # what `--model` and EmotionRecognizer(...) take
    title: str  # how an answer names it
    file: Path  # .keras, or the .onnx that answers
    sha256: str
    test_metrics: dict[str, float]
    onnx_export: Path | None = None  # ONNX beside a Keras file: what answers by default
    onnx_sha256: str = ""
    trained_on: str = "fer2013"

    def verified(self) -> Path:
        """The file, after checking it is the one the model card describes."""
        return _verified(self.file, self.sha256)

    def verified_onnx_export(self) -> Path | None:
        """The ONNX export beside a Keras file, checked like the file (None: no export)."""
        if self.onnx_export is None:
            return None
        return _verified(self.onnx_export, self.onnx_sha256)

    def preprocessing(self) -> Preprocessing:
        """The contrast normalisation it was trained with (the sidecar beside its file)."""
        return Preprocessing.load(self.file.with_suffix(".json"))


ACCURATE = ShippedModel(
    name="shipped",
    title="the shipped FER2013 model",
    file=FOLDER / "fer2013_res_attention_cnn.keras",
    sha256="09fadf6aee66faf20c615071ad8d3b4b89f823301b6b19f7ee84d1bb36b9a6d1",
    # Measured by `ferops evaluate` on FER2013 PrivateTest.
    test_metrics={
        "accuracy": 0.6677,
        "macro_f1": 0.6263,
        "accuracy_tta_flip": 0.6702,
        "accuracy_tta_flip_shift": 0.6755,
    },
    # `ferops export … --format onnx` of the Keras file: 1.4e-06 at most from Keras, every
    # clear answer kept; ONNX Runtime runs it (2.3x Keras' speed a face), no TensorFlow.
    onnx_export=FOLDER / "fer2013_res_attention_cnn.onnx",
    onnx_sha256="ad044b60b31eaa95067a3715158182308c81a7a56d41eb5462be71d8faf83e59",
)

FAST = ShippedModel(
    name="fast",
    title="the shipped fast FER2013 model",
    file=FOLDER / "fer2013_fast_cnn_int8.onnx",
    sha256="21006b4ff5998509fd1e0eee1000f2143a1d082849e70640f1ecf35a9f036aa7",
    # The int8 file on FER2013 PrivateTest after de-duplication (3,572 faces).
    test_metrics={"accuracy": 0.6523, "macro_f1": 0.5742},
)

#: The names `--model` takes besides files and models:/ URIs.
SHIPPED = {model.name: model for model in (ACCURATE, FAST)}


def _verified(path: Path, expected: str) -> Path:
    digest = sha256_file(path)
    if digest != expected:
        raise DataError(f"{path}: sha256 {digest} is not the model card's {expected}")
    return path
