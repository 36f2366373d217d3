"""The layers in pyproject.toml's import-linter contracts hold, and would catch a break; the
ONNX inference path loads neither TensorFlow nor scikit-learn, and `ferops profile` no
TensorFlow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    REPO,
    ferops_in_a_fresh_interpreter,
    tiny_onnx_classifier,
    tiny_params_file,
)

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts, on the package found under `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
    )


def test_the_package_keeps_its_layers_and_has_no_cycles(tmp_path):
    result = lint_imports(REPO / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # an upward import: the kernel reaching for the pipeline
        ("kernel/errors.py", "import ferops.pipeline.register", "Layers"),
        # a cycle inside one layer: layout -> files, while files -> layout
        ("kernel/files.py", "import ferops.kernel.layout", "No import cycles"),
    ],
)
def test_an_upward_import_or_a_cycle_breaks_the_build(tmp_path, module, line, broken):
    src = tmp_path / "src"
    shutil.copytree(
        REPO / "src" / "ferops", src / "ferops", ignore=shutil.ignore_patterns("*.keras")
    )
    if module == "kernel/files.py":  # close the circle: layout must import files first
        layout = src / "ferops" / "kernel" / "layout.py"
        layout.write_text(layout.read_text() + "\nimport ferops.kernel.files  # noqa\n")
    target = src / "ferops" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(src)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout, result.stdout


@pytest.mark.parametrize("model", ["an onnx file", "the default"])
def test_predicting_with_an_onnx_model_loads_neither_tensorflow_nor_sklearn(
    tmp_path, model, tiny_faceset
):
    """The whole `ferops predict --whole --model X.onnx` path, in a fresh interpreter; and
    `ferops predict photo` outside a project, where BlazeFace finds the face and the shipped
    FER2013 model answers through its ONNX export."""
    import cv2
    import numpy as np

    from benchmarks.scenes import paste, scene
    from tests.helpers import detectable

    onnx = tmp_path / "model.onnx"
    tiny_onnx_classifier(onnx)
    photo = tmp_path / "face.png"
    if model == "an onnx file":
        chosen = ["--whole", "--model", str(onnx), "--root", str(REPO)]
        cv2.imwrite(str(photo), np.full((64, 64), 128, np.uint8))
    else:
        chosen = []
        image = scene()
        paste(image, detectable(tiny_faceset, 1)[0], 200, 150, 150)
        cv2.imwrite(str(photo), image)
    outcome = ferops_in_a_fresh_interpreter(["predict", "--json", str(photo), *chosen], tmp_path)
    assert outcome["code"] == 0, outcome["output"]
    assert '"emotion"' in outcome["output"]
    assert outcome["heavy"] == []
    if model == "the default":
        assert "fer2013_res_attention_cnn" in outcome["output"]  # it says which model answered


def test_applying_a_profile_loads_no_tensorflow(tmp_path):
    """`ferops profile` edits params.yaml: it starts in half a second, not in six."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    profile = REPO / "params" / "fer2013.yaml"
    outcome = ferops_in_a_fresh_interpreter(
        ["profile", str(profile), "--root", str(tmp_path)], tmp_path
    )
    assert outcome["code"] == 0 and "setting(s) from" in outcome["output"], outcome["output"]
    assert "image-folder" in (tmp_path / "params.yaml").read_text()
    assert "tensorflow" not in outcome["heavy"]


def test_a_params_typo_stops_a_stage_before_tensorflow_loads(tmp_path):
    """`ferops train` with a misspelt key: the error names it in half a second; TensorFlow's
    6 s start is paid only by a stage that will run."""
    tiny_params_file(tmp_path, **{"train.epoch": 3})
    outcome = ferops_in_a_fresh_interpreter(["train", "--root", str(tmp_path)], tmp_path)
    assert outcome["code"] == 1, outcome["output"]
    assert "unknown key train.epoch; did you mean train.epochs?" in outcome["output"]
    assert "tensorflow" not in outcome["heavy"]
