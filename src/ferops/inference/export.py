"""Exporting a trained model for fast inference: ONNX (ONNX Runtime) or LiteRT (.tflite).

The exported graph is the inference path only: augmentation and dropout are dropped (random
ops have no ONNX equivalent and do nothing at inference anyway). Every export is checked
against Keras on real faces and refused when any probability differs by more than 1e-4.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from ferops.data.faceset import load_faceset
from ferops.data.sources import synthetic_faceset
from ferops.imaging.contrast import Preprocessing
from ferops.inference.runtime import litert_predict, onnx_predict
from ferops.kernel.config import Params
from ferops.kernel.errors import FeropsError
from ferops.kernel.files import atomic_path
from ferops.kernel.layout import Layout

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "litert": ".tflite"}
TOLERANCE = 1e-4


class ExportMismatch(FeropsError):
    """The exported model does not reproduce Keras' outputs."""


def inference_model(model: keras.Model) -> keras.Model:
    """The same graph and weights (layers are shared, not copied), with the training-only
    layers (augmentation, dropout) passed through."""

    def call(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        if layer.name == "augment" or isinstance(layer, layers.Dropout):
            return args[0]
        return layer(*args, **kwargs)

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)


def export_model(
    model: keras.Model,
    fmt: str,
    out_path: Path,
    check_faces: np.ndarray,
    preprocessing: Preprocessing | None = None,
) -> float:
    """Write `out_path` (and a `.json` sidecar with the contrast normalisation); return the
    largest difference from Keras on `check_faces`, which must be under 1e-4."""
    if fmt not in FORMATS:
        raise FeropsError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    inference = inference_model(model)
    inference(np.asarray(check_faces[:1], dtype=np.uint8), training=False)  # export needs a call
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / f"model{FORMATS[fmt]}"
        with contextlib.redirect_stdout(io.StringIO()):  # the converters print pages of notes
            inference.export(str(staged), format=fmt, verbose=False)
        difference = parity(inference, staged, fmt, check_faces)
        if difference > TOLERANCE:
            raise ExportMismatch(
                f"{fmt} export differs from Keras by {difference:.2e} (> {TOLERANCE:g}); "
                f"{out_path} was not written"
            )
        with atomic_path(out_path) as final:
            shutil.copyfile(staged, final)
    if preprocessing is not None:
        with atomic_path(out_path.with_suffix(".json")) as staged:
            preprocessing.save(staged)
    log.info("exported %s (%s): max difference from Keras %.2e", out_path, fmt, difference)
    return difference


def parity(model: keras.Model, exported: Path, fmt: str, faces: np.ndarray) -> float:
    """Largest absolute difference between Keras and the exported file on `faces`."""
    faces = np.ascontiguousarray(faces, dtype=np.uint8)
    expected = np.asarray(model(faces, training=False))
    predict = onnx_predict(exported) if fmt == "onnx" else litert_predict(exported)
    return float(np.abs(predict(faces) - expected).max())


def parity_faces(params: Params, layout: Layout, count: int = 256) -> np.ndarray:
    """Real faces for the parity check: the processed test split, else synthetic ones."""
    try:
        return load_faceset(layout.processed)["test"].x[:count]
    except (FileNotFoundError, FeropsError):
        small = dataclasses.replace(
            params.data.synthetic, train_per_class=1, val_per_class=1, test_per_class=20
        )
        data = dataclasses.replace(params.data, source="synthetic", synthetic=small)
        return synthetic_faceset(data, seed=params.seed)["test"].x
