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

from ferops.imaging.contrast import PREPROCESSING_FILE, Preprocessing
from ferops.inference.runtime import FaceClassifier, ModelFiles, open_classifier
from ferops.kernel.config import RegisterConfig, load_params
from ferops.kernel.errors import ConfigError, DataError
from ferops.kernel.integrity import digests_from_tags, verify_files
from ferops.kernel.layout import Layout, find_root
from ferops.models import shipped

log = logging.getLogger(__name__)


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
        return SHIPPED[model]()
    if model is not None and not model.startswith("models:/"):
        return ModelFiles.from_file(Path(model))
    if model is None and (layout is None or register is None):
        return shipped_files("no ferops project here or above (no params.yaml)")
    tracking = layout.tracking_uri if layout else os.environ.get("MLFLOW_TRACKING_URI")
    if tracking is None:
        raise DataError(
            f"{model}: no registry to read it from; run inside a ferops project, pass --root "
            "PROJECT, or set MLFLOW_TRACKING_URI"
        )
    uri = model or register.champion_uri  # type: ignore[union-attr]
    try:
        files = registered_files(uri, tracking)
    except DataError:
        raise
    except Exception as exc:  # MLflow raises several kinds for a missing model or alias
        if model is None:
            return shipped_files(f"no {uri} in the registry yet")
        raise DataError(
            f"cannot load {uri} from the registry ({type(exc).__name__}); "
            "train one with `make repro` or pass --model FILE"
        ) from exc
    if model is None and real_faces and files.trained_on == "synthetic":
        return shipped_files(
            f"the champion {files.source} learned from synthetic faces, not real ones; "
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


def registered_files(uri: str, tracking_uri: str) -> ModelFiles:
    """The files of a registered pyfunc, downloaded by MLflow and checked against the sha256
    digests recorded on its registry version (ModelFileChanged when one differs)."""
    # Deferred on purpose: MLflow takes about a second to import; a file needs none of it.
    import mlflow
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    name_and_version = get_model_name_and_version(client, uri)
    recorded: dict[str, str] = {}
    about: dict = {"source": uri}
    if len(name_and_version) == 2:  # a registry version (not a bare logged-model id)
        name, number = name_and_version
        pinned = f"models:/{name}/{number}"  # an alias moving now changes nothing here
        version = client.get_model_version(name, number)
        recorded = digests_from_tags(version.tags)
        alias = f" (@{uri.split('@', 1)[1]})" if "@" in uri else ""
        about = {
            "source": f"{pinned}{alias}",
            "trained_on": _trained_on(client, version.run_id),
            "test_accuracy": _number(version.tags.get("test_accuracy")),
        }
        uri = pinned
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri)) / "artifacts"
    keras, onnx = _first(folder, "*.keras"), _first(folder, "*.onnx")
    settings = folder / PREPROCESSING_FILE
    present = [p for p in (keras, onnx, settings) if p is not None and p.is_file()]
    if recorded:
        verify_files(present, recorded, uri)
    else:
        log.warning("%s records no sha256 of its files (registered before ferops did)", uri)
    return ModelFiles(keras=keras, onnx=onnx, preprocessing=Preprocessing.load(settings), **about)


def _trained_on(client: object, run_id: str | None) -> str:
    """The data source the version's training run logged (`data.source`), or ""."""
    if not run_id:
        return ""
    try:
        return client.get_run(run_id).data.params.get("data.source", "")  # type: ignore[attr-defined]
    except Exception:  # a run deleted since: the model still loads, unlabelled
        return ""


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def shipped_files(reason: str = "") -> ModelFiles:
    """The shipped FER2013 model; `reason` says why it answers instead of a champion."""
    path = shipped.verified_model_file()
    return ModelFiles(
        keras=path,
        preprocessing=shipped.preprocessing(),
        source=f"the shipped FER2013 model ({path.name})",
        trained_on="fer2013",
        test_accuracy=shipped.TEST_METRICS["accuracy"],
        note=reason,
    )


def fast_files(reason: str = "") -> ModelFiles:
    """The shipped fast FER2013 model: a small CNN as an int8 ONNX file."""
    path = shipped.verified_fast_model_file()
    return ModelFiles(
        onnx=path,
        preprocessing=Preprocessing.load(path.with_suffix(".json")),
        source=f"the shipped fast FER2013 model ({path.name})",
        trained_on="fer2013",
        test_accuracy=shipped.FAST_TEST_METRICS["accuracy"],
        note=reason,
    )


#: Names `--model` takes besides files and models:/ URIs.
SHIPPED = {"shipped": shipped_files, "fast": fast_files}


def _first(folder: Path, pattern: str) -> Path | None:
    return next(iter(sorted(folder.glob(pattern))), None)
