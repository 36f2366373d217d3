"""The ingest stage writes the face-set contract, and a failure leaves the old output."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from ferops.kernel.errors import DataError
from ferops.kernel.layout import Layout
from ferops.pipeline.ingest import run as ingest


def test_ingest_writes_the_contract_files(params, tmp_path):
    layout = Layout(tmp_path)
    report = ingest(params, layout)
    with np.load(layout.interim / "train.npz") as arrays:
        assert arrays["x"].dtype == np.uint8 and arrays["x"].shape == (84, 48, 48)
        assert arrays["y"].dtype == np.int8
    manifest = pd.read_parquet(layout.interim / "manifest.parquet")
    assert list(manifest.columns) == ["split", "index", "label", "emotion", "source", "sha1"]
    assert len(manifest) == 84 + 28 + 28
    assert manifest["sha1"].str.len().eq(40).all()
    assert report["counts"]["val"]["total"] == 28
    assert json.loads(layout.ingest_report.read_text())["source"] == "synthetic"


def test_a_failed_ingest_leaves_the_previous_output_untouched(params, tmp_path):
    layout = Layout(tmp_path)
    out = layout.interim
    ingest(params, layout)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    report_before = layout.ingest_report.read_text()
    broken = tmp_path / "fer2013.csv"
    broken.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    bad = dataclasses.replace(params.data, source="fer2013-csv", path=broken)
    with pytest.raises(DataError, match="line 2, field pixels"):
        ingest(dataclasses.replace(params, data=bad), layout)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert layout.ingest_report.read_text() == report_before
