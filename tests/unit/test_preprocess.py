"""Preprocessing: leaked duplicates and blank faces dropped, contrast, the Preprocessing value."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ferops.data.faceset import load_faceset, save_faceset
from ferops.imaging.contrast import normalise_contrast
from ferops.kernel.config import PreprocessConfig
from ferops.kernel.layout import Layout
from ferops.pipeline.preprocess import clean_faceset
from ferops.pipeline.preprocess import run as preprocess
from tests.helpers import copy_faceset


def test_a_test_image_copied_into_train_is_dropped_from_train_only(tiny_faceset):
    faceset = copy_faceset(tiny_faceset)
    faceset["train"].x[5] = faceset["test"].x[2]  # leakage
    faceset["val"].x[1] = faceset["test"].x[3]
    faceset["train"].x[9] = faceset["train"].x[8]  # within-split duplicate
    cleaned, removals = clean_faceset(faceset, PreprocessConfig())
    dropped = {(r["split"], r["index"]): r["reason"] for r in removals}
    assert dropped == {
        ("train", 5): "duplicate of a test image",
        ("val", 1): "duplicate of a test image",
        ("train", 9): "duplicate within split",
    }
    assert len(cleaned["test"]) == len(tiny_faceset["test"])
    assert len(cleaned["train"]) == len(tiny_faceset["train"]) - 2
    assert faceset["train"].sources[5] not in cleaned["train"].sources


def test_blank_and_constant_faces_are_dropped_with_their_std(tiny_faceset):
    faceset = copy_faceset(tiny_faceset)
    faceset["train"].x[0] = 0
    faceset["val"].x[0] = 128
    faceset["val"].x[0, 0, 0] = 129  # nearly constant still counts as blank
    _, removals = clean_faceset(faceset, PreprocessConfig(min_std=2.0))
    blanks = [r for r in removals if r["reason"] == "blank"]
    assert [(r["split"], r["index"]) for r in blanks] == [("val", 0), ("train", 0)]
    assert "pixel std 0.00" in blanks[1]["detail"]


@pytest.mark.parametrize("method", ["equalize", "clahe"])
def test_contrast_normalisation_stretches_a_dim_face(tiny_faceset, method):
    dim = (tiny_faceset["train"].x[:4] // 4 + 60).astype(np.uint8)
    out = normalise_contrast(dim, method)
    assert out.dtype == np.uint8 and out.shape == dim.shape
    assert out.std() > 1.5 * dim.std()
    assert np.array_equal(normalise_contrast(dim, "none"), dim)
    with pytest.raises(ValueError, match="unknown contrast"):
        normalise_contrast(dim, "sharpen")


def test_preprocess_writes_processed_set_and_lists_every_removal(params, tiny_faceset, tmp_path):
    faceset = copy_faceset(tiny_faceset)
    faceset["train"].x[3] = faceset["val"].x[0]
    layout = Layout(tmp_path)
    save_faceset(faceset, layout.interim)
    report = preprocess(
        dataclasses.replace(params, preprocess=PreprocessConfig(contrast="clahe")), layout
    )
    processed = load_faceset(layout.processed)
    assert len(processed["train"]) == len(faceset["train"]) - 1
    on_disk = json.loads(layout.preprocess_report.read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert on_disk["removed_by_reason"] == {"duplicate of a val image": 1}
    assert on_disk["removed"][0]["source"] == faceset["train"].sources[3]


def test_a_model_s_preprocessing_sidecar_round_trips_and_a_bad_one_is_named(tmp_path):
    from ferops.imaging.contrast import Preprocessing
    from ferops.kernel.errors import DataError

    sidecar = tmp_path / "model.json"
    assert Preprocessing.load(sidecar) == Preprocessing()  # no sidecar: no normalisation
    Preprocessing("clahe", 3.0).save(sidecar)
    assert Preprocessing.load(sidecar) == Preprocessing("clahe", 3.0)
    sidecar.write_text('{"contrast": "sharpen", "clahe_clip": 2.0}')
    with pytest.raises(DataError, match=r"model\.json: contrast must be one of none"):
        Preprocessing.load(sidecar)
    sidecar.write_text('{"contrast": "none"}')
    with pytest.raises(DataError, match="expected keys contrast and clahe_clip"):
        Preprocessing.load(sidecar)
