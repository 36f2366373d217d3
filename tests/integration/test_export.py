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


def test_an_export_that_disagrees_with_keras_is_not_written(
    keras_model_file, tiny_faceset, tmp_path, monkeypatch
):
    import ferops.inference.export as export

    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # any difference at all now fails
    out = tmp_path / "model.onnx"
    with pytest.raises(ExportMismatch, match="was not written"):
        export_model(load_model(keras_model_file), "onnx", out, tiny_faceset["test"].x[:8])
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
    assert bad.exit_code == 1 and "onnx, litert" in bad.output
