"""Registering the shipped accurate FER2013 model (ferops.models.shipped.ACCURATE) in the
MLflow registry."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import mlflow
from mlflow import MlflowClient

from ferops.data.sources import synthetic_faceset
from ferops.kernel.config import CHAMPION, Params, alias_uri
from ferops.kernel.integrity import digest_tags
from ferops.kernel.layout import Layout
from ferops.models.shipped import ACCURATE, MODEL_CARD, REGISTERED_NAME
from ferops.registry.publish import log_pyfunc, register_version
from ferops.training.tracking import TRAINING_EXPERIMENT

log = logging.getLogger(__name__)


def import_pretrained(params: Params, layout: Layout) -> dict[str, Any]:
    """Register the shipped model as a new version of `fer2013-pretrained`, alias champion."""
    path = ACCURATE.verified()
    # Faces for the input example: generated, so no data is needed.
    few = dataclasses.replace(
        params.data.synthetic, train_per_class=1, val_per_class=1, test_per_class=10
    )
    faces = synthetic_faceset(dataclasses.replace(params.data, synthetic=few), seed=0)["test"].x
    mlflow.set_tracking_uri(layout.tracking_uri)
    mlflow.set_experiment("ferops-pretrained")
    mlflow.set_experiment_tags(TRAINING_EXPERIMENT)
    with mlflow.start_run(run_name=f"import {path.name}"):
        mlflow.set_tags({"ferops.stage": "import-pretrained", "sha256": ACCURATE.sha256})
        mlflow.log_metrics({f"test_{k}": v for k, v in ACCURATE.test_metrics.items()})
        mlflow.log_artifact(str(MODEL_CARD))
        logged = log_pyfunc(
            path,
            ACCURATE.verified_onnx_export(),
            ACCURATE.preprocessing(),
            faces,
            trained_on=ACCURATE.trained_on,
        )
    name = REGISTERED_NAME
    version = register_version(
        logged.info.model_uri,
        name,
        {
            "trained_on": ACCURATE.trained_on,
            "test_accuracy": f"{ACCURATE.test_metrics['accuracy']:.4f}",
        }
        | digest_tags(logged.sha256),
    )
    client = MlflowClient()
    client.update_model_version(name, version.version, description=MODEL_CARD.read_text())
    client.set_registered_model_alias(name, CHAMPION, version.version)
    uri = alias_uri(name, CHAMPION)
    log.info("registered %s version %s as %s", name, version.version, uri)
    return {"model_name": name, "version": int(version.version), "model_uri": uri}
