"""Exporting a trained model for fast inference: ONNX (ONNX Runtime), ONNX with int8 weights
and activations, or LiteRT (.tflite).

The exported graph is the inference path only: augmentation and dropout are dropped (random
ops have no ONNX equivalent and do nothing at inference anyway). Every export is checked
against Keras on real faces and refused when any probability differs by more than 1e-4; an
int8 one, which cannot be that close, when its probabilities differ by more than 0.02 on
average or it changes the answer for more than 2 % of the faces Keras answers clearly.
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
from ferops.imaging.contrast import PREPROCESSING_FILE, Preprocessing
from ferops.inference.onnx_graph import speed_up_int8
from ferops.inference.runtime import litert_predict, onnx_predict
from ferops.kernel.config import Params
from ferops.kernel.errors import FeropsError
from ferops.kernel.files import atomic_path
from ferops.kernel.layout import Layout

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "onnx-int8": ".onnx", "litert": ".tflite"}
TOLERANCE = 1e-4
# int8 cannot match Keras within 1e-4. It must stay close on average, and keep the answer of
# every face Keras answers clearly (top two probabilities 0.2 apart) but 2 %: near-ties flip
# under any rounding, differently on CPUs with and without VNNI, and say nothing.
INT8_TOLERANCE = 0.02  # mean absolute probability difference
INT8_CLEAR_GAP = 0.2
INT8_AGREEMENT = 0.98


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
    calibration_faces: np.ndarray | None = None,
) -> float:
    """Write `out_path` (and a `.json` sidecar with the contrast normalisation); return the
    largest difference from Keras on `check_faces`, which must be under 1e-4 (onnx-int8: see
    INT8_TOLERANCE). onnx-int8 sets its activation
    ranges on `calibration_faces` (default: `check_faces`); pass training faces, never test
    ones."""
    if fmt not in FORMATS:
        raise FeropsError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    inference = inference_model(model)
    inference(np.asarray(check_faces[:1], dtype=np.uint8), training=False)  # export needs a call
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / f"model{FORMATS[fmt]}"
        with contextlib.redirect_stdout(io.StringIO()):  # the converters print pages of notes
            inference.export(str(staged), format=fmt.removesuffix("-int8"), verbose=False)
        if fmt == "onnx-int8":
            staged = quantize_int8(
                staged, check_faces if calibration_faces is None else calibration_faces
            )
        difference, mean_difference, agreement = parity(inference, staged, fmt, check_faces)
        if fmt == "onnx-int8" and mean_difference > INT8_TOLERANCE:
            raise ExportMismatch(
                f"int8 export differs from Keras by {mean_difference:.3f} on average "
                f"(> {INT8_TOLERANCE:g}); {out_path} was not written"
            )
        if fmt == "onnx-int8" and agreement < INT8_AGREEMENT:
            raise ExportMismatch(
                f"int8 export keeps Keras' answer for {agreement:.1%} of the check faces Keras "
                f"answers clearly (< {INT8_AGREEMENT:.0%}); {out_path} was not written"
            )
        if fmt != "onnx-int8" and difference > TOLERANCE:
            raise ExportMismatch(
                f"{fmt} export differs from Keras by {difference:.2e} (> {TOLERANCE:g}); "
                f"{out_path} was not written"
            )
        with atomic_path(out_path) as final:
            shutil.copyfile(staged, final)
    if preprocessing is not None:
        with atomic_path(out_path.with_suffix(".json")) as staged:
            preprocessing.save(staged)
    log.info(
        "exported %s (%s): difference from Keras %.2e at most, %.2e on average; clear answers "
        "kept: %.1f%%",
        out_path,
        fmt,
        difference,
        mean_difference,
        100 * agreement,
    )
    return difference


def quantize_int8(fp32: Path, calibration_faces: np.ndarray) -> Path:
    """Static int8 quantization (QDQ: int8 weights per output channel, uint8 activations with
    min-max ranges from the calibration faces). Measured speed and accuracy: docs/performance.md,
    "int8" (benchmarks/inference.py --fer2013)."""
    # Deferred on purpose: only this format needs the quantization tools.
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    name = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    faces = np.ascontiguousarray(calibration_faces, dtype=np.uint8)

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(range(0, len(faces), 64))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self.batches, None)
            return None if start is None else {name: faces[start : start + 64]}

    prepared, quantized = fp32.with_name("prepared.onnx"), fp32.with_name("int8.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    # The softmax stays float: quantized to steps of 1/255, probabilities summed to 0.992.
    softmax = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Softmax"]
    quantize_static(
        str(prepared),
        str(quantized),
        Batches(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        nodes_to_exclude=softmax,
    )
    model = onnx.load(str(quantized))
    log.info("int8 graph rewrites (places changed): %s", speed_up_int8(model))
    onnx.save(model, str(quantized))
    return quantized


def parity(
    model: keras.Model, exported: Path, fmt: str, faces: np.ndarray
) -> tuple[float, float, float]:
    """The largest and the mean absolute difference between Keras' probabilities and the
    exported file's on `faces`, and the share of the faces Keras answers clearly (its top two
    probabilities at least INT8_CLEAR_GAP apart; 1.0 when there are none) whose top emotion is
    the same. On FER2013 PublicTest, the shipped model's int8 export kept 99.9 % of the clear
    answers (83 % of the faces) and 97.8 % of all; its mean difference was 0.005."""
    faces = np.ascontiguousarray(faces, dtype=np.uint8)
    expected = np.asarray(model(faces, training=False))
    predict = litert_predict(exported) if fmt == "litert" else onnx_predict(exported)
    got = predict(faces)
    top_two = np.sort(expected, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] >= INT8_CLEAR_GAP
    same = got.argmax(axis=1) == expected.argmax(axis=1)
    agreement = float(same[clear].mean()) if clear.any() else 1.0
    gaps = np.abs(got - expected)
    return float(gaps.max()), float(gaps.mean()), agreement


def parity_faces(params: Params, layout: Layout, count: int = 256) -> np.ndarray:
    """Real faces for the parity check: the processed test split, else synthetic ones."""
    try:
        return load_faceset(layout.processed)["test"].x[:count]
    except (FileNotFoundError, FeropsError):
        return synthetic_faces(params, "test", per_class=20)


def calibration_faces(
    params: Params, layout: Layout, preprocessing: Preprocessing, count: int = 512
) -> np.ndarray:
    """Faces to set int8 activation ranges on, as the model sees them: the processed train
    split (never test) when it was normalised as the model expects, else synthetic faces with
    the model's normalisation. On the shipped FER2013 model, synthetic calibration cost 0.3
    point of PrivateTest accuracy, FER2013 train faces 0.4 (docs/performance.md, "int8")."""
    try:
        if Preprocessing.load(layout.processed / PREPROCESSING_FILE) == preprocessing:
            train = load_faceset(layout.processed)["train"]
            picks = np.random.default_rng(params.seed).permutation(len(train))[:count]
            return train.x[np.sort(picks)]
    except (FileNotFoundError, FeropsError):
        pass
    return preprocessing.apply(synthetic_faces(params, "train", per_class=max(1, count // 7)))


def synthetic_faces(params: Params, split: str, *, per_class: int) -> np.ndarray:
    """`per_class` generated faces of each emotion in `split` (one in each other split)."""
    sizes = {f"{name}_per_class": 1 for name in ("train", "val", "test")}
    small = dataclasses.replace(params.data.synthetic, **{**sizes, f"{split}_per_class": per_class})
    data = dataclasses.replace(params.data, source="synthetic", synthetic=small)
    return synthetic_faceset(data, seed=params.seed)[split].x
