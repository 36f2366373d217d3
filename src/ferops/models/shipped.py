"""The pretrained FER2013 model shipped inside the package (see pretrained/MODEL_CARD.md).

`ferops registry import-pretrained` registers it; `predict`, `stream` and `export` fall back
to it when the registry has no champion, so real photos get real emotions before anyone has
trained anything.
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


def preprocessing() -> Preprocessing:
    return Preprocessing.load(MODEL_FILE.with_suffix(".json"))


def verified_model_file() -> Path:
    """The shipped file, after checking it is the one the model card describes."""
    digest = sha256_file(MODEL_FILE)
    if digest != SHA256:
        raise DataError(f"{MODEL_FILE}: sha256 {digest} is not the model card's {SHA256}")
    return MODEL_FILE
