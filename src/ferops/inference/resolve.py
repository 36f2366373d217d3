"""The one answer to "which model?": a file, a `models:/` registry URI, or by default the
registry's champion, with the shipped FER2013 model in two cases: there is no champion yet,
or the champion learned from synthetic faces (it would name real faces' emotions at random;
pass `--model models:/NAME@champion` to use it anyway). Either way a line says which model
answers.

`predict`, `stream` and `export` all resolve through here, so they accept the same things
and fail the same way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ferops.inference.registered import NotInRegistry, registered_files
from ferops.inference.runtime import FaceClassifier, ModelFiles, open_classifier
from ferops.kernel.config import RegisterConfig, load_params
from ferops.kernel.errors import ConfigError, DataError
from ferops.kernel.layout import Layout, find_root
from ferops.models.shipped import ACCURATE, SHIPPED, ShippedModel

log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"  # data.source of the built-in generator: not a model for real faces


def synthetic_warning(source: str) -> str:
    """The one line a server of a synthetic model prints at start-up."""
    return (
        f"warning: {source} learned from synthetic faces (the default pipeline's generator); "
        "on real photos it answers little better than chance. For real faces serve the shipped "
        "FER2013 model: `ferops registry import-pretrained`, then "
        "`make serve MODEL=models:/fer2013-pretrained@champion`"
    )


def resolve_model(
    model: str | None,
    *,
    layout: Layout | None,
    register: RegisterConfig | None,
    real_faces: bool = True,
) -> ModelFiles:
    """`model` as a .keras/.onnx/.tflite file, a `models:/` URI, or `shipped` / `fast` (the
    shipped FER2013 models); None: the champion of the project at `layout`, or the shipped
    model (no project, no champion, or, for `real_faces`, a champion that learned from
    synthetic faces)."""
    if model in SHIPPED:
        return shipped_files(SHIPPED[model])
    if model is not None and not model.startswith("models:/"):
        return ModelFiles.from_file(Path(model))
    if model is None and (layout is None or register is None):
        return shipped_files(reason="no ferops project here or above (no params.yaml)")
    tracking = layout.tracking_uri if layout else os.environ.get("MLFLOW_TRACKING_URI")
    if tracking is None:
        raise DataError(
            f"{model}: no registry to read it from; run inside a ferops project, pass --root "
            "PROJECT, or set MLFLOW_TRACKING_URI"
        )
    uri = model or register.champion_uri  # type: ignore[union-attr]
    try:
        files = registered_files(uri, tracking)
    except NotInRegistry:
        if model is None:  # no champion yet: the default falls back; a named model does not
            return shipped_files(reason=f"no {uri} in the registry yet")
        raise
    if model is None and real_faces and files.trained_on == SYNTHETIC:
        return shipped_files(
            reason=f"the champion {files.source} learned from synthetic faces, not real ones; "
            f"pass --model {uri} to use it anyway"
        )
    return files


def project_for(
    model: str | None, root: Path | None
) -> tuple[Layout | None, RegisterConfig | None]:
    """The project (layout and register settings) `model` is looked up in: none for a file or
    a shipped model; else the one at `root`, or the nearest at or above the current folder
    (none if there is none)."""
    if model is not None and not model.startswith("models:/"):
        return None, None
    if root is not None and not (Path(root) / "params.yaml").is_file():
        raise ConfigError(
            f"--root {root}: no params.yaml there; point --root (root= in Python) at a ferops "
            "project folder"
        )
    found = Path(root) if root is not None else find_root(Path.cwd())
    if found is None:
        return None, None
    layout = Layout(found)
    return layout, load_params(layout.params).register


def resolve_classifier(
    model: str | None,
    *,
    layout: Layout | None,
    register: RegisterConfig | None,
    runtime: str = "auto",
) -> FaceClassifier:
    files = resolve_model(model, layout=layout, register=register)
    return open_classifier(files, runtime)


def shipped_files(model: ShippedModel = ACCURATE, reason: str = "") -> ModelFiles:
    """A shipped FER2013 model's files, checked against the model card; `reason` says why it
    answers instead of a champion."""
    path = model.verified()  # each file hashed once: this runs at every command's start
    keras = path if path.suffix == ".keras" else None
    onnx = model.verified_onnx_export() if keras else path  # what answers: no TensorFlow
    return ModelFiles(
        keras=keras,
        onnx=onnx,
        preprocessing=model.preprocessing(),
        # The Keras file's stem (its ONNX export answers under the same name), or the file.
        source=f"{model.title} ({path.stem if keras else path.name})",
        trained_on=model.trained_on,
        test_accuracy=model.test_metrics["accuracy"],
        note=reason,
    )
