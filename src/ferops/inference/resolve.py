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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferops.imaging.contrast import PREPROCESSING_FILE, Preprocessing
from ferops.inference.runtime import FaceClassifier, ModelFiles, open_classifier
from ferops.kernel.config import RegisterConfig, load_params
from ferops.kernel.errors import ConfigError, DataError
from ferops.kernel.integrity import digests_from_tags, verify_files
from ferops.kernel.layout import Layout, find_root
from ferops.models import shipped

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
    except NotInRegistry:
        if model is None:  # no champion yet: the default falls back; a named model does not
            return shipped_files(f"no {uri} in the registry yet")
        raise
    if model is None and real_faces and files.trained_on == SYNTHETIC:
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


class NotInRegistry(DataError):
    """The registry has no such model, alias or version (the message lists what it has)."""


@dataclass(frozen=True)
class RegisteredVersion:
    """Where a models:/ URI points: a pinned version URI and what the registry says of it."""

    uri: str  # models:/NAME/VERSION, or the URI as given for a bare logged model
    source: str  # how the answer names it: models:/NAME/3 (@champion)
    trained_on: str  # the data source it learned from ("synthetic", ...), "" if unknown
    test_accuracy: float | None
    sha256: dict[str, str]  # {file name: digest} recorded on the version
    run_id: str | None = None  # the run that logged it: its evaluation/ reports
    name: str = ""
    version: str = ""


def registered_version(uri: str, tracking_uri: str) -> RegisteredVersion:
    """Resolve `uri` in the registry, or a DataError that says what is missing and what
    exists (aliases and latest versions), instead of MLflow's exception."""
    # Deferred on purpose: MLflow takes about a second to import; a file needs none of it.
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    try:
        name_and_version = get_model_name_and_version(client, uri)
    except MlflowException as exc:
        raise NotInRegistry(missing_in_registry(client, uri)) from exc
    if len(name_and_version) != 2:  # a bare logged model (models:/m-…), not a registry version
        return RegisteredVersion(uri, uri, "", None, {})
    name, number = name_and_version
    pinned = f"models:/{name}/{number}"  # an alias moving now changes nothing here
    try:
        version = client.get_model_version(name, number)
    except MlflowException as exc:
        raise NotInRegistry(missing_in_registry(client, uri)) from exc
    alias = f" (@{uri.split('@', 1)[1]})" if "@" in uri else ""
    return RegisteredVersion(
        uri=pinned,
        source=f"{pinned}{alias}",
        trained_on=version.tags.get("trained_on") or _trained_on(client, version.run_id),
        test_accuracy=_number(version.tags.get("test_accuracy")),
        sha256=digests_from_tags(version.tags),
        run_id=version.run_id,
        name=name,
        version=str(number),
    )


def missing_in_registry(client: Any, uri: str) -> str:
    """`uri` names a model, alias or version the registry lacks: say which, and list what
    there is to choose from."""
    body = uri.removeprefix("models:/")
    name, has_alias, alias = body.partition("@")
    if not has_alias:
        name, _, version = body.rpartition("/")
    models = sorted(m.name for m in client.search_registered_models())
    if name not in models:
        held = ", ".join(models) or "no models yet (run `make repro`)"
        return f"{uri}: the registry has no model named {name!r}; it holds {held}"
    aliases = client.get_registered_model(name).aliases
    versions = sorted(
        (int(v.version) for v in client.search_model_versions(f"name='{name}'")), reverse=True
    )
    missing = f"no alias {alias!r}" if has_alias else f"no version {version!r}"
    named = ", ".join(f"@{a} → version {v}" for a, v in sorted(aliases.items())) or "none"
    latest = ", ".join(map(str, versions[:5])) or "none"
    return f"{uri}: model {name!r} has {missing}; its aliases: {named}; latest versions: {latest}"


def registered_files(uri: str, tracking_uri: str) -> ModelFiles:
    """The files of a registered pyfunc, downloaded by MLflow and checked against the sha256
    digests recorded on its registry version (ModelFileChanged when one differs)."""
    import mlflow

    found = registered_version(uri, tracking_uri)
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=found.uri)) / "artifacts"
    keras, onnx = _first(folder, "*.keras"), _first(folder, "*.onnx")
    settings = folder / PREPROCESSING_FILE
    present = [p for p in (keras, onnx, settings) if p is not None and p.is_file()]
    if found.sha256:
        verify_files(present, found.sha256, found.uri)
    else:
        log.warning("%s records no sha256 of its files (registered before ferops did)", uri)
    return ModelFiles(
        keras=keras,
        onnx=onnx,
        preprocessing=Preprocessing.load(settings),
        source=found.source,
        trained_on=found.trained_on,
        test_accuracy=found.test_accuracy,
    )


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
        onnx=shipped.verified_onnx_file(),  # what answers by default: no TensorFlow
        preprocessing=shipped.preprocessing(),
        source=f"the shipped FER2013 model ({path.stem})",  # .keras, or .onnx that answers
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
