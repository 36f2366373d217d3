"""End to end: `dvc repro` of the whole pipeline in a temporary copy of the repo."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers import copy_project, make_folder, run, set_params


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "repo")


def test_dvc_repro_runs_the_stages_then_skips_them_and_a_failure_keeps_good_outputs(project):
    run(["dvc", "repro"], project)
    docs = project / "reports" / "validation" / "data_docs" / "index.html"
    assert docs.is_file()
    assert json.loads((project / "reports" / "validation" / "result.json").read_text())["success"]
    assert (project / "data" / "processed" / "test.npz").is_file()
    dag = run(["dvc", "dag"], project).stdout
    stages = ("ingest", "preprocess", "validate", "tune", "train", "evaluate", "register")
    assert all(stage in dag for stage in stages)
    assert "accuracy" in run(["dvc", "metrics", "show"], project).stdout
    promotion = json.loads((project / "reports" / "promotion.json").read_text())
    assert promotion["alias"] == "champion" and promotion["version"] == 1
    assert (project / "models" / "model.keras").is_file()
    assert json.loads((project / "reports" / "tuning" / "summary.json").read_text())["complete"]
    assert (project / "reports" / "training" / "history.csv").is_file()

    started = time.perf_counter()
    again = run(["dvc", "repro"], project)
    assert "Data and pipelines are up to date" in again.stdout
    assert time.perf_counter() - started < 5

    # A deliberately weaker experiment (one epoch, untuned, no augmentation) is registered but
    # refused by the gate: the champion stays version 1.
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "first model"], project)
    run(
        [
            "dvc",
            "exp",
            "run",
            "-S",
            "train.epochs=1",
            "-S",
            "train.use_tuned=false",
            "-S",
            "model.augment=0",
        ],
        project,
    )
    weaker = json.loads((project / "reports" / "promotion.json").read_text())
    assert weaker["version"] == 2 and weaker["alias"] == "challenger", weaker
    assert weaker["previous_champion"] == 1
    run(["git", "checkout", "-q", "--", "params.yaml", "dvc.lock"], project)
    run(["dvc", "checkout", "-q"], project, check=False)

    # Bad data: a split below its minimum. The validate stage fails and names the expectation;
    # the last good data and report stay in place.
    good_report = (project / "reports" / "validation" / "result.json").read_bytes()
    good_data = (project / "data" / "processed" / "train.npz").read_bytes()
    set_params(project, **{"validate.min_split_size": {"train": 50, "val": 20, "test": 500}})
    failed = run(["dvc", "repro"], project, check=False)
    assert failed.returncode != 0
    assert "split_size" in failed.stdout + failed.stderr
    assert (project / "reports" / "validation" / "result.json").read_bytes() == good_report
    assert (project / "data" / "processed" / "train.npz").read_bytes() == good_data


def test_dvc_exp_run_switches_to_a_dvc_added_image_folder(project):
    """The README's FER2013 recipe, on a tiny folder: dvc add, commit, dvc exp run -S."""
    make_folder(project / "data" / "raw" / "faces", per_class=3)
    run(["dvc", "add", "data/raw/faces"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "tiny faces"], project)
    run(
        [
            "dvc",
            "exp",
            "run",
            "-S",
            "data.source=image-folder",
            "-S",
            "data.path=data/raw/faces",
            "-S",
            "validate.min_split_size={train: 5, val: 5, test: 5}",
        ],
        project,
    )
    ingested = json.loads((project / "reports" / "ingest.json").read_text())
    assert ingested["source"] == "image-folder"
    assert ingested["counts"]["test"]["total"] == 21
    assert (project / "data" / "raw" / "faces" / "train").is_dir()  # the data is still there
