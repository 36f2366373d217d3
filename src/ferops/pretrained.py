"""The pretrained FER2013 model shipped inside the package (see pretrained/MODEL_CARD.md).

`import_pretrained` registers it in the MLflow registry on request; `predict` and `stream`
fall back to it when the registry has no champion, so real photos get real emotions before
anyone has trained anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FOLDER = Path(__file__).parent / "pretrained"
MODEL_FILE = FOLDER / "fer2013_res_attention_cnn.keras"
MODEL_NAME = "fer2013-pretrained"
SHA256 = "09fadf6aee66faf20c615071ad8d3b4b89f823301b6b19f7ee84d1bb36b9a6d1"
# Measured by `ferops evaluate` on FER2013 PrivateTest (MODEL_CARD.md).
TEST_METRICS = {
    "accuracy": 0.6677,
    "macro_f1": 0.6263,
    "accuracy_tta_flip": 0.6702,
    "accuracy_tta_flip_shift": 0.6755,
}


def preprocessing() -> dict[str, Any]:
    return json.loads(MODEL_FILE.with_suffix(".json").read_text())


def verified_model_file() -> Path:
    """The shipped file, after checking it is the one the model card describes."""
    digest = hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()
    if digest != SHA256:
        from ferops.errors import DataError

        raise DataError(f"{MODEL_FILE}: sha256 {digest} is not the model card's {SHA256}")
    return MODEL_FILE


def import_pretrained(root: Path) -> dict[str, Any]:
    """Register the shipped model as a new version of `fer2013-pretrained`, alias champion."""
    import dataclasses

    import mlflow
    from mlflow import MlflowClient

    from ferops.config import load_params
    from ferops.data.ingest import synthetic_faceset
    from ferops.models.registry import load_model
    from ferops.register import log_pyfunc
    from ferops.tracking import tracking_uri

    path = verified_model_file()
    params = load_params(root / "params.yaml")
    # Faces for the ONNX parity check and the input example: generated, so no data is needed.
    few = dataclasses.replace(
        params.data.synthetic, train_per_class=1, val_per_class=1, test_per_class=10
    )
    faces = synthetic_faceset(dataclasses.replace(params.data, synthetic=few), seed=0)["test"].x
    mlflow.set_tracking_uri(tracking_uri(root))
    mlflow.set_experiment("ferops-pretrained")
    with mlflow.start_run(run_name=f"import {path.name}"):
        mlflow.set_tags({"ferops.stage": "import-pretrained", "sha256": SHA256})
        mlflow.log_metrics({f"test_{k}": v for k, v in TEST_METRICS.items()})
        mlflow.log_artifact(str(FOLDER / "MODEL_CARD.md"))
        info = log_pyfunc(load_model(path), path, preprocessing(), faces)
    version = mlflow.register_model(info.model_uri, MODEL_NAME)
    client = MlflowClient()
    client.update_model_version(
        MODEL_NAME, version.version, description=(FOLDER / "MODEL_CARD.md").read_text()
    )
    client.set_registered_model_alias(MODEL_NAME, "champion", version.version)
    uri = f"models:/{MODEL_NAME}@champion"
    log.info("registered %s version %s as %s", MODEL_NAME, version.version, uri)
    return {"model_name": MODEL_NAME, "version": int(version.version), "model_uri": uri}
