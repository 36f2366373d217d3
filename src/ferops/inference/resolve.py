"""The one answer to "which model?": a file, a `models:/` registry URI, or by default the
registry's champion, falling back to the shipped FER2013 model when there is none yet.

`predict`, `stream` and `export` all resolve through here, so they accept the same things
and fail the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ferops.imaging.contrast import PREPROCESSING_FILE, Preprocessing
from ferops.inference.runtime import FaceClassifier, ModelFiles, open_classifier
from ferops.kernel.config import RegisterConfig
from ferops.kernel.errors import DataError
from ferops.kernel.integrity import digests_from_tags, verify_files
from ferops.kernel.layout import Layout
from ferops.models import shipped

log = logging.getLogger(__name__)


def resolve_model(model: str | None, *, layout: Layout, register: RegisterConfig) -> ModelFiles:
    """`model` as a .keras/.onnx/.tflite file or a `models:/` URI; None: the champion, or the
    shipped model when the registry has no champion."""
    if model is not None and not model.startswith("models:/"):
        return ModelFiles.from_file(Path(model))
    uri = model or register.champion_uri
    try:
        return registered_files(uri, layout.tracking_uri)
    except DataError:
        raise
    except Exception as exc:  # MLflow raises several kinds for a missing model or alias
        if model is None:
            log.warning("no %s in the registry; using the shipped pretrained FER2013 model", uri)
            return shipped_files()
        raise DataError(
            f"cannot load {uri} from the registry ({type(exc).__name__}); "
            "train one with `make repro` or pass --model FILE"
        ) from exc


def resolve_classifier(
    model: str | None, *, layout: Layout, register: RegisterConfig, runtime: str = "auto"
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
    if len(name_and_version) == 2:  # a registry version (not a bare logged-model id)
        name, number = name_and_version
        uri = f"models:/{name}/{number}"  # pinned: an alias moving now changes nothing here
        recorded = digests_from_tags(client.get_model_version(name, number).tags)
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri)) / "artifacts"
    files = ModelFiles(
        keras=_first(folder, "*.keras"),
        onnx=_first(folder, "*.onnx"),
        preprocessing=Preprocessing(),
        source=uri,
    )
    settings = folder / PREPROCESSING_FILE
    present = [p for p in (files.keras, files.onnx, settings) if p is not None and p.is_file()]
    if recorded:
        verify_files(present, recorded, uri)
    else:
        log.warning("%s records no sha256 of its files (registered before ferops did)", uri)
    return dataclasses.replace(files, preprocessing=Preprocessing.load(settings))


def shipped_files() -> ModelFiles:
    path = shipped.verified_model_file()
    return ModelFiles(
        keras=path,
        preprocessing=shipped.preprocessing(),
        source=f"shipped {shipped.MODEL_NAME} ({path.name})",
    )


def _first(folder: Path, pattern: str) -> Path | None:
    return next(iter(sorted(folder.glob(pattern))), None)
