"""The Python API (ferops.api) does what the commands do."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from ferops.api import classifier, emotions_in_photo, run_stage
from ferops.data.faceset import load_faceset
from ferops.kernel.errors import DataError
from tests.helpers import REPO, tiny_onnx_classifier, tiny_params_file


def test_run_stage_runs_a_stage_on_the_project_s_params(tmp_path):
    tiny_params_file(tmp_path, **{"data.synthetic.test_per_class": 2})
    report = run_stage("ingest", root=tmp_path)
    assert report["counts"]["train"]["total"] == 84
    assert len(load_faceset(tmp_path / "data" / "interim")["test"]) == 14
    with pytest.raises(KeyError, match="unknown stage 'trian'"):
        run_stage("trian", root=tmp_path)


def test_a_photo_s_emotions_come_from_the_model_file_asked_for(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    tiny_onnx_classifier(tmp_path / "tiny.onnx")
    model = classifier(tmp_path / "tiny.onnx", root=tmp_path)
    assert model.runtime == "onnx" and model.source == str(tmp_path / "tiny.onnx")
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), np.full((60, 80, 3), 90, np.uint8))
    (face,) = emotions_in_photo(photo, model, whole=True)
    assert (face.box.w, face.box.h) == (80, 60)
    assert face.probabilities.shape == (7,) and abs(face.probabilities.sum() - 1) < 1e-5
    with pytest.raises(DataError, match="model file not found"):
        classifier(tmp_path / "missing.onnx", root=tmp_path)
