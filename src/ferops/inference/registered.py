"""What the MLflow model registry holds, read in one place: the version an alias or a
`models:/` URI points at, what it learned from and scored, and its files checked against the
digests recorded on it. `predict`, `stream`, the monitor and the register stage read it here.

MLflow is imported inside the functions: a model file needs none of it (about a second)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferops.imaging.contrast import PREPROCESSING_FILE, Preprocessing
from ferops.inference.runtime import ModelFiles
from ferops.kernel.errors import DataError
from ferops.kernel.integrity import digests_from_tags, verify_files

log = logging.getLogger(__name__)


def version_by_alias(client: Any, name: str, alias: str) -> Any:
    """The version (MLflow's ModelVersion) holding `alias`, or None when the model or the
    alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


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


def _first(folder: Path, pattern: str) -> Path | None:
    return next(iter(sorted(folder.glob(pattern))), None)
