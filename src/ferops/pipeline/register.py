"""Register stage: register the trained model and decide whether it becomes champion.

The decision is ferops.registry.gate's (McNemar's exact test against the champion on today's
test faces). Aliases move only after everything else succeeded, so a failed run moves none;
reports/promotion.json and the version's tags say why.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from ferops.data.faceset import Split, load_faceset
from ferops.imaging.contrast import Preprocessing
from ferops.inference.registered import registered_files, version_by_alias
from ferops.inference.resolve import SYNTHETIC
from ferops.inference.runtime import open_classifier
from ferops.kernel.config import CHALLENGER, CHAMPION, Params, RegisterConfig, alias_uri
from ferops.kernel.files import write_json
from ferops.kernel.integrity import digest_tags
from ferops.kernel.layout import Layout, tracking_uri
from ferops.models.builders import load_model
from ferops.registry.gate import GateDecision, gate
from ferops.registry.publish import log_trained_pyfunc, register_version, unused_step
from ferops.training.tracking import resumed_run

log = logging.getLogger(__name__)


def run(params: Params, layout: Layout) -> dict[str, Any]:
    """Register the trained model: log the pyfunc with its evaluation, register a version,
    gate it against the champion and move one alias (champion only if it beats the current
    one); reports/promotion.json says what happened."""
    config, root, model_path = params.register, layout.root, layout.model
    test = load_faceset(layout.processed)["test"]
    candidate = load_model(model_path)
    candidate_correct = candidate.predict(test.x, verbose=0).argmax(axis=1) == test.y
    run = json.loads(layout.training_run.read_text())
    tracking = tracking_uri(root)
    mlflow.set_tracking_uri(tracking)
    client = MlflowClient()

    champion = version_by_alias(client, config.model_name, CHAMPION)
    decision = gate(
        candidate_correct,
        None if champion is None else champion_correct(config, test, tracking),
        min_gain=config.min_gain,
        alpha=config.alpha,
    )
    metrics = json.loads(layout.metrics.read_text()) if layout.metrics.is_file() else {}
    trained_on = params.data.source
    with resumed_run(run["run_id"]):
        preprocessing = Preprocessing.load(model_path.with_suffix(".json"))
        logged = log_trained_pyfunc(
            candidate,
            model_path,
            preprocessing,
            test.x,
            trained_on=trained_on,
            step=unused_step(run["run_id"]),
        )
        # The model's page shows these, not the run's first-epoch training metrics.
        mlflow.log_metrics(model_metrics(decision, metrics), model_id=logged.info.model_id)
        if layout.evaluation.is_dir():
            mlflow.log_artifacts(str(layout.evaluation), "evaluation")
        mlflow.set_tag("mlflow.source.git.commit", git_commit(root))  # the run page's Source
    tags = {**version_tags(decision, champion, trained_on), **digest_tags(logged.sha256)}
    # The tags arrive with the version, so no version is ever without its digests.
    version = register_version(logged.info.model_uri, config.model_name, tags)
    client.update_model_version(
        config.model_name,
        version.version,
        description=version_description(decision, metrics, run, trained_on),
    )
    if not client.get_registered_model(config.model_name).description:
        client.update_registered_model(config.model_name, description=MODEL_DESCRIPTION)

    alias = CHAMPION if decision.promote else CHALLENGER
    client.set_registered_model_alias(config.model_name, alias, version.version)
    outcome = {
        "model_name": config.model_name,
        "version": int(version.version),
        "alias": alias,
        "previous_champion": champion.version if champion else None,
        **asdict(decision),
        "model_uri": alias_uri(config.model_name, alias),
    }
    write_json(layout.promotion, outcome)
    log.info(
        "registered %s version %s (trained on %s) as %s: %s",
        config.model_name,
        version.version,
        trained_on,
        alias,
        decision.reason,
    )
    return outcome


def champion_correct(config: RegisterConfig, test: Split, tracking: str) -> np.ndarray:
    """Which test faces the champion gets right, re-evaluated on today's test set whatever
    data it was trained on. Its files are run directly (the processed faces are already
    normalised), not its pickled pyfunc class, so a version logged by an older ferops, whose
    classes may have moved since, is still compared."""
    files = registered_files(config.champion_uri, tracking)
    predict = open_classifier(files).predict_fn
    return predict(test.x).argmax(axis=1) == test.y


MODEL_DESCRIPTION = (
    "Facial emotion classifier (48x48 grey faces → angry, disgust, fear, happy, sad, surprise, "
    "neutral), trained and registered by the ferops pipeline (`dvc repro`). Each version's "
    "description gives its data, test accuracy, macro F1 and the promotion gate's decision; "
    "its training run holds the evaluation reports under evaluation/."
)


def model_metrics(decision: GateDecision, metrics: dict[str, Any]) -> dict[str, float]:
    """The registered model's own figures, on the test faces."""
    figures = {"test_accuracy": decision.candidate_accuracy}
    for key in ("macro_f1", "expected_calibration_error"):  # named as evaluate logs them
        if isinstance(metrics.get(key), int | float):
            figures[f"test_{key}"] = float(metrics[key])
    if isinstance(metrics.get("production_accuracy"), int | float):  # reviewed feedback faces
        figures["production_accuracy"] = float(metrics["production_accuracy"])
    return figures


def version_description(
    decision: GateDecision, metrics: dict[str, Any], run: dict[str, Any], trained_on: str
) -> str:
    """One paragraph a registry browser can trust: data, figures, decision, where to look."""
    figures = model_metrics(decision, metrics)
    shown = ", ".join(
        f"{name.removeprefix('test_').replace('_', ' ')} {value:.4f}"
        for name, value in figures.items()
    )
    verdict = "promoted to champion" if decision.promote else "kept as challenger"
    return (
        f"{data_words(trained_on)} (data sha1 {run.get('data_sha1', 'unknown')[:12]}). "
        f"Test set: {shown}. Gate: {verdict}: {decision.reason}. Evaluation reports: the "
        f"training run {run['run_id']}, artifacts evaluation/."
    )


def data_words(trained_on: str) -> str:
    """What the model learned from, in words; a synthetic model says what not to use it for."""
    if trained_on == SYNTHETIC:
        return (
            "Trained on SYNTHETIC faces (the built-in generator, for trying the pipeline): it "
            "names real faces' emotions little better than chance. For real photos serve the "
            "shipped FER2013 model (`ferops registry import-pretrained`) or train on FER2013"
        )
    return f"Trained on {trained_on} data"


def version_tags(
    decision: GateDecision, champion: ModelVersion | None, trained_on: str
) -> dict[str, str]:
    """What a reader of the registry's version list needs at a glance; the rest (data hash,
    commit, p-value) is on the training run, in the description and in promotion.json."""
    return {
        "trained_on": trained_on,
        "test_accuracy": f"{decision.candidate_accuracy:.4f}",
        "gate": "promoted" if decision.promote else "refused",
        "champion_version": champion.version if champion else "none",
    }


def git_commit(root: Path) -> str:
    """The project's commit, for the run page's Source ("unknown" outside git)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
