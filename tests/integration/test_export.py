"""Export to ONNX and LiteRT: the same probabilities as Keras on real faces, or no file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ferops.cli import app
from ferops.imaging.contrast import Preprocessing
from ferops.inference.export import ExportMismatch, export_model, inference_model
from ferops.inference.runtime import load_classifier
from ferops.models.builders import load_model


def test_the_inference_graph_drops_augmentation_and_dropout_but_not_the_answers(
    keras_model_file, tiny_faceset
):
    model = load_model(keras_model_file)
    lean = inference_model(model)
    assert "augment" in [layer.name for layer in model.layers]
    assert "augment" not in [layer.name for layer in lean.layers]
    faces = tiny_faceset["test"].x
    np.testing.assert_array_equal(
        np.asarray(lean(faces, training=False)), np.asarray(model(faces, training=False))
    )


@pytest.mark.parametrize(("fmt", "suffix"), [("onnx", ".onnx"), ("litert", ".tflite")])
def test_an_export_matches_keras_within_1e_4(fmt, suffix, keras_model_file, tiny_faceset, tmp_path):
    model = load_model(keras_model_file)
    out = tmp_path / f"model{suffix}"
    preprocessing = Preprocessing("clahe", 2.0)
    difference = export_model(model, fmt, out, tiny_faceset["train"].x[:32], preprocessing)
    assert difference < 1e-4

    # Loaded the way predict/stream load it: the sidecar brings the contrast normalisation.
    exported = load_classifier(out)
    keras_side = load_classifier(keras_model_file)
    keras_side.preprocessing = preprocessing
    assert exported.runtime == fmt and exported.preprocessing == preprocessing
    faces = tiny_faceset["test"].x  # faces the check did not see
    np.testing.assert_allclose(
        exported.probabilities(faces), keras_side.probabilities(faces), atol=1e-4
    )


@pytest.mark.parametrize(
    ("fmt", "tolerance"), [("onnx", "TOLERANCE"), ("onnx-int8", "INT8_TOLERANCE")]
)
def test_an_export_that_strays_from_keras_is_not_written(
    fmt, tolerance, keras_model_file, tiny_faceset, tmp_path, monkeypatch
):
    """The parity check guards each format: with its tolerance below zero any difference at
    all fails, and no file is left where the export would have gone."""
    import ferops.inference.export as export

    monkeypatch.setattr(export, tolerance, -1.0)
    out = tmp_path / "model.onnx"
    with pytest.raises(ExportMismatch, match="was not written"):
        export_model(load_model(keras_model_file), fmt, out, tiny_faceset["test"].x[:8])
    assert not out.exists()


def test_the_export_command_writes_the_file_and_its_sidecar(keras_model_file, tmp_path):
    out = tmp_path / "fast.onnx"
    result = CliRunner().invoke(
        app, ["export", str(out), "--format", "onnx", "--model", str(keras_model_file)]
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000
    assert json.loads(out.with_suffix(".json").read_text())["contrast"] == "none"
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "x.onnx"), "--format", "tensorrt"])
    assert bad.exit_code == 1 and "onnx, onnx-int8, litert" in bad.output


def test_an_int8_export_is_quantized_agrees_with_keras_and_loads_like_any_onnx_file(
    keras_model_file, tiny_faceset, tmp_path
):
    import onnx

    model = load_model(keras_model_file)
    out = tmp_path / "model.onnx"
    fp32 = tmp_path / "fp32.onnx"
    export_model(model, "onnx", fp32, tiny_faceset["train"].x[:32])
    export_model(
        model,
        "onnx-int8",
        out,
        tiny_faceset["val"].x[:64],
        Preprocessing(),
        calibration_faces=tiny_faceset["train"].x,
    )
    graph = onnx.load(out).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    int8_weights = [w for w in graph.initializer if w.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 4  # the convolutions' kernels, at least
    # The graph rewrites ran (onnx_graph): the first convolution reads the face itself, cast to
    # float, with float weights; no rescale (x / 255) is left for it.
    first = next(node for node in graph.node if node.op_type == "Conv")
    makers = {output: node for node in graph.node for output in node.output}
    floats = {w.name for w in graph.initializer if w.data_type == onnx.TensorProto.FLOAT}
    assert makers[first.input[0]].op_type == "Cast" and first.input[1] in floats
    casts = {node.output[0] for node in graph.node if node.op_type == "Cast"}
    assert not any(node.op_type == "Mul" and node.input[0] in casts for node in graph.node)

    int8 = load_classifier(out)
    faces = tiny_faceset["test"].x  # neither calibrated nor checked on
    # Close probabilities, not equal answers: a one-epoch model's answers are near-ties, which
    # int8 rounding flips differently on CPUs with and without VNNI.
    difference = np.abs(int8.probabilities(faces) - load_classifier(fp32).probabilities(faces))
    assert difference.mean() <= 0.02
