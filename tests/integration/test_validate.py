"""The Great Expectations suite passes good data and fails each kind of bad data."""

import dataclasses
import json
import re

import pytest

from ferops.data.faceset import save_faceset
from ferops.install.web_assets import default_dir
from ferops.kernel.config import ValidateConfig
from ferops.kernel.errors import ValidationFailed
from ferops.kernel.layout import Layout
from ferops.pipeline.validate import face_statistics, run_suite
from ferops.pipeline.validate import run as validate
from tests.helpers import copy_faceset

CONFIG = ValidateConfig(min_std=1.0, min_split_size={"train": 10, "val": 5, "test": 5})


def failures(table, tmp_path, config=CONFIG) -> list[str]:
    return run_suite(table, config, gx_root=tmp_path).outcome.failed_critical


def test_good_data_passes(tiny_faceset, tmp_path):
    outcome = run_suite(face_statistics(tiny_faceset), CONFIG, gx_root=tmp_path).outcome
    assert outcome.success and not outcome.failed_critical
    assert outcome.statistics["evaluated_expectations"] >= 13


def test_each_kind_of_bad_data_fails_its_expectation(tiny_faceset, tmp_path):
    """One table per defect; each must fail exactly the expectation that guards it."""
    good = face_statistics(tiny_faceset)
    cases = {}
    flat = good.copy()
    flat.loc[3, "std"] = 0.2
    cases["column='std'"] = flat
    shared = good.copy()
    shared.loc[shared.index[-1], "sha1"] = shared.loc[0, "sha1"]  # a train face in test
    cases["expect_column_values_to_be_unique(column='sha1'"] = shared
    no_fear = good[good["split_label"] != "val:fear"]
    cases["missing ['val:fear']"] = no_fear
    small = good.copy()
    small.loc[small["split"] == "val", "split_size"] = 2
    cases["(column='split_size', min_value=5.0) where split == 'val'"] = small
    label = good.copy()
    label.loc[0, "label"] = 9
    cases["column='label'"] = label
    shape = good.copy()
    shape.loc[0, "height"] = 64
    cases["column='height'"] = shape
    for needle, table in cases.items():
        failed = failures(table, tmp_path)
        assert len(failed) == 1 and needle in failed[0], (needle, failed)
    # The failure names the offending image, so a person can find it.
    assert tiny_faceset["train"].sources[3] in failures(flat, tmp_path)[0]


def test_a_failed_validation_keeps_the_good_report_and_names_the_problem(
    params, tiny_faceset, tmp_path
):
    layout, params = Layout(tmp_path), dataclasses.replace(params, validate=CONFIG)
    save_faceset(tiny_faceset, layout.processed)
    reports = layout.validation
    validate(params, layout)
    assert (reports / "data_docs" / "index.html").is_file()
    good_result = (reports / "result.json").read_text()
    assert json.loads(good_result)["success"] is True

    bad = copy_faceset(tiny_faceset)
    bad["test"].x[0] = bad["train"].x[0]
    save_faceset(bad, layout.processed)
    with pytest.raises(ValidationFailed, match="column='sha1'"):
        validate(params, layout)
    assert (reports / "result.json").read_text() == good_result
    failed = json.loads((tmp_path / "reports" / "validation-failed" / "result.json").read_text())
    assert failed["success"] is False


def test_data_docs_name_the_run_and_load_nothing_from_cdns(params, tiny_faceset, tmp_path):
    if not (default_dir() / "jquery@3.7.1").is_dir():
        pytest.skip(f"no offline web assets in {default_dir()} (make install fetches them)")
    layout = Layout(tmp_path)
    save_faceset(tiny_faceset, layout.processed)
    reports = layout.validation
    validate(dataclasses.replace(params, validate=CONFIG), layout)
    pages = list((reports / "data_docs").rglob("*.html"))
    assert len(pages) >= 3  # the index, the suite, the validation
    for page in pages:
        loaded = re.findall(r'(?:src|href)="(https://[^"]+\.(?:js|css)[^"]*)"', page.read_text())
        assert not loaded, (page, loaded)
    index = (reports / "data_docs" / "index.html").read_text()
    assert "'run_name': 'validate-processed'" in index
    assert "__none__" not in index
